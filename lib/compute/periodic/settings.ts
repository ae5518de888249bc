// The scheduled function's settings, shared by the CDK construct and the code that reasons
// about overlapping runs (kept free of imports so the CDK app can read it cheaply).

export const PERIODIC_TASKS_FUNCTION = {
  entry: 'functions/periodic-tasks.ts',
  /** A run of every task over the fleet; the schedule starts the next one a minute later. */
  timeoutSeconds: 300,
  memoryMb: 512,
  /** EventBridge Scheduler: Nova's periodic tasks tick every 60 s by default. */
  scheduleMinutes: 1,
} as const;

/**
 * A periodic command whose action is still running this long after it started (not waiting on
 * a lifecycle event) was cut off with its run: no run lives this long.
 */
export const STALLED_AFTER_SECONDS = PERIODIC_TASKS_FUNCTION.timeoutSeconds * 2;
