// Pieces of the operations Nova runs without a task_state (nova-compute.md §1.6, §1.7): volume
// and interface attach/detach, fixed IPs, network info injection, consoles and diagnostics.
// Nothing serialises them through task_state, so each write is conditional on what it reads
// instead: the first write names the vm/task states the API accepted (and starts the action in
// the same commit), later writes re-derive their change from the record they find.

import { ErrorCode, StratusError } from '../../errors.ts';
import type { Notification } from '../../notifications/notification.ts';
import type { ActionEvent, ActionRecord } from '../../store/state-store.ts';
import type { Expectation } from '../expectations.ts';
import type { Instance, InstanceChanges } from '../instance.ts';
import { type CommandRuntime, newAction } from '../runtime.ts';
import type { TaskState, VmState } from '../states.ts';
import { loadOwnedInstance } from './instance-access.ts';
import { actionEvent } from './common.ts';

/** Nova's API decorators for one operation. */
export interface ApiRules {
  /** check_instance_state(vm_state=…); 'any' when Nova does not check it. */
  vmStates: readonly VmState[] | 'any';
  /** check_instance_state(task_state=…); default [None]. */
  taskStates?: readonly (TaskState | null)[] | 'any';
  /** check_instance_lock (default true). */
  checksLock?: boolean;
  /** check_instance_host, or the compute RPC that needs instance.host (default true). */
  requiresHost?: boolean | ((instance: Instance) => boolean);
  /** must_have_launched (default true when vm_states are checked). */
  mustHaveLaunched?: boolean;
}

/** Nova's API checks (read-only): the instance, or a StratusError that rejects the command. */
export async function checkInstance(
  rt: CommandRuntime,
  admin: boolean,
  rules: ApiRules,
): Promise<Instance> {
  const instance = await loadOwnedInstance(rt, admin);
  if ((rules.checksLock ?? true) && instance.locked && !admin) {
    throw new StratusError(
      ErrorCode.InstanceIsLocked,
      `Instance ${instance.instance_id} is locked`,
    );
  }
  const requiresHost =
    typeof rules.requiresHost === 'function'
      ? rules.requiresHost(instance)
      : (rules.requiresHost ?? true);
  if (requiresHost && !instance.host) {
    throw new StratusError(
      ErrorCode.InstanceInvalidState,
      `Instance ${instance.instance_id} is not ready (no host)`,
    );
  }
  if ((rules.mustHaveLaunched ?? rules.vmStates !== 'any') && !instance.launched_at) {
    throw new StratusError(
      ErrorCode.InstanceInvalidState,
      `Instance ${instance.instance_id} has not been launched`,
    );
  }
  const tasks = rules.taskStates ?? [null];
  const vmOk = rules.vmStates === 'any' || rules.vmStates.includes(instance.vm_state);
  const taskOk = tasks === 'any' || tasks.includes(instance.task_state);
  if (!vmOk || !taskOk) {
    throw new StratusError(
      ErrorCode.InstanceInvalidState,
      `Cannot '${rt.command.operation}' instance ${instance.instance_id} while it is in vm_state ` +
        `${instance.vm_state}, task_state ${instance.task_state ?? 'None'}`,
    );
  }
  return instance;
}

/** The states the API accepted, as the expectation of the command's first write. */
export function expectationOf(rules: ApiRules): Expectation {
  const tasks = rules.taskStates ?? [null];
  return {
    ...(tasks === 'any' ? {} : { taskState: tasks }),
    ...(rules.vmStates === 'any' ? {} : { vmState: rules.vmStates }),
  };
}

/**
 * The API's write: starts the action, and applies `changes` (re-evaluated on every retry of a
 * lost race) in the same commit, expecting the states the API accepted. A change function may
 * throw a StratusError to reject the command; then nothing is written.
 */
export async function startOnInstance(
  rt: CommandRuntime,
  rules: ApiRules,
  options: {
    changes?: (current: Instance) => InstanceChanges;
    notifications?: (old: Instance, next: Instance) => Notification[];
    event?: ActionEvent;
  } = {},
): Promise<Instance> {
  const res = await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    startAction: newAction(rt.command, rt.subject, rt.now()),
    expect: expectationOf(rules),
    changes: options.changes ?? {},
    ...(options.notifications ? { notifications: options.notifications } : {}),
    ...(options.event ? { event: options.event } : {}),
    now: rt.now(),
  });
  return res.new;
}

/** The instance a running command works on; null when its action already finished. */
export async function runningInstance(rt: CommandRuntime): Promise<Instance | null> {
  return (await running(rt))?.instance ?? null;
}

/** The running command's action and instance; null when the action already finished. */
export async function running(
  rt: CommandRuntime,
): Promise<{ action: ActionRecord; instance: Instance } | null> {
  const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
  if (action?.status !== 'running') return null;
  const instance = await rt.deps.store.getInstance(rt.command.instance_id);
  return instance ? { action, instance } : null;
}

/** Progress key: the command's `.start` notification is committed. */
const PROGRESS_STARTED = 'started';

/**
 * `compute.instance.<suffix>` committed on the action once: a redelivered command that already
 * sent it (progress key `started`) does not send it again.
 */
export async function notifyStartOnce(
  rt: CommandRuntime,
  action: ActionRecord,
  notification: Notification,
): Promise<void> {
  if (action.progress[PROGRESS_STARTED]) return;
  await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
    notifications: [notification],
    progress: { [PROGRESS_STARTED]: true },
  });
}

/**
 * Ends the command `succeeded`. With `changes`, one conditional instance write (its
 * notifications built from the record before and after); without, only the action is
 * written, with notifications about the instance as it is.
 */
export async function finishSucceeded(
  rt: CommandRuntime,
  instance: Instance,
  options: {
    event?: string;
    changes?: (current: Instance) => InstanceChanges;
    notifications?: (old: Instance, next: Instance) => Notification[];
    result?: unknown;
  },
): Promise<void> {
  const event = options.event ? actionEvent(rt, options.event, 'Success') : undefined;
  const finish = rt.outcome('succeeded', undefined, options.result);
  if (!options.changes) {
    await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
      notifications: options.notifications?.(instance, instance) ?? [],
      ...(event ? { event } : {}),
      finish,
    });
    return;
  }
  await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    expect: {},
    changes: options.changes,
    ...(options.notifications ? { notifications: options.notifications } : {}),
    ...(event ? { event } : {}),
    finish,
    now: rt.now(),
  });
}

/**
 * Ends the command `failed` as Nova's @wrap_instance_fault does: a fault on the instance, the
 * action event's Error, and whatever `changes` undo (e.g. a reserved block device mapping).
 */
export async function finishFailed(
  rt: CommandRuntime,
  instance: Instance,
  error: unknown,
  options: { event?: string; changes?: (current: Instance) => InstanceChanges } = {},
): Promise<void> {
  await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    expect: {},
    changes: options.changes ?? {},
    fault: rt.fault(instance, error),
    ...(options.event ? { event: actionEvent(rt, options.event, 'Error') } : {}),
    finish: rt.outcome('failed', error),
    now: rt.now(),
  });
}
