// lock_instance and unlock_instance (nova-compute.md §1.7, §3): API-only, no driver, no
// task_state. The operation is the API's write: the record change, the action with its event
// (`api_lock` / `api_unlock`) and the compute.instance.update commit together; the outcome
// is recorded right after.
//
//   lock     locked, locked_by 'owner' when the caller's project owns the instance, else
//            'admin'; the reason (if given) in locked_reason. An owner locking an instance that
//            is already locked changes nothing (Nova returns before recording an action).
//   unlock   clears all three. Nova's policy: unlocking a lock that was not taken in the
//            caller's role (is_expected_locked_by false) needs unlock_override, admin-only, so
//            an owner cannot lift an admin's lock (403); an admin can lift any lock.
//
// The lock itself is not lock-checked, and any vm_state or task_state may be (un)locked.

import type { ArgsOf } from '../../commands/schemas.ts';
import { ErrorCode, StratusError } from '../../errors.ts';
import type { OperationHandler } from '../executor.ts';
import type { Instance, InstanceChanges } from '../instance.ts';
import type { CommandRuntime } from '../runtime.ts';
import { loadOwnedInstance } from './instance-access.ts';
import { type ApiRules, startOnInstance } from './no-task-operation.ts';
import { actionEvent } from './common.ts';

const ANY_STATE: ApiRules = { vmStates: 'any', taskStates: 'any' };

/**
 * The API call is over once its write committed; the outcome follows in a second write (an
 * action created already final would carry a null lifecycle-wait index key, which DynamoDB
 * refuses). A redelivery after a crash in between only records the outcome.
 */
async function finishApiCall(rt: CommandRuntime): Promise<void> {
  const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
  if (action?.status !== 'running') return;
  await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
    finish: rt.outcome('succeeded'),
  });
}

function isOwner(rt: CommandRuntime, instance: Instance): boolean {
  return instance.project_id === rt.command.context.project_id;
}

/** Nova's is_expected_locked_by: the lock, if any, was taken in the caller's role. */
export function isExpectedLockedBy(instance: Instance, callerIsOwner: boolean): boolean {
  const expected = callerIsOwner ? 'owner' : 'admin';
  return !instance.locked_by || instance.locked_by === expected;
}

/** The API's lock decision for the record it writes over; null = Nova's owner no-op. */
function lockChanges(rt: CommandRuntime, current: Instance): InstanceChanges | null {
  const owner = isOwner(rt, current);
  if (current.locked && owner) return null;
  const { reason } = rt.command.args as ArgsOf<'lock_instance'>;
  return {
    locked: true,
    locked_by: owner ? 'owner' : 'admin',
    // Nova sets locked_reason only when a reason is given; an earlier one stays otherwise.
    ...(reason ? { locked_reason: reason } : {}),
  };
}

export const lockInstance: OperationHandler<boolean> = {
  operation: 'lock_instance',

  /** Prepared: whether this lock changes anything (the owner re-lock is a no-op). */
  async prepare(rt, admin) {
    const instance = await loadOwnedInstance(rt, admin);
    return lockChanges(rt, instance) !== null;
  },

  async start(rt, locks) {
    await startOnInstance(rt, ANY_STATE, {
      changes: (current) => lockChanges(rt, current) ?? {},
      notifications: (old, next) => rt.updates(old, next),
      ...(locks ? { event: actionEvent(rt, 'api_lock', 'Success') } : {}),
    });
  },

  perform: finishApiCall,
};

function unlockForbidden(instanceId: string): StratusError {
  return new StratusError(
    ErrorCode.Forbidden,
    `Instance ${instanceId} was locked by an admin: unlocking it needs the admin role ` +
      `(policy os_compute_api:os-lock-server:unlock:unlock_override)`,
  );
}

export const unlockInstance: OperationHandler<boolean> = {
  operation: 'unlock_instance',

  /** Prepared: whether the caller is a (trusted) admin, who may lift any lock. */
  async prepare(rt, admin) {
    const instance = await loadOwnedInstance(rt, admin);
    if (!admin && !isExpectedLockedBy(instance, isOwner(rt, instance))) {
      throw unlockForbidden(instance.instance_id);
    }
    return admin;
  },

  async start(rt, admin) {
    await startOnInstance(rt, ANY_STATE, {
      changes: (current) => {
        // Re-checked on the record written over: an admin lock taken since prepare must not
        // be lifted by the owner.
        if (!admin && !isExpectedLockedBy(current, isOwner(rt, current))) {
          throw unlockForbidden(current.instance_id);
        }
        return { locked: false, locked_by: null, locked_reason: null };
      },
      notifications: (old, next) => rt.updates(old, next),
      event: actionEvent(rt, 'api_unlock', 'Success'),
    });
  },

  perform: finishApiCall,
};
