// What EventBridge Scheduler passes the scheduled functions: `<aws.scheduler.scheduled-time>`,
// so a retried invocation decides exactly as the first one did.

export interface ScheduledInvocation {
  scheduled_time?: string;
}

/** The run's time: the scheduled time when given and valid, else now. */
export function scheduledTime(event: ScheduledInvocation | null | undefined): Date {
  const at = event?.scheduled_time ? Date.parse(event.scheduled_time) : Number.NaN;
  return Number.isFinite(at) ? new Date(at) : new Date();
}
