// soft_delete_instance and restore_instance (nova-compute.md §1.1).
//
// Soft delete: lock, launched, any vm_state and task_state (Nova's API sets SOFT_DELETING
// without a check, like delete). Stratus keeps the rule terminate keeps: it takes any task but
// DELETING / SOFT_DELETING, so two deletes never both run, and the command whose task it took is
// ended. The API write also sets deleted_at (and progress 0). Compute: soft_delete.start, the
// driver's soft_delete (NotSupported → a forced power off), SOFT_DELETED / None / the guest's
// power state, soft_delete.end. On failure the task is reverted with a fault, and soft_delete.end
// is still sent (Nova sends it from a `finally`). An instance without a host (shelved offloaded)
// is soft-deleted in place, as Nova's API does (delete.start/.end, terminated_at).
//
// Restore: lock, SOFT_DELETED, task None → RESTORING with deleted_at cleared; compute:
// restore.start, the driver's restore (NotSupported → power on), ACTIVE / None, restore.end;
// failure reverts the task. Without a host the API makes the instance ACTIVE itself.

import { ErrorCode, StratusError, UnexpectedTaskStateError } from '../../errors.ts';
import type { DriverResult } from '../../virt/driver.ts';
import { isNotSupported } from '../../virt/errors.ts';
import type { OperationHandler } from '../executor.ts';
import type { Instance } from '../instance.ts';
import { type CommandRuntime, newAction } from '../runtime.ts';
import {
  ALL_TASK_STATES,
  ALL_VM_STATES,
  POWER_STATE_FOR_TRANSITION,
  PowerState,
  TaskState,
  VmState,
} from '../states.ts';
import {
  actionEvent,
  endAsPreempted,
  endPreemptedCommand,
  expectLifecycle,
  ignoreFinished,
  isRetryable,
  NOTHING_PENDING,
  waitForDriver,
} from './common.ts';
import { loadOwnedInstance } from './instance-access.ts';
import { FORCED_SHUTDOWN, driverContext, taskOperation } from './task-operation.ts';

const SOFT_DELETE_EVENT = 'compute_soft_delete_instance';
const SOFT_DELETABLE_TASK_STATES = [
  null,
  ...ALL_TASK_STATES.filter((t) => t !== TaskState.DELETING && t !== TaskState.SOFT_DELETING),
];
const SOFT_DELETABLE_VM_STATES = ALL_VM_STATES.filter((v) => v !== VmState.DELETED);

function ownsSoftDelete(rt: CommandRuntime, current: Instance): void {
  if (
    current.task_state !== TaskState.SOFT_DELETING ||
    current.task_owner !== rt.command.command_id
  ) {
    throw new UnexpectedTaskStateError(
      current.instance_id,
      [TaskState.SOFT_DELETING],
      current.task_state,
    );
  }
}

/** The final write of a soft delete; also the completion path of a lifecycle event. */
async function finishSoftDelete(rt: CommandRuntime, powerState: PowerState): Promise<void> {
  await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    expect: { taskState: [TaskState.SOFT_DELETING] },
    changes: (current) => {
      ownsSoftDelete(rt, current);
      return {
        vm_state: VmState.SOFT_DELETED,
        task_state: null,
        task_owner: null,
        power_state: powerState,
      };
    },
    notifications: (old, next) => [...rt.updates(old, next), rt.notify(next, 'soft_delete.end')],
    event: actionEvent(rt, SOFT_DELETE_EVENT, 'Success'),
    finish: rt.outcome('succeeded'),
    progress: NOTHING_PENDING,
    now: rt.now(),
  });
}

async function failSoftDelete(rt: CommandRuntime, error: unknown) {
  const instance = await rt.deps.store.getInstance(rt.command.instance_id);
  if (!instance) return;
  await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    expect: { taskState: [TaskState.SOFT_DELETING] },
    changes: (current) => {
      ownsSoftDelete(rt, current);
      return { task_state: null, task_owner: null };
    },
    // soft_delete.end leaves Nova's `finally` before reverts_task_state clears the task.
    notifications: (old, next) => [rt.notify(old, 'soft_delete.end'), ...rt.updates(old, next)],
    fault: rt.fault(instance, error),
    event: actionEvent(rt, SOFT_DELETE_EVENT, 'Error'),
    finish: rt.outcome('failed', error),
    progress: NOTHING_PENDING,
    now: rt.now(),
  });
}

/** Nova's API `_local_delete` with the soft-delete callback: no compute host to ask. */
async function softDeleteInPlace(rt: CommandRuntime): Promise<void> {
  const now = rt.now();
  await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    expect: { taskState: [TaskState.SOFT_DELETING] },
    changes: (current) => {
      ownsSoftDelete(rt, current);
      return {
        vm_state: VmState.SOFT_DELETED,
        task_state: null,
        task_owner: null,
        terminated_at: now.toISOString(),
      };
    },
    // The local path announces itself as a delete (Nova passes 'delete' for soft_delete here).
    notifications: (old, next) => [
      rt.notify(old, 'delete.start'),
      ...rt.updates(old, next),
      rt.notify(next, 'delete.end'),
    ],
    finish: rt.outcome('succeeded'),
    progress: NOTHING_PENDING,
    now,
  });
}

/** The driver's soft delete; a driver without one powers the guest off at once. */
async function softDeleteGuest(rt: CommandRuntime, instance: Instance): Promise<DriverResult> {
  const ctx = driverContext(rt);
  try {
    return await rt.deps.driver.softDelete(ctx, instance);
  } catch (e) {
    if (!isNotSupported(e)) throw e;
    return rt.deps.driver.powerOff(ctx, instance, FORCED_SHUTDOWN);
  }
}

