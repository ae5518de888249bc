// Power-state sync (Nova's _sync_power_states / _sync_instance_power_state), every
// sync_power_state_interval seconds (-1: never; 0: every run). The hypervisor is authoritative:
// for each instance without a running task, the driver's power state is recorded on the
// instance, then a vm_state the guest contradicts is resolved through the compute API with an
// admin context, as Nova does:
//
//   ACTIVE   + guest SHUTDOWN / CRASHED / SUSPENDED → stop
//   STOPPED  + guest not NOSTATE / SHUTDOWN / CRASHED → force_stop
//   PAUSED   + guest SHUTDOWN / CRASHED              → force_stop
//   ACTIVE   + guest PAUSED or gone, SOFT_DELETED / DELETED + guest up → logged, left alone
//   BUILDING, RESCUED, RESIZED, SUSPENDED, ERROR     → Nova ignores them
//
// Nova's force_stop is stop without the API's vm_state and lock checks (it still takes the task
// only when there is none); it does not force a hard power-off.

import { requestIdForCommand } from '../../commands/parse.ts';
import { ErrorCode, InstanceNotFoundError, isStratusError } from '../../errors.ts';
import type { Instance } from '../instance.ts';
import { type ComputeDeps, deliverCommitted, newAction } from '../runtime.ts';
import { POWER_STATE_NAMES, PowerState, TaskState, VmState } from '../states.ts';
import {
  type RegisteredHandler,
  periodicCommandId,
  periodicRuntime,
  runPeriodicCommand,
} from './commands.ts';
import {
  type InstanceSource,
  PeriodicTaskName,
  type TaskReport,
  handleOne,
  newReport,
  tally,
} from './report.ts';
import { instancesOnNodes } from './scan.ts';
import type { PeriodicSchedule } from './schedule.ts';

/** The schedule item of this task: `pk periodic#power-sync`. */
export const POWER_SYNC_SCHEDULE = 'power-sync';

/**
 * force_stop's clean_shutdown: Nova's force_stop(context, instance, clean_shutdown=True) and
 * _sync_instance_power_state does not pass it, so the guest gets a clean shutdown.
 */
export const FORCE_STOP_CLEAN_SHUTDOWN = true;

export type PowerSyncFix =
  | { kind: 'stop' | 'force_stop'; reason: string }
  | { kind: 'log'; reason: string }
  | { kind: 'none' };

const { NOSTATE, PAUSED, SHUTDOWN, CRASHED, SUSPENDED } = PowerState;

/** Nova's resolution of a vm_state the guest's power state contradicts. */
export function powerSyncFix(vm: VmState, power: PowerState): PowerSyncFix {
  switch (vm) {
    case VmState.ACTIVE:
      if (power === SHUTDOWN || power === CRASHED) {
        return { kind: 'stop', reason: 'Instance shutdown by itself. Calling the stop API.' };
      }
      if (power === SUSPENDED) {
        return {
          kind: 'stop',
          reason: 'Instance is suspended unexpectedly. Calling the stop API.',
        };
      }
      if (power === PAUSED)
        return { kind: 'log', reason: 'Instance is paused unexpectedly. Ignore.' };
      if (power === NOSTATE) {
        return { kind: 'log', reason: 'Instance is unexpectedly not found. Ignore.' };
      }
      return { kind: 'none' };
    case VmState.STOPPED:
      if (power !== NOSTATE && power !== SHUTDOWN && power !== CRASHED) {
        return { kind: 'force_stop', reason: 'Instance is not stopped. Calling the stop API.' };
      }
      return { kind: 'none' };
    case VmState.PAUSED:
      if (power === SHUTDOWN || power === CRASHED) {
        return {
          kind: 'force_stop',
          reason: 'Paused instance shutdown by itself. Calling the stop API.',
        };
      }
      return { kind: 'none' };
    case VmState.SOFT_DELETED:
    case VmState.DELETED:
      if (power !== NOSTATE && power !== SHUTDOWN) {
        return { kind: 'log', reason: 'Instance is not (soft-)deleted.' };
      }
      return { kind: 'none' };
    default:
      // BUILDING, RESCUED, RESIZED, SUSPENDED, ERROR (and the shelved states): left alone.
      return { kind: 'none' };
  }
}

/**
 * Nova's force_stop: the stop operation's compute half, started without the API's vm_state and
 * lock checks. It still takes the task only from "no task" (expected_task_state [None]), so it
 * never pre-empts anything.
 */
export function forceStop(stop: RegisteredHandler): RegisteredHandler {
  return {
    ...stop,
    async prepare(rt) {
      const instance = await rt.deps.store.getInstance(rt.command.instance_id);
      if (!instance || instance.deleted) throw new InstanceNotFoundError(rt.command.instance_id);
      return undefined as never;
    },
    async start(rt) {
      await rt.deps.store.updateInstance({
        instanceId: rt.command.instance_id,
        action: rt.actionRef,
        startAction: newAction(rt.command, rt.subject, rt.now()),
        expect: { taskState: [null] },
        changes: {
          task_state: TaskState.POWERING_OFF,
          task_owner: rt.command.command_id,
          progress: 0,
        },
        notifications: (old, next) => rt.updates(old, next),
        now: rt.now(),
      });
    },
  };
}

