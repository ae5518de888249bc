// Nova's periodic tasks (nova-compute.md §1.8), run together by the scheduled periodic-tasks
// function (and by the local control plane's clock). Each is `(deps, now) => TaskReport` and is
// switched by its Nova option; a run lists the fleet once and every task re-reads an instance
// by key before it acts. The sweeper goes first, so a task whose event was lost is settled
// before the timeouts look at the instance.

import type { AwsClients } from '../../compose.ts';
import { awsClients, composeComputeDeps } from '../../compose.ts';
import type { Config } from '../../config.ts';
import type { ComputeDeps, Logger } from '../runtime.ts';
import { checkInstanceBuildTime } from './build-timeout.ts';
import { type PowerSyncDeps, syncPowerStates } from './power-sync.ts';
import { pollRebootingInstances } from './reboot-timeout.ts';
import { type InstanceSource, PeriodicTaskName, type TaskReport } from './report.ts';
import { resumePeriodicCommands } from './resume.ts';
import { listOnce } from './scan.ts';
import { DynamoDbPeriodicSchedule, type PeriodicSchedule } from './schedule.ts';
import { sweepExpiredWaits } from './sweeper.ts';
import { auditCounts, updateAvailableResource } from '../../resources/audit.ts';
import {
  RECLAIM_INSTANCE_INTERVAL,
  RESCUE_TIMEOUT,
  RESIZE_CONFIRM_WINDOW,
  SHELVED_OFFLOAD_TIME,
  pollRescuedInstances,
  pollShelvedInstances,
  pollUnconfirmedResizes,
  reclaimQueuedDeletes,
} from './timed-commands.ts';

export type { TaskReport } from './report.ts';
export { PeriodicTaskName } from './report.ts';

export interface PeriodicDeps extends ComputeDeps {
  schedule: PeriodicSchedule;
}

interface PeriodicTask {
  name: PeriodicTaskName;
  enabled: (config: Config) => boolean;
  run: (deps: PeriodicDeps, now: Date, instances: InstanceSource) => Promise<TaskReport>;
}

const always = () => true;

/** Every periodic task, in the order a run performs them. */
export const PERIODIC_TASKS: readonly PeriodicTask[] = [
  {
    name: PeriodicTaskName.LIFECYCLE_SWEEPER,
    enabled: always,
    run: (deps, now) => sweepExpiredWaits(deps, now),
  },
  {
    // Nova's update_available_resource: usage rebuilt from claims, orphaned claims released,
    // drift reported (the run's metrics publish the counts).
    name: PeriodicTaskName.UPDATE_AVAILABLE_RESOURCE,
    enabled: always,
    run: async (deps, now) => ({
      task: PeriodicTaskName.UPDATE_AVAILABLE_RESOURCE,
      ...auditCounts(await updateAvailableResource(deps, now)),
    }),
  },
  { name: PeriodicTaskName.RESUME_PERIODIC_COMMANDS, enabled: always, run: resumePeriodicCommands },
  {
    name: PeriodicTaskName.INSTANCE_BUILD_TIMEOUT,
    enabled: (c) => c.instance_build_timeout > 0,
    run: checkInstanceBuildTime,
  },
  {
    name: PeriodicTaskName.REBOOT_TIMEOUT,
    enabled: (c) => c.reboot_timeout > 0,
    run: pollRebootingInstances,
  },
  {
    name: PeriodicTaskName.RESCUE_TIMEOUT,
    enabled: (c) => RESCUE_TIMEOUT.interval(c) !== null,
    run: pollRescuedInstances,
  },
  {
    name: PeriodicTaskName.RESIZE_CONFIRM_WINDOW,
    enabled: (c) => RESIZE_CONFIRM_WINDOW.interval(c) !== null,
    run: pollUnconfirmedResizes,
  },
  {
    name: PeriodicTaskName.RECLAIM_INSTANCE_INTERVAL,
    enabled: (c) => RECLAIM_INSTANCE_INTERVAL.interval(c) !== null,
    run: reclaimQueuedDeletes,
  },
  {
    name: PeriodicTaskName.SHELVED_OFFLOAD_TIME,
    enabled: (c) => SHELVED_OFFLOAD_TIME.interval(c) !== null,
    run: pollShelvedInstances,
  },
  {
    name: PeriodicTaskName.SYNC_POWER_STATE,
    enabled: (c) => c.sync_power_state_interval >= 0,
    run: (deps: PowerSyncDeps, now, instances) => syncPowerStates(deps, now, instances),
  },
];

/**
 * Runs every enabled task once and returns their reports. A task that fails as a whole (its
 * listing failed, say) is reported with one error; the others still run.
 */
export async function runPeriodicTasks(deps: PeriodicDeps, now: Date): Promise<TaskReport[]> {
  const instances = listOnce(deps);
  const reports: TaskReport[] = [];
  for (const task of PERIODIC_TASKS) {
    if (!task.enabled(deps.config)) continue;
    try {
      reports.push(await task.run(deps, now, instances));
    } catch (e) {
      deps.logger.error('periodic task failed', {
        task: task.name,
        error_name: (e as Error)?.name ?? 'Error',
        error_message: (e as Error)?.message ?? String(e),
      });
      reports.push({ task: task.name, examined: 0, counts: {}, errors: 1, skipped: 'failed' });
    }
  }
  return reports;
}

export function composePeriodicDeps(
  config: Config,
  logger: Logger,
  clients: AwsClients = awsClients(),
): PeriodicDeps {
  return {
    ...composeComputeDeps(config, logger, clients),
    schedule: new DynamoDbPeriodicSchedule(clients.doc, config.tables.state),
  };
}
