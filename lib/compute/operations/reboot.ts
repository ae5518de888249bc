// reboot_instance, SOFT and HARD (nova-compute.md §1.1 and §3).
//
//   API      SOFT: lock, vm ACTIVE, no task → REBOOTING.
//            HARD: lock, vm in ALLOW_HARD_REBOOT, task in ALLOW_REBOOT → REBOOTING_HARD. A hard
//            reboot may take the task from a soft reboot (or a pause, unpause, suspend, resume)
//            that is stuck; the command it takes the task from is ended `failed`.
//   compute  → REBOOT_PENDING(_HARD) with the guest's power state, reboot.start
//            → REBOOT_STARTED(_HARD) → driver reboot → ACTIVE (RESCUED stays RESCUED) / None,
//            reboot.end.
//   failure  of the driver: if the guest still runs, a fault and reboot.error, and the instance
//            ends ACTIVE as if the reboot had finished (Nova swallows the error); otherwise the
//            instance is ERROR. A failure before the driver was asked reverts the task.
//
// Each step names the state it expects and that this command owns the task, so a hard reboot
// that took over stops the soft one at its next write. The lifecycle path has no command args:
// the reboot type is read from the task_state.

import type { ArgsOf } from '../../commands/schemas.ts';
import {
  ErrorCode,
  InstanceNotFoundError,
  StratusError,
  UnexpectedTaskStateError,
} from '../../errors.ts';
import type { Notification } from '../../notifications/notification.ts';
import type { RebootType } from '../../virt/driver.ts';
import type { OperationHandler } from '../executor.ts';
import type { Instance, InstanceChanges } from '../instance.ts';
import { type CommandRuntime, newAction } from '../runtime.ts';
import {
  ALLOW_HARD_REBOOT,
  ALLOW_REBOOT,
  ALLOW_SOFT_REBOOT,
  POWER_STATE_FOR_TRANSITION,
  PowerState,
  TaskState,
  VmState,
} from '../states.ts';
import {
  actionEvent,
  currentPowerState,
  driverContext,
  endAsPreempted,
  endPreemptedCommand,
  expectLifecycle,
  ignoreFinished,
  isRetryable,
  NOTHING_PENDING,
  waitForDriver,
} from './common.ts';
import { loadOwnedInstance } from './instance-access.ts';

const REBOOT_EVENT = 'compute_reboot_instance';

interface RebootSteps {
  type: RebootType;
  /** Set by the API. */
  requested: TaskState;
  /** The compute host acknowledged the request. */
  pending: TaskState;
  /** The driver was (or is being) asked. */
  started: TaskState;
  vmStates: readonly VmState[];
  taskStates: readonly (TaskState | null)[];
}

const SOFT: RebootSteps = {
  type: 'SOFT',
  requested: TaskState.REBOOTING,
  pending: TaskState.REBOOT_PENDING,
  started: TaskState.REBOOT_STARTED,
  vmStates: ALLOW_SOFT_REBOOT,
  taskStates: [null],
};

const HARD: RebootSteps = {
  type: 'HARD',
  requested: TaskState.REBOOTING_HARD,
  pending: TaskState.REBOOT_PENDING_HARD,
  started: TaskState.REBOOT_STARTED_HARD,
  vmStates: ALLOW_HARD_REBOOT,
  taskStates: ALLOW_REBOOT,
};

const SOFT_AND_HARD_STATES: readonly TaskState[] = [SOFT, HARD].flatMap((s) => [
  s.requested,
  s.pending,
  s.started,
]);
const STARTED_STATES: readonly TaskState[] = [SOFT.started, HARD.started];

/** The reboot a task_state belongs to (null: not a reboot's). */
function stepsOf(task: TaskState | null): RebootSteps | null {
  for (const steps of [SOFT, HARD]) {
    if (task === steps.requested || task === steps.pending || task === steps.started) return steps;
  }
  return null;
}