const SYNC_COMMAND = `periodic:${PeriodicTaskName.SYNC_POWER_STATE}`;
const SYNC_CONTEXT = { commandId: SYNC_COMMAND, requestId: requestIdForCommand(SYNC_COMMAND) };

/** Nova's _get_power_state: the driver's view, NOSTATE for a guest it does not know. */
async function driverPowerState(deps: ComputeDeps, instance: Instance): Promise<PowerState> {
  try {
    const info = await deps.driver.getInfo(SYNC_CONTEXT, instance);
    return info.state;
  } catch (e) {
    if (e instanceof InstanceNotFoundError) return NOSTATE;
    if (isStratusError(e) && e.code === ErrorCode.InstanceNotFound) return NOSTATE;
    throw e;
  }
}

/** power_state is always updated from the hypervisor to the record (one write, its own action). */
async function recordPowerState(
  deps: ComputeDeps,
  instance: Instance,
  power: PowerState,
): Promise<Instance | null> {
  const rt = periodicRuntime(deps, PeriodicTaskName.SYNC_POWER_STATE, instance);
  try {
    const res = await deps.store.updateInstance({
      instanceId: instance.instance_id,
      action: rt.actionRef,
      startAction: newAction(rt.command, rt.subject, rt.now()),
      // Only while nothing else runs, and only on the vm_state the decision is made for.
      expect: { taskState: [null], vmState: [instance.vm_state] },
      changes: { power_state: power },
      notifications: (old, next) => rt.updates(old, next),
      finish: rt.outcome('succeeded'),
      now: rt.now(),
    });
    await deliverCommitted(deps, rt.subject, rt.command.command_id);
    return res.new;
  } catch (e) {
    if (isStratusError(e) && e.status === 409) return null; // a task started meanwhile
    throw e;
  }
}

async function syncInstance(deps: ComputeDeps, instanceId: string): Promise<string> {
  // Nova refreshes the record right before deciding, to narrow (not close) the race with
  // operations; every write below names what it expects to close it.
  let instance = await deps.store.getInstance(instanceId);
  if (!instance || instance.deleted) return 'gone';
  if (instance.task_state !== null) return 'task_running';
  // Mid-migration, the record may already name the other host.
  if (instance.host !== deps.config.host) return 'other_host';
  const power = await driverPowerState(deps, instance);
  let outcome = 'in_sync';
  if (power !== instance.power_state) {
    deps.logger.info('power_state differs from the hypervisor; recording the hypervisor’s', {
      instance_id: instanceId,
      db_power_state: POWER_STATE_NAMES[instance.power_state],
      vm_power_state: POWER_STATE_NAMES[power],
    });
    const recorded = await recordPowerState(deps, instance, power);
    if (!recorded) return 'raced';
    instance = recorded;
    outcome = 'recorded';
  }
  const fix = powerSyncFix(instance.vm_state, power);
  if (fix.kind === 'none') return outcome;
  const details = {
    instance_id: instanceId,
    vm_state: instance.vm_state,
    vm_power_state: POWER_STATE_NAMES[power],
  };
  if (fix.kind === 'log') {
    deps.logger.warn(fix.reason, details);
    return `${outcome}_ignored`;
  }
  deps.logger.warn(fix.reason, details);
  const force = fix.kind === 'force_stop';
  const status = await runPeriodicCommand(deps, {
    task: PeriodicTaskName.SYNC_POWER_STATE,
    commandId: `${periodicCommandId(PeriodicTaskName.SYNC_POWER_STATE, instance)}:${fix.kind}`,
    operation: 'stop_instance',
    instance,
    args: { clean_shutdown: force ? FORCE_STOP_CLEAN_SHUTDOWN : true },
    ...(force ? { adapt: forceStop } : {}),
  });
  return `${fix.kind}_${status}`;
}

export interface PowerSyncDeps extends ComputeDeps {
  schedule: PeriodicSchedule;
}

export async function syncPowerStates(
  deps: PowerSyncDeps,
  now: Date,
  instances: InstanceSource = () => instancesOnNodes(deps),
): Promise<TaskReport> {
  const report = newReport(PeriodicTaskName.SYNC_POWER_STATE);
  const interval = deps.config.sync_power_state_interval;
  if (interval < 0) return { ...report, skipped: 'disabled' };
  if (!(await deps.schedule.claim(POWER_SYNC_SCHEDULE, now, interval))) {
    return { ...report, skipped: 'not_due' };
  }
  for (const listed of await instances()) {
    if (listed.task_state !== null) {
      // Skipped while a task runs: the task decides the power state.
      report.examined += 1;
      tally(report, 'task_running');
      continue;
    }
    await handleOne(deps, report, { instance_id: listed.instance_id }, () =>
      syncInstance(deps, listed.instance_id),
    );
  }
  return report;
}
