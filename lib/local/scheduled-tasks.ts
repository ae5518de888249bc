// The local control plane's clock (CONTRACT §3): scheduled work — Nova's periodic tasks and the
// usage audit, EventBridge Scheduler rules in a deployment — runs here every
// `local_tick_seconds`. LOCAL_SCHEDULED_TASKS is where such a task is registered.

import { LOCAL_USAGE_AUDIT } from '../audit/local.ts';
import { LOCAL_PERIODIC_TASKS } from '../compute/periodic/local.ts';
import type { Config } from '../config.ts';

export interface ScheduledTaskContext {
  config: Config;
  now: Date;
}

export interface ScheduledTask {
  /** Shown in errors, e.g. `usage-audit`. */
  name: string;
  run(context: ScheduledTaskContext): Promise<void>;
}

/** Nova's periodic tasks and the usage audit's fan-out on the local clock. */
export const LOCAL_SCHEDULED_TASKS: readonly ScheduledTask[] = [
  LOCAL_PERIODIC_TASKS,
  LOCAL_USAGE_AUDIT,
];

export interface SchedulerOptions {
  tasks: readonly ScheduledTask[];
  config: Config;
  intervalSeconds: number;
  onError?: (task: string, error: unknown) => void;
  now?: () => Date;
}

/**
 * Runs every task once per tick, one after the other. A tick that is still running when the
 * next one is due makes that one skip (like a scheduled Lambda whose concurrency is 1), and
 * stop() waits for the tick in flight.
 */
export function startScheduler(o: SchedulerOptions): { stop(): Promise<void> } {
  let inFlight: Promise<void> | null = null;
  const tick = async () => {
    for (const task of o.tasks) {
      try {
        await task.run({ config: o.config, now: (o.now ?? (() => new Date()))() });
      } catch (e) {
        o.onError?.(task.name, e);
      }
    }
  };
  const timer =
    o.tasks.length === 0
      ? null
      : setInterval(() => {
          if (inFlight) return;
          inFlight = tick().finally(() => {
            inFlight = null;
          });
        }, o.intervalSeconds * 1000);
  return {
    async stop() {
      if (timer) clearInterval(timer);
      await inFlight;
    },
  };
}
