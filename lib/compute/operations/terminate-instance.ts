// terminate_instance (nova-compute.md §1.1). Any vm/task state may be deleted (launch not
// required); the API sets DELETING without checking the task, pre-empting whatever ran.
// Stratus keeps that rule but still names what it expects: every task state but DELETING and
// SOFT_DELETING, every vm_state but DELETED. Compute then shuts the guest down and the record
// ends DELETED / None / NOSTATE with terminated_at and deleted_at, readable for the audit.
// An instance that never reached a node is deleted locally (delete.start/.end only), as Nova's
// API does.

import {
  ErrorCode,
  StratusError,
  UnexpectedDeletingTaskStateError,
  UnexpectedTaskStateError,
  isStratusError,
} from '../../errors.ts';
import type { OperationHandler } from '../executor.ts';
import type { Instance } from '../instance.ts';
import { type CommandRuntime, newAction } from '../runtime.ts';
import { ALL_TASK_STATES, ALL_VM_STATES, PowerState, TaskState, VmState } from '../states.ts';
import {
  driverContext,
  endPreemptedCommand,
  expectLifecycle,
  ignoreFinished,
  isRetryable,
  NOTHING_PENDING,
  waitForDriver,
} from './common.ts';
import { loadOwnedInstance } from './instance-access.ts';
import { settleMovesForDelete } from './resize.ts';
import { dropInstanceClaims } from '../../resources/claims.ts';

const TERMINATE_EVENT = 'compute_terminate_instance';
const DELETABLE_TASK_STATES = [
  null,
  ...ALL_TASK_STATES.filter((t) => t !== TaskState.DELETING && t !== TaskState.SOFT_DELETING),
];
const DELETABLE_VM_STATES = ALL_VM_STATES.filter((v) => v !== VmState.DELETED);

function ownsDeletion(rt: CommandRuntime, current: Instance): void {
  if (current.task_state !== TaskState.DELETING || current.task_owner !== rt.command.command_id) {
    throw new UnexpectedTaskStateError(
      current.instance_id,
      [TaskState.DELETING],
      current.task_state,
    );
  }
}

/** The final write; also the completion path when the driver's destroy finishes later. */
export async function finishDelete(rt: CommandRuntime): Promise<void> {
  const now = rt.now();
  const res = await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    expect: { taskState: [TaskState.DELETING] },
    changes: (current) => {
      ownsDeletion(rt, current);
      return {
        vm_state: VmState.DELETED,
        task_state: null,
        task_owner: null,
        power_state: PowerState.NOSTATE,
        progress: 0,
        terminated_at: now.toISOString(),
        deleted_at: now.toISOString(),
        deleted: true,
      };
    },
    notifications: (old, next) => [
      ...(old.host ? [rt.notify(next, 'shutdown.end')] : []),
      ...rt.updates(old, next),
      rt.notify(next, 'delete.end'),
    ],
    event: {
      event: TERMINATE_EVENT,
      start_time: now.toISOString(),
      finish_time: now.toISOString(),
      result: 'Success',
    },
    finish: rt.outcome('succeeded'),
    progress: NOTHING_PENDING,
    now,
  });
  // The instance no longer counts against its node (Nova's _complete_deletion → update_usage).
  if (res.old.node) await dropInstanceClaims(rt.deps, rt.command.instance_id, [res.old.node]);
}

async function failDelete(rt: CommandRuntime, error: unknown): Promise<void> {
  const now = rt.now();
  await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    expect: { taskState: [TaskState.DELETING] },
    changes: (current) => {
      ownsDeletion(rt, current);
      return { vm_state: VmState.ERROR, task_state: null, task_owner: null };
    },
    notifications: (old, next) => rt.updates(old, next),
    fault: {
      ...rt.fault((await rt.deps.store.getInstance(rt.command.instance_id)) as Instance, error),
    },
    event: {
      event: TERMINATE_EVENT,
      start_time: now.toISOString(),
      finish_time: now.toISOString(),
      result: 'Error',
    },
    finish: rt.outcome('failed', error),
    now,
  });
}

export const terminateInstance: OperationHandler<void> = {
  operation: 'terminate_instance',

  complete: (rt) => finishDelete(rt),
  abandon: (rt, error) => failDelete(rt, error),

  async prepare(rt, admin) {
    const instance = await loadOwnedInstance(rt, admin);
    if (instance.locked && !admin) {
      throw new StratusError(
        ErrorCode.InstanceIsLocked,
        `Instance ${instance.instance_id} is locked`,
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

  /**
   * The command's first write starts its action and takes the task (DELETING) in one commit. A
   * delete that loses the race for the task changed nothing and is rejected by the executor.
   */
  async start(rt) {
    const res = await rt.deps.store.updateInstance({
      instanceId: rt.command.instance_id,
      action: rt.actionRef,
      startAction: newAction(rt.command, rt.subject, rt.now()),
      expect: { taskState: DELETABLE_TASK_STATES, vmState: DELETABLE_VM_STATES },
      changes: { task_state: TaskState.DELETING, task_owner: rt.command.command_id, progress: 0 },
      notifications: (old, next) => [
        ...rt.updates(old, next),
        rt.notify(next, 'delete.start'),
        ...(next.host ? [rt.notify(next, 'shutdown.start')] : []),
      ],
      now: rt.now(),
    });
    const preempted = res.old.task_owner;
    if (preempted && preempted !== rt.command.command_id) {
      // The command whose task the delete took (a build, a pending power change) would
      // otherwise stay running: it ends failed with Nova's UnexpectedDeletingTaskState.
      await endPreemptedCommand(
        rt,
        preempted,
        new UnexpectedDeletingTaskStateError(rt.command.instance_id, [null]),
        'The instance was deleted before the operation finished.',
      );
    }
  },

  async perform(rt) {
    const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
    if (action?.status !== 'running') return;
    const instance = await rt.deps.store.getInstance(rt.command.instance_id);
    if (
      !instance ||
      instance.task_state !== TaskState.DELETING ||
      instance.task_owner !== rt.command.command_id
    ) {
      // Only an operator's state reset takes a delete's task away; the delete is over.
      const error = new UnexpectedTaskStateError(
        rt.command.instance_id,
        [TaskState.DELETING],
        instance?.task_state ?? null,
      );
      await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
        finish: rt.outcome('failed', error),
      });
      return;
    }

    if (!instance.host) return finishDelete(rt);
    try {
      // Nova confirms a finished resize before a delete and settles a move it cuts into, so no
      // guest stays behind on the move's other node.
      await settleMovesForDelete(rt, instance);
      await expectLifecycle(rt, 'stopped');
      const result = await rt.deps.driver.destroy(driverContext(rt), instance);
      if (result.status === 'pending') {
        // The driver's event finishes the delete (it may already have).
        await waitForDriver(rt, result.deadlineSeconds).catch(ignoreFinished);
        return;
      }
      await finishDelete(rt);
    } catch (e) {
      if (isRetryable(e) || (isStratusError(e) && e instanceof UnexpectedTaskStateError)) throw e;
      await failDelete(rt, e);
    }
  },
};