function ownedSteps(rt: CommandRuntime, current: Instance): RebootSteps {
  const steps = stepsOf(current.task_state);
  if (!steps || current.task_owner !== rt.command.command_id) {
    throw new UnexpectedTaskStateError(
      current.instance_id,
      [...SOFT_AND_HARD_STATES],
      current.task_state,
    );
  }
  return steps;
}

// ── reboot ───────────────────────────────────────────────────────────────────────────────────

function requestedSteps(rt: CommandRuntime): RebootSteps {
  return (rt.command.args as ArgsOf<'reboot_instance'>).reboot_type === 'HARD' ? HARD : SOFT;
}

/** The final write of a reboot that happened; also the lifecycle event's completion. */
async function finishReboot(rt: CommandRuntime, powerState: PowerState): Promise<void> {
  await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    expect: { taskState: STARTED_STATES },
    changes: (current) => {
      ownedSteps(rt, current);
      return {
        // Don't change it out of rescue mode.
        vm_state: current.vm_state === VmState.RESCUED ? VmState.RESCUED : VmState.ACTIVE,
        task_state: null,
        task_owner: null,
        power_state: powerState,
      };
    },
    notifications: (old, next) => [...rt.updates(old, next), rt.notify(next, 'reboot.end')],
    event: actionEvent(rt, REBOOT_EVENT, 'Success'),
    finish: rt.outcome('succeeded'),
    progress: NOTHING_PENDING,
    now: rt.now(),
  });
}

/**
 * The driver's reboot failed. A guest that still runs was not harmed: Nova records the fault,
 * sends reboot.error and finishes the reboot (ACTIVE, reboot.end). Otherwise the instance is
 * ERROR (and Nova sends no reboot.error).
 */
async function failDriverReboot(rt: CommandRuntime, error: unknown): Promise<void> {
  const instance = await rt.deps.store.getInstance(rt.command.instance_id);
  if (!instance) throw new InstanceNotFoundError(rt.command.instance_id);
  let power: PowerState | null;
  try {
    power = await currentPowerState(rt, instance);
  } catch (e) {
    if (isRetryable(e)) throw e;
    power = null; // the hypervisor cannot say: the guest is not known to run
  }
  const running = power === PowerState.RUNNING;
  await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    expect: { taskState: STARTED_STATES },
    changes: (current) => {
      ownedSteps(rt, current);
      if (!running) return { vm_state: VmState.ERROR, task_state: null, task_owner: null };
      return {
        vm_state: current.vm_state === VmState.RESCUED ? VmState.RESCUED : VmState.ACTIVE,
        task_state: null,
        task_owner: null,
        power_state: PowerState.RUNNING,
      };
    },
    notifications: (old, next) =>
      running
        ? [
            rt.notifyError(old, 'reboot', error),
            ...rt.updates(old, next),
            rt.notify(next, 'reboot.end'),
          ]
        : rt.updates(old, next),
    fault: rt.fault(instance, error),
    event: actionEvent(rt, REBOOT_EVENT, 'Error'),
    finish: rt.outcome('failed', error),
    progress: NOTHING_PENDING,
    now: rt.now(),
  });
}

/** A failure before the driver was asked (Nova's reverts_task_state): task None, fault. */
async function revertReboot(rt: CommandRuntime, instance: Instance, error: unknown) {
  await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    expect: { taskState: SOFT_AND_HARD_STATES },
    changes: (current) => {
      ownedSteps(rt, current);
      return { task_state: null, task_owner: null };
    },
    notifications: (old, next) => rt.updates(old, next),
    fault: rt.fault(instance, error),
    event: actionEvent(rt, REBOOT_EVENT, 'Error'),
    finish: rt.outcome('failed', error),
    progress: NOTHING_PENDING,
    now: rt.now(),
  });
}

/** Moves the task one step on, expecting the step before (and this command as its owner). */
async function advance(
  rt: CommandRuntime,
  from: TaskState,
  to: TaskState,
  extra: (current: Instance) => InstanceChanges,
  before: (next: Instance) => Notification[] = () => [],
): Promise<Instance> {
  const res = await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    expect: { taskState: [from] },
    changes: (current) => {
      ownedSteps(rt, current);
      return { ...extra(current), task_state: to };
    },
    notifications: (old, next) => [...before(next), ...rt.updates(old, next)],
    now: rt.now(),
  });
  return res.new;
}

