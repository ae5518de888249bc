// Completes tasks the driver left pending, from its lifecycle events (ARCHITECTURE §2.5: the
// contract's register_event_listener / emit_event). An event finishes the owning command's
// task through the same function a synchronous finish uses. Events that arrive late, twice or
// out of order change nothing: the task must still be pending on exactly that transition.

import type { Command } from '../commands/schemas.ts';
import { StratusError } from '../errors.ts';
import type { ActionRecord } from '../store/state-store.ts';
import { type Operation, isOperation } from '../topology.ts';
import type { LifecycleEvent } from '../virt/events.ts';
import { PROGRESS_PENDING_EXPECT, PROGRESS_PENDING_SINCE } from './operations/common.ts';
import { OPERATION_HANDLERS } from './operations/registry.ts';
import {
  CommandRuntime,
  type ComputeDeps,
  deliverAllPending,
  deliverCommitted,
} from './runtime.ts';

export type LifecycleResult = 'completed' | 'ignored';

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
    (typeof since === 'string' && event.occurredAt < since)
  ) {
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
