// Completes tasks the driver left pending, from its lifecycle events (ARCHITECTURE §2.5: the
// contract's register_event_listener / emit_event). An event finishes the owning command's
// task through the same function a synchronous finish uses. Events that arrive late, twice or
// out of order change nothing: the task must still be pending on exactly that transition.
//
// One event matters without a pending task: the guest is gone (EC2 `terminated`) while no task
// runs and the instance expects a guest — it was destroyed outside Stratus. The hypervisor is
// authoritative (as in power sync), so power_state becomes CRASHED and an instance fault says
// why; power sync then resolves the vm_state as Nova does (ACTIVE + CRASHED → stop).

import { requestIdForCommand } from '../commands/parse.ts';
import type { Command } from '../commands/schemas.ts';
import { ErrorCode, StratusError, isStratusError } from '../errors.ts';
import type { ActionRecord } from '../store/state-store.ts';
import { type Operation, isOperation } from '../topology.ts';
import type { LifecycleEvent } from '../virt/events.ts';
import { PROGRESS_PENDING_EXPECT, PROGRESS_PENDING_SINCE } from './operations/common.ts';
import { OPERATION_HANDLERS } from './operations/registry.ts';
import type { Instance } from './instance.ts';
import {
  CommandRuntime,
  type ComputeDeps,
  deliverAllPending,
  deliverCommitted,
  newAction,
} from './runtime.ts';
import { POWER_STATE_NAMES, PowerState, TaskState, VmState } from './states.ts';

/** `guest_gone`: an out-of-band destroy was recorded (power_state CRASHED and a fault). */
export type LifecycleResult = 'completed' | 'ignored' | 'guest_gone';

/** Tasks whose driver call destroys the guest: for them a guest that is gone has "stopped". */
export const DESTROYING_TASK_STATES: ReadonlySet<TaskState | null> = new Set([
  TaskState.DELETING,
  TaskState.SHELVING_OFFLOADING,
  // A volume-backed shelve offloads (destroys the guest) while still SHELVING.
  TaskState.SHELVING,
]);

/** vm_states in which the instance has a guest: its disappearance is a crash. */
const GUEST_EXPECTED: ReadonlySet<VmState> = new Set([
  VmState.ACTIVE,
  VmState.STOPPED,
  VmState.PAUSED,
  VmState.SUSPENDED,
  VmState.RESCUED,
  VmState.RESIZED,
]);

/** The fault an out-of-band destroy leaves on the instance. */
export function guestGoneError(instanceId: string, event: LifecycleEvent): StratusError {
  return new StratusError(
    ErrorCode.DriverError,
    `The guest of instance ${instanceId} was destroyed outside Stratus ` +
      `(${event.source} reported it gone at ${event.occurredAt}).`,
  );
}

/** The command id of the write that records one out-of-band destroy of one record version. */
export function guestGoneCommandId(instance: Instance): string {
  return `lifecycle:guest-gone:${instance.instance_id}:v${instance.version}`;
}

/** Rebuilds enough of the owning command to finish it (args are not stored: they may hold secrets). */
export function commandOf(action: ActionRecord): Command {
  return {
    version: 1,
    command_id: action.command_id,
    operation: action.operation as Operation,
    context: {
      user_id: action.user_id ?? '',
      project_id: action.project_id ?? '',
      request_id: action.request_id,
      roles: [],
    },
    instance_id: action.instance_id ?? '',
    args: {} as Command['args'],
    ...(action.reply_to ? { reply_to: action.reply_to } : {}),
  };
}

/**
 * The runtime that finishes an action's task outside the command's own run: from a lifecycle
 * event here, or from the periodic sweeper when the event never came.
 */
export function runtimeForAction(deps: ComputeDeps, action: ActionRecord): CommandRuntime {
  return new CommandRuntime(deps, commandOf(action));
}

