// Settles a task whose lifecycle event did not come in time: the driver is asked whether the
// awaited transition happened after all (Nova's view: the hypervisor is authoritative). If it
// did, the operation completes exactly as the event would have completed it; if not, the
// operation fails by its own failure rule. Either way through the operation's own handler,
// looked up in the registry, so the sweeper knows no operation's rules.

import {
  ErrorCode,
  InstanceNotFoundError,
  type StratusError,
  UnexpectedTaskStateError,
  isStratusError,
} from '../../errors.ts';
import type { ActionRecord } from '../../store/state-store.ts';
import { isOperation } from '../../topology.ts';
import type { LifecycleEvent } from '../../virt/events.ts';
import { lifecycleTimeout } from '../executor.ts';
import type { Instance } from '../instance.ts';
import { DESTROYING_TASK_STATES, runtimeForAction } from '../lifecycle.ts';
import { NOTHING_PENDING } from '../operations/common.ts';
import { OPERATION_HANDLERS } from '../operations/registry.ts';
import { type ComputeDeps, deliverCommitted } from '../runtime.ts';
import { LifecycleTransition, POWER_STATE_FOR_TRANSITION, TaskState } from '../states.ts';

export type SettleResult =
  /** The driver reports the transition: completed as its event would have. */
  | 'completed'
  /** It does not: failed by the operation's rule. */
  | 'abandoned'
  /** Another command owns the instance's task now: this one was ended `failed`. */
  | 'preempted'
  /** It finished meanwhile (its event, a twin, another sweeper). */
  | 'finished'
  /** Lost a race this run; the next run looks again. */
  | 'raced'
  /** The operation cannot be completed or abandoned from here (logged). */
  | 'unsupported';

export function isLifecycleTransition(value: unknown): value is LifecycleTransition {
  return (Object.values(LifecycleTransition) as unknown[]).includes(value);
}

/** Whether the hypervisor shows the transition the task waits for. */
async function transitionHappened(
  deps: ComputeDeps,
  action: ActionRecord,
  instance: Instance,
  transition: LifecycleTransition,
): Promise<boolean> {
  try {
    const info = await deps.driver.getInfo(
      { commandId: action.command_id, requestId: action.request_id },
      instance,
    );
    return info.state === POWER_STATE_FOR_TRANSITION[transition];
  } catch (e) {
    const notFound =
      e instanceof InstanceNotFoundError ||
      (isStratusError(e) && e.code === ErrorCode.InstanceNotFound);
    if (!notFound) throw e;
    return (
      transition === LifecycleTransition.STOPPED && DESTROYING_TASK_STATES.has(instance.task_state)
    );
  }
}

/** The event the driver would have sent, observed now. */
function observedEvent(
  deps: ComputeDeps,
  instance: Instance,
  transition: LifecycleTransition,
  now: Date,
): LifecycleEvent {
  return {
    instanceId: instance.instance_id,
    transition,
    node: instance.node ?? '',
    occurredAt: now.toISOString(),
    source: deps.config.driver === 'ec2' ? 'ec2' : 'fake',
    sequence: now.getTime() * 1000,
  };
}

/**
 * Ends a running action that can no longer finish its task (the task is another command's, or
 * the instance is gone): `failed`, instance untouched. Nothing happens if it finished already.
 */
async function endAction(
  deps: ComputeDeps,
  action: ActionRecord,
  error: StratusError,
): Promise<SettleResult> {
  const rt = runtimeForAction(deps, action);
  try {
    await deps.store.recordOnAction(rt.subject, action.command_id, {
      finish: rt.outcome('failed', error),
      progress: NOTHING_PENDING,
    });
  } catch (e) {
    if (isStratusError(e) && e.status === 409) return 'finished';
    throw e;
  }
  await deliverCommitted(deps, rt.subject, action.command_id);
  deps.logger.warn('waiting action ended: it no longer owns its task', {
    command_id: action.command_id,
    operation: action.operation,
    instance_id: action.instance_id,
    reason: error.code,
  });
  return 'preempted';
}

function preemptedError(instance: Instance, action: ActionRecord): StratusError {
  return new UnexpectedTaskStateError(
    instance.instance_id,
    [`owned by ${action.command_id}`],
    instance.task_state,
    instance.task_state === TaskState.DELETING
      ? ErrorCode.UnexpectedDeletingTaskState
      : ErrorCode.UnexpectedTaskState,
  );
}

/** After a conflict: finished, taken by another command, or a race to look at next run. */
async function afterConflict(deps: ComputeDeps, action: ActionRecord): Promise<SettleResult> {
  const again = await deps.store.getAction(action.subject, action.command_id);
  if (!again || again.status !== 'running') return 'finished';
  const instance = action.instance_id ? await deps.store.getInstance(action.instance_id) : null;
  if (!instance) return endAction(deps, again, new InstanceNotFoundError(action.instance_id ?? ''));
  if (instance.task_owner !== action.command_id) {
    return endAction(deps, again, preemptedError(instance, again));
  }
  return 'raced';
}

/**
 * Completes or fails `action`'s task, waiting on `transition`. The caller has re-read the
 * action by key and found it running.
 */
export async function settleWait(
  deps: ComputeDeps,
  action: ActionRecord,
  transition: LifecycleTransition,
  now: Date,
): Promise<SettleResult> {
  const instance = action.instance_id ? await deps.store.getInstance(action.instance_id) : null;
  if (!instance) {
    return endAction(deps, action, new InstanceNotFoundError(action.instance_id ?? ''));
  }
  // Another command took the task (a delete, a hard reboot) and did not get to end this one.
  if (instance.task_owner !== null && instance.task_owner !== action.command_id) {
    return endAction(deps, action, preemptedError(instance, action));
  }
  const handler = isOperation(action.operation) ? OPERATION_HANDLERS[action.operation] : undefined;
  const happened = await transitionHappened(deps, action, instance, transition);
  const step = happened ? handler?.complete : handler?.abandon;
  if (!handler || !step) {
    deps.logger.warn('waiting action left as it is: its operation cannot be settled here', {
      command_id: action.command_id,
      operation: action.operation,
      instance_id: instance.instance_id,
      missing: !handler ? 'handler' : happened ? 'complete' : 'abandon',
    });
    return 'unsupported';
  }
  const rt = runtimeForAction(deps, action);
  try {
    if (happened) await handler.complete!(rt, observedEvent(deps, instance, transition, now));
    else await handler.abandon!(rt, lifecycleTimeout(instance.instance_id, transition));
  } catch (e) {
    if (!(isStratusError(e) && e.status === 409)) throw e;
    return afterConflict(deps, action);
  }
  await deliverCommitted(deps, rt.subject, action.command_id);
  deps.logger.info(happened ? 'waiting task completed' : 'waiting task abandoned', {
    command_id: action.command_id,
    operation: action.operation,
    instance_id: instance.instance_id,
    transition,
  });
  return happened ? 'completed' : 'abandoned';
}
