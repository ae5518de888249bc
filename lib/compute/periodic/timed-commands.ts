// The periodic tasks that, once an instance has stayed in a state long enough, call the compute
// API on it with an admin context (nova/compute/manager.py):
//
//   rescue_timeout             RESCUED       since launched_at          → unrescue
//   resize_confirm_window      RESIZED       since updated_at           → confirm_resize
//   reclaim_instance_interval  SOFT_DELETED  since deleted_at           → terminate (reclaim)
//   shelved_offload_time       SHELVED       since shelved_at (sysmeta) → shelve_offload
//
// Each option disables its task at 0 (shelved_offload_time: -1 never offloads, and 0 is done by
// shelve itself, so both leave this task off). Like Nova, only instances without a running task
// are acted on.

import type { Config } from '../../config.ts';
import type { Operation } from '../../topology.ts';
import type { Instance } from '../instance.ts';
import type { ComputeDeps } from '../runtime.ts';
import { VmState } from '../states.ts';
import { periodicCommandId, runPeriodicCommand } from './commands.ts';
import {
  type InstanceSource,
  PeriodicTaskName,
  type TaskReport,
  handleOne,
  newReport,
  olderThan,
} from './report.ts';
import { instancesOnNodes } from './scan.ts';

export interface TimedCommandSpec {
  task: PeriodicTaskName;
  /** The option's seconds when the task is on, else null. */
  interval: (config: Config) => number | null;
  vmState: VmState;
  /** When the instance entered the state, as the task measures it. */
  since: (instance: Instance) => string | null;
  operation: Operation;
}

const positive = (seconds: number): number | null => (seconds > 0 ? seconds : null);

export const RESCUE_TIMEOUT: TimedCommandSpec = {
  task: PeriodicTaskName.RESCUE_TIMEOUT,
  interval: (c) => positive(c.rescue_timeout),
  vmState: VmState.RESCUED,
  // Rescue resets launched_at to the moment the rescue finished.
  since: (i) => i.launched_at,
  operation: 'unrescue_instance',
};

export const RESIZE_CONFIRM_WINDOW: TimedCommandSpec = {
  task: PeriodicTaskName.RESIZE_CONFIRM_WINDOW,
  interval: (c) => positive(c.resize_confirm_window),
  vmState: VmState.RESIZED,
  since: (i) => i.updated_at,
  operation: 'confirm_resize',
};

export const RECLAIM_INSTANCE_INTERVAL: TimedCommandSpec = {
  task: PeriodicTaskName.RECLAIM_INSTANCE_INTERVAL,
  interval: (c) => positive(c.reclaim_instance_interval),
  vmState: VmState.SOFT_DELETED,
  since: (i) => i.deleted_at,
  operation: 'terminate_instance',
};

export const SHELVED_OFFLOAD_TIME: TimedCommandSpec = {
  task: PeriodicTaskName.SHELVED_OFFLOAD_TIME,
  interval: (c) => positive(c.shelved_offload_time),
  vmState: VmState.SHELVED,
  // Nova skips a shelved instance without shelved_at.
  since: (i) => i.system_metadata.shelved_at ?? null,
  operation: 'shelve_offload_instance',
};

export const TIMED_COMMANDS: readonly TimedCommandSpec[] = [
  RESCUE_TIMEOUT,
  RESIZE_CONFIRM_WINDOW,
  RECLAIM_INSTANCE_INTERVAL,
  SHELVED_OFFLOAD_TIME,
];

function isDue(spec: TimedCommandSpec, instance: Instance, interval: number, now: Date): boolean {
  return instance.vm_state === spec.vmState && olderThan(spec.since(instance), interval, now);
}

async function actOn(
  deps: ComputeDeps,
  spec: TimedCommandSpec,
  instanceId: string,
  interval: number,
  now: Date,
): Promise<string> {
  const instance = await deps.store.getInstance(instanceId);
  if (!instance || instance.deleted || !isDue(spec, instance, interval, now)) return 'finished';
  if (instance.task_state !== null) return 'task_running';
  return runPeriodicCommand(deps, {
    task: spec.task,
    commandId: periodicCommandId(spec.task, instance),
    operation: spec.operation,
    instance,
  });
}

/** The periodic task for one spec: `(deps, now) => report`. */
export function timedCommandTask(spec: TimedCommandSpec) {
  return async (
    deps: ComputeDeps,
    now: Date,
    instances: InstanceSource = () => instancesOnNodes(deps),
  ): Promise<TaskReport> => {
    const report = newReport(spec.task);
    const interval = spec.interval(deps.config);
    if (interval === null) return { ...report, skipped: 'disabled' };
    for (const listed of await instances()) {
      if (!isDue(spec, listed, interval, now)) continue;
      await handleOne(deps, report, { instance_id: listed.instance_id }, () =>
        actOn(deps, spec, listed.instance_id, interval, now),
      );
    }
    return report;
  };
}

export const pollRescuedInstances = timedCommandTask(RESCUE_TIMEOUT);
export const pollUnconfirmedResizes = timedCommandTask(RESIZE_CONFIRM_WINDOW);
export const reclaimQueuedDeletes = timedCommandTask(RECLAIM_INSTANCE_INTERVAL);
export const pollShelvedInstances = timedCommandTask(SHELVED_OFFLOAD_TIME);
