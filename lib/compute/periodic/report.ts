// What one periodic task did in one run, and the small helpers every task uses to fill it in.
// A task never lets one instance's failure stop the others: it logs and counts the error, and
// the scheduled function reports the run as failed at the end (so its Errors alarm fires).

import type { Instance } from '../instance.ts';
import type { ComputeDeps } from '../runtime.ts';

export const PeriodicTaskName = {
  LIFECYCLE_SWEEPER: 'lifecycle_sweeper',
  RESUME_PERIODIC_COMMANDS: 'resume_periodic_commands',
  INSTANCE_BUILD_TIMEOUT: 'instance_build_timeout',
  REBOOT_TIMEOUT: 'reboot_timeout',
  RESCUE_TIMEOUT: 'rescue_timeout',
  RESIZE_CONFIRM_WINDOW: 'resize_confirm_window',
  RECLAIM_INSTANCE_INTERVAL: 'reclaim_instance_interval',
  SHELVED_OFFLOAD_TIME: 'shelved_offload_time',
  SYNC_POWER_STATE: 'sync_power_state',
  UPDATE_AVAILABLE_RESOURCE: 'update_available_resource',
} as const;
export type PeriodicTaskName = (typeof PeriodicTaskName)[keyof typeof PeriodicTaskName];

export interface TaskReport {
  task: PeriodicTaskName;
  /** Candidates (instances or actions) the task looked at closely. */
  examined: number;
  /** What happened to them, by outcome (e.g. `{ completed: 1, abandoned: 2 }`). */
  counts: Record<string, number>;
  /** Candidates whose handling failed; logged one by one. */
  errors: number;
  /** Why the task did nothing this run (e.g. `not_due`), when it did nothing on purpose. */
  skipped?: string;
}

/** The instances a run looks at (listed once per run; every task re-reads by key before acting). */
export type InstanceSource = () => Promise<Instance[]>;

export function newReport(task: PeriodicTaskName): TaskReport {
  return { task, examined: 0, counts: {}, errors: 0 };
}

export function tally(report: TaskReport, outcome: string, n = 1): void {
  report.counts[outcome] = (report.counts[outcome] ?? 0) + n;
}

/**
 * Handles one candidate: counts its outcome, or logs and counts its failure and moves on, so one
 * broken instance cannot starve the rest of the fleet.
 */
export async function handleOne(
  deps: ComputeDeps,
  report: TaskReport,
  subject: Record<string, unknown>,
  work: () => Promise<string>,
): Promise<void> {
  report.examined += 1;
  try {
    tally(report, await work());
  } catch (e) {
    report.errors += 1;
    deps.logger.error('periodic task failed on one item', {
      task: report.task,
      ...subject,
      error_name: (e as Error)?.name ?? 'Error',
      error_message: (e as Error)?.message ?? String(e),
    });
  }
}

/** Parses a stored time; one without a zone designator is UTC (Nova's strtime has none). */
export function parseUtc(iso: string): number {
  return Date.parse(/(Z|[+-]\d\d:?\d\d)$/.test(iso) ? iso : `${iso}Z`);
}

/** Nova's timeutils.is_older_than: strictly more than `seconds` before `now`. */
export function olderThan(iso: string | null | undefined, seconds: number, now: Date): boolean {
  if (!iso) return false;
  const at = parseUtc(iso);
  return Number.isFinite(at) && now.getTime() - at > seconds * 1000;
}