export async function handleLifecycleEvent(
  deps: ComputeDeps,
  event: LifecycleEvent,
): Promise<LifecycleResult> {
  const instance = await deps.store.getInstance(event.instanceId);
  if (!instance) return 'ignored';
  const action = instance.task_owner
    ? await deps.store.getAction(
        { kind: 'instance', id: instance.instance_id },
        instance.task_owner,
      )
    : null;
  const since = action?.progress[PROGRESS_PENDING_SINCE];
  if (
    !action ||
    action.status !== 'running' ||
    action.progress[PROGRESS_PENDING_EXPECT] !== event.transition ||
    // An event older than the wait belongs to an earlier change of the same guest.
    (typeof since === 'string' && event.occurredAt < since) ||
    // A vanished guest completes only a task that destroys it (as the sweeper decides).
    (event.guestGone === true && !DESTROYING_TASK_STATES.has(instance.task_state))
  ) {
    if (event.guestGone === true && instance.task_state === null) {
      return recordGuestGone(deps, instance, event);
    }
    deps.logger.info('lifecycle event matches no pending task', {
      instance_id: event.instanceId,
      transition: event.transition,
    });
    // A redelivered event whose first delivery completed the task but died before publishing:
    // deliver what that completion committed.
    await deliverAllPending(deps, { kind: 'instance', id: event.instanceId });
    return 'ignored';
  }
  if (!isOperation(action.operation)) return 'ignored';
  const handler = OPERATION_HANDLERS[action.operation];
  if (!handler?.complete) return 'ignored';
  const rt = runtimeForAction(deps, action);
  try {
    await handler.complete(rt, event);
  } catch (e) {
    // A twin of this event completed the task a moment ago.
    if (e instanceof StratusError && e.status === 409) return 'ignored';
    throw e;
  }
  await deliverCommitted(deps, rt.subject, action.command_id);
  return 'completed';
}

/**
 * The guest was destroyed while no task ran. Like power sync's own writes: one conditional write
 * (no task, same vm_state) with its own action created and finished in it, carrying the fault and
 * the update notification. Repeats change nothing: the record already says CRASHED, and two
 * concurrent twins share one command id, so only one write starts its action.
 */
async function recordGuestGone(
  deps: ComputeDeps,
  instance: Instance,
  event: LifecycleEvent,
): Promise<LifecycleResult> {
  const details = {
    instance_id: instance.instance_id,
    vm_state: instance.vm_state,
    power_state: POWER_STATE_NAMES[instance.power_state],
    occurred_at: event.occurredAt,
  };
  if (
    instance.deleted ||
    !GUEST_EXPECTED.has(instance.vm_state) ||
    instance.power_state === PowerState.CRASHED ||
    // The event is about a guest older than the current one (a rebuild re-created it).
    (instance.launched_at !== null && event.occurredAt < instance.launched_at)
  ) {
    deps.logger.info('guest-gone event changes nothing', details);
    return 'ignored';
  }
  const commandId = guestGoneCommandId(instance);
  const rt = new CommandRuntime(deps, {
    version: 1,
    command_id: commandId,
    // Not an operation of the contract: the runtime uses the name only in the recorded outcome.
    operation: 'lifecycle_guest_gone' as Operation,
    context: {
      user_id: instance.user_id,
      project_id: instance.project_id,
      request_id: requestIdForCommand(commandId),
      roles: [],
    },
    instance_id: instance.instance_id,
    args: {} as Command['args'],
  });
  const error = guestGoneError(instance.instance_id, event);
  try {
    await deps.store.updateInstance({
      instanceId: instance.instance_id,
      action: rt.actionRef,
      startAction: newAction(rt.command, rt.subject, rt.now()),
      expect: { taskState: [null], vmState: [instance.vm_state] },
      changes: { power_state: PowerState.CRASHED },
      notifications: (old, next) => rt.updates(old, next),
      fault: rt.fault(instance, error),
      finish: rt.outcome('succeeded'),
      now: rt.now(),
    });
  } catch (e) {
    // A task started meanwhile, or a twin of this event recorded it a moment ago.
    if (isStratusError(e) && e.status === 409) return 'ignored';
    throw e;
  }
  await deliverCommitted(deps, rt.subject, commandId);
  deps.logger.warn('guest destroyed outside Stratus: power_state CRASHED', details);
  return 'guest_gone';
}