export const rebootInstance: OperationHandler<void> = {
  operation: 'reboot_instance',

  async prepare(rt, admin) {
    const steps = requestedSteps(rt);
    const instance = await loadOwnedInstance(rt, admin);
    if (instance.locked && !admin) {
      throw new StratusError(
        ErrorCode.InstanceIsLocked,
        `Instance ${instance.instance_id} is locked`,
      );
    }
    if (!instance.host) {
      throw new StratusError(
        ErrorCode.InstanceInvalidState,
        `Instance ${instance.instance_id} is not ready (no host)`,
      );
    }
    if (!instance.launched_at) {
      throw new StratusError(
        ErrorCode.InstanceInvalidState,
        `Instance ${instance.instance_id} has not been launched`,
      );
    }
    if (
      !steps.vmStates.includes(instance.vm_state) ||
      !steps.taskStates.includes(instance.task_state)
    ) {
      throw new StratusError(
        ErrorCode.InstanceInvalidState,
        `Cannot '${steps.type} reboot_instance' instance ${instance.instance_id} while it is in ` +
          `vm_state ${instance.vm_state}, task_state ${instance.task_state ?? 'None'}`,
      );
    }
  },

  /** The API's write: the action and the task in one commit; a hard reboot may take a task. */
  async start(rt) {
    const steps = requestedSteps(rt);
    const res = await rt.deps.store.updateInstance({
      instanceId: rt.command.instance_id,
      action: rt.actionRef,
      startAction: newAction(rt.command, rt.subject, rt.now()),
      expect: { taskState: steps.taskStates, vmState: steps.vmStates },
      changes: { task_state: steps.requested, task_owner: rt.command.command_id },
      notifications: (old, next) => rt.updates(old, next),
      now: rt.now(),
    });
    const preempted = res.old.task_owner;
    if (preempted && preempted !== rt.command.command_id) {
      await endPreemptedCommand(
        rt,
        preempted,
        new UnexpectedTaskStateError(rt.command.instance_id, [res.old.task_state], steps.requested),
        `A hard reboot (${rt.command.command_id}) took the task before the operation finished.`,
      );
    }
  },

  async perform(rt) {
    const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
    if (action?.status !== 'running') return;
    let instance = await rt.deps.store.getInstance(rt.command.instance_id);
    let driverAsked = false;
    try {
      if (!instance) throw new InstanceNotFoundError(rt.command.instance_id);
      const steps = ownedSteps(rt, instance);
      // A redelivered command continues from the step it reached.
      if (instance.task_state === steps.requested) {
        const power = await currentPowerState(rt, instance);
        instance = await advance(
          rt,
          steps.requested,
          steps.pending,
          () => ({ power_state: power }),
          (next) => [rt.notify(next, 'reboot.start')],
        );
      }
      if (instance.task_state === steps.pending) {
        instance = await advance(rt, steps.pending, steps.started, () => ({}));
      }
      await expectLifecycle(rt, 'started');
      driverAsked = true;
      const result = await rt.deps.driver.reboot(driverContext(rt), instance, steps.type);
      if (result.status === 'pending') {
        // The lifecycle event finishes it (it may already have).
        await waitForDriver(rt, result.deadlineSeconds).catch(ignoreFinished);
        return;
      }
      await finishReboot(rt, result.powerState);
    } catch (e) {
      if (e instanceof UnexpectedTaskStateError) return endAsPreempted(rt, e);
      if (isRetryable(e) || !instance) throw e;
      if (driverAsked) await failDriverReboot(rt, e);
      else await revertReboot(rt, instance, e);
    }
  },

  async complete(rt, event) {
    await finishReboot(rt, POWER_STATE_FOR_TRANSITION[event.transition]);
  },

  /** The guest never reported the reboot: Nova's rule for a failed reboot decides. */
  async abandon(rt, error) {
    await failDriverReboot(rt, error);
  },
};