export const softDeleteInstance: OperationHandler<void> = {
  operation: 'soft_delete_instance',

  async prepare(rt, admin) {
    const instance = await loadOwnedInstance(rt, admin);
    if (instance.locked && !admin) {
      throw new StratusError(
        ErrorCode.InstanceIsLocked,
        `Instance ${instance.instance_id} is locked`,
      );
    }
    if (!instance.launched_at) {
      throw new StratusError(
        ErrorCode.InstanceInvalidState,
        `Instance ${instance.instance_id} has not been launched`,
      );
    }
    if (
      instance.task_state === TaskState.DELETING ||
      instance.task_state === TaskState.SOFT_DELETING
    ) {
      throw new StratusError(
        ErrorCode.InstanceInvalidState,
        `Instance ${instance.instance_id} is already being deleted (task_state ${instance.task_state})`,
      );
    }
  },

  /** The API's write: action, task and deleted_at in one commit, taking any running task. */
  async start(rt) {
    const now = rt.now();
    const res = await rt.deps.store.updateInstance({
      instanceId: rt.command.instance_id,
      action: rt.actionRef,
      startAction: newAction(rt.command, rt.subject, now),
      expect: { taskState: SOFT_DELETABLE_TASK_STATES, vmState: SOFT_DELETABLE_VM_STATES },
      changes: {
        task_state: TaskState.SOFT_DELETING,
        task_owner: rt.command.command_id,
        progress: 0,
        deleted_at: now.toISOString(),
      },
      notifications: (old, next) => rt.updates(old, next),
      now,
    });
    const preempted = res.old.task_owner;
    if (preempted && preempted !== rt.command.command_id) {
      await endPreemptedCommand(
        rt,
        preempted,
        new UnexpectedTaskStateError(
          rt.command.instance_id,
          [res.old.task_state],
          TaskState.SOFT_DELETING,
        ),
        'The instance was soft-deleted before the operation finished.',
      );
    }
  },

  async perform(rt) {
    const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
    if (action?.status !== 'running') return;
    const instance = await rt.deps.store.getInstance(rt.command.instance_id);
    try {
      if (!instance) {
        throw new UnexpectedTaskStateError(rt.command.instance_id, [TaskState.SOFT_DELETING], null);
      }
      ownsSoftDelete(rt, instance);
      if (!instance.host) return await softDeleteInPlace(rt);
      if (!action.progress.started) {
        await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
          notifications: [rt.notify(instance, 'soft_delete.start')],
          progress: { started: true },
        });
      }
      await expectLifecycle(rt, 'stopped');
      const result = await softDeleteGuest(rt, instance);
      if (result.status === 'pending') {
        // The lifecycle event finishes it (it may already have).
        await waitForDriver(rt, result.deadlineSeconds).catch(ignoreFinished);
        return;
      }
      await finishSoftDelete(rt, result.powerState);
    } catch (e) {
      // A delete (or an operator's reset) took the task: this soft delete is over.
      if (e instanceof UnexpectedTaskStateError) return endAsPreempted(rt, e);
      if (isRetryable(e)) throw e;
      await failSoftDelete(rt, e);
    }
  },

  async complete(rt, event) {
    await finishSoftDelete(rt, POWER_STATE_FOR_TRANSITION[event.transition]);
  },

  /** The guest never reported its power off: a failed soft delete (task reverted). */
  async abandon(rt, error) {
    await failSoftDelete(rt, error);
  },
};

const restoreOnHost = taskOperation({
  operation: 'restore_instance',
  vmStates: [VmState.SOFT_DELETED],
  taskState: TaskState.RESTORING,
  // Restoring an instance that has no host needs no compute host (see restoreInPlace).
  requiresHost: false,
  initialChanges: () => ({ deleted_at: null }),
  notify: 'restore',
  actionEvent: 'compute_restore_instance',
  expects: 'started',
  run: async (rt, instance) => {
    const ctx = driverContext(rt);
    try {
      return await rt.deps.driver.restore(ctx, instance);
    } catch (e) {
      if (!isNotSupported(e)) throw e;
      return rt.deps.driver.powerOn(ctx, instance);
    }
  },
  final: (_i, power) => ({ vm_state: VmState.ACTIVE, power_state: power ?? PowerState.RUNNING }),
  onFailure: 'revert',
});

/** Nova's API restores an instance without a host itself: ACTIVE at once, no compute call. */
async function restoreInPlace(rt: CommandRuntime): Promise<void> {
  await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    startAction: newAction(rt.command, rt.subject, rt.now()),
    expect: { taskState: [null], vmState: [VmState.SOFT_DELETED] },
    changes: (current) => {
      if (current.host) {
        throw new StratusError(
          ErrorCode.InstanceUpdateConflict,
          `Instance ${current.instance_id} gained a host while it was being restored`,
        );
      }
      return { vm_state: VmState.ACTIVE, task_state: null, deleted_at: null };
    },
    notifications: (old, next) => rt.updates(old, next),
    // The action is final in the same commit: perform finds nothing left to do.
    finish: rt.outcome('succeeded'),
    now: rt.now(),
  });
}

export const restoreInstance: OperationHandler<void> = {
  ...restoreOnHost,
  async start(rt, prepared) {
    const instance = await rt.deps.store.getInstance(rt.command.instance_id);
    if (instance && !instance.host) return restoreInPlace(rt);
    return restoreOnHost.start(rt, prepared);
  },
};
