// rescue_instance and unrescue_instance (nova-compute.md §1.1, §5.4).
//
// Rescue (lock, ACTIVE/STOPPED/ERROR; a volume-backed instance only where the driver can rescue
// one) powers the guest off and boots it from a rescue image: RESCUED / None, launched_at reset
// to now. Its notifications follow Nova's code: rescue.start (+ rescue_image_name,
// fixed_ips), then a mid-period `exists` for the incarnation that ends here (the record before
// the final save: old launched_at, task rescuing), then the update and rescue.end. Any driver
// error is an ERROR instance with InstanceNotRescuable ("Driver Error: …"); a driver that cannot
// rescue at all is answered 501 the same way.
//
// The rescue password is a secret: it goes from the command to the driver and nowhere else (it
// is not stored, so the lifecycle path never needs it: the driver was already asked). The rescue
// image's name is stored on the action so the lifecycle path can name it in rescue.end.
//
// Unrescue runs inside Nova's _error_out_instance_on_exception(ACTIVE): NotSupported → ACTIVE,
// any other failure → ERROR.

import type { ArgsOf } from '../../commands/schemas.ts';
import { ErrorCode, StratusError, UnexpectedTaskStateError } from '../../errors.ts';
import { instancePayload } from '../../notifications/payload.ts';
import type { DriverResult } from '../../virt/driver.ts';
import { DriverError, isNotSupported } from '../../virt/errors.ts';
import type { OperationHandler } from '../executor.ts';
import type { Instance } from '../instance.ts';
import type { CommandRuntime } from '../runtime.ts';
import { POWER_STATE_FOR_TRANSITION, PowerState, TaskState, VmState } from '../states.ts';
import {
  actionEvent,
  endAsPreempted,
  expectLifecycle,
  ignoreFinished,
  isRetryable,
  NOTHING_PENDING,
  waitForDriver,
} from './common.ts';
import { CLEAN_SHUTDOWN, driverContext, taskOperation } from './task-operation.ts';

const RESCUE_EVENT = 'compute_rescue_instance';
const PROGRESS_RESCUE_IMAGE = 'rescue_image_name';

/** Nova's _get_rescue_image: the requested image, the instance's base image, or its own. */
function rescueImageRef(rt: CommandRuntime, instance: Instance): string {
  const args = rt.command.args as ArgsOf<'rescue_instance'>;
  return args.rescue_image_ref ?? instance.image_meta.base_image_ref ?? instance.image_ref;
}

function fixedIps(instance: Instance) {
  return instancePayload(instance, { includeFixedIps: true }).fixed_ips;
}

/** Nova's InstanceNotRescuable; 501 when the driver has no rescue at all. */
function notRescuable(instance: Instance, cause: unknown): StratusError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  const message = `Instance ${instance.instance_id} cannot be rescued: Driver Error: ${reason}`;
  return isNotSupported(cause)
    ? new StratusError(ErrorCode.NotSupported, message)
    : new DriverError('InstanceNotRescuable', message);
}

/** power_off, then rescue; the power off is not waited for: the driver's rescue follows it. */
async function powerOffAndRescue(rt: CommandRuntime, instance: Instance): Promise<DriverResult> {
  const args = rt.command.args as ArgsOf<'rescue_instance'>;
  const ctx = driverContext(rt);
  try {
    await rt.deps.driver.powerOff(ctx, instance, CLEAN_SHUTDOWN);
    return await rt.deps.driver.rescue(ctx, instance, {
      rescueImageRef: args.rescue_image_ref ?? null,
      // Without an image service only the instance's own image has known metadata.
      imageMeta: args.rescue_image_ref === undefined ? { ...instance.image_meta } : {},
      rescuePassword: args.rescue_password ?? null,
    });
  } catch (e) {
    if (isRetryable(e)) throw e;
    throw notRescuable(instance, e);
  }
}

function ownsRescue(rt: CommandRuntime, current: Instance): void {
  if (current.task_state !== TaskState.RESCUING || current.task_owner !== rt.command.command_id) {
    throw new UnexpectedTaskStateError(
      current.instance_id,
      [TaskState.RESCUING],
      current.task_state,
    );
  }
}

/** The final write of a rescue; also the completion path of a lifecycle event. */
async function finishRescue(rt: CommandRuntime, powerState: PowerState): Promise<void> {
  const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
  const image = action?.progress[PROGRESS_RESCUE_IMAGE];
  const now = rt.now();
  await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    expect: { taskState: [TaskState.RESCUING] },
    changes: (current) => {
      ownsRescue(rt, current);
      return {
        vm_state: VmState.RESCUED,
        task_state: null,
        task_owner: null,
        power_state: powerState,
        launched_at: now.toISOString(),
      };
    },
    notifications: (old, next) => [
      rt.notifyExists(old),
      ...rt.updates(old, next),
      rt.notify(next, 'rescue.end', {
        extra: { rescue_image_name: typeof image === 'string' ? image : next.image_ref },
        includeFixedIps: true,
      }),
    ],
    event: actionEvent(rt, RESCUE_EVENT, 'Success'),
    finish: rt.outcome('succeeded'),
    progress: NOTHING_PENDING,
    now,
  });
}

async function failRescue(rt: CommandRuntime, error: unknown): Promise<void> {
  const instance = await rt.deps.store.getInstance(rt.command.instance_id);
  if (!instance) return;
  await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    expect: { taskState: [TaskState.RESCUING] },
    changes: (current) => {
      ownsRescue(rt, current);
      return { vm_state: VmState.ERROR, task_state: null, task_owner: null };
    },
    notifications: (old, next) => rt.updates(old, next),
    fault: rt.fault(instance, error),
    event: actionEvent(rt, RESCUE_EVENT, 'Error'),
    finish: rt.outcome('failed', error),
    progress: NOTHING_PENDING,
    now: rt.now(),
  });
}

// Rescue as the template states it. Its API half (lock, vm ACTIVE/STOPPED/ERROR, launched, task
// None → RESCUING) is used as is; the compute half below differs from the template's in its
// notifications (the exists before the final save needs the record before it, and rescue.end
// names the image even when a lifecycle event finishes the rescue).
const rescueApi = taskOperation({
  operation: 'rescue_instance',
  vmStates: [VmState.ACTIVE, VmState.STOPPED, VmState.ERROR],
  taskState: TaskState.RESCUING,
  actionEvent: RESCUE_EVENT,
  // Nova's API refuses a volume-backed instance unless the host can rescue one
  // (COMPUTE_RESCUE_BFV); InstanceNotRescuable there is a 400.
  precheck: (rt, instance) => {
    const volumeBacked = instance.block_device_mapping.some((bdm) => bdm.boot_index === 0);
    if (volumeBacked && !rt.deps.driver.capabilities.supports_bfv_rescue) {
      throw new StratusError(
        ErrorCode.InstanceNotRescuable,
        `Instance ${instance.instance_id} cannot be rescued: ` +
          'Host unable to rescue a volume-backed instance',
      );
    }
  },
  expects: 'started',
  run: powerOffAndRescue,
  final: (_i, power) => ({ vm_state: VmState.RESCUED, power_state: power ?? PowerState.RUNNING }),
  onFailure: 'error',
});

export const rescueInstance: OperationHandler<void> = {
  operation: 'rescue_instance',
  prepare: rescueApi.prepare,
  start: rescueApi.start,

  async perform(rt) {
    const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
    if (action?.status !== 'running') return;
    const instance = await rt.deps.store.getInstance(rt.command.instance_id);
    try {
      if (!instance) {
        throw new UnexpectedTaskStateError(rt.command.instance_id, [TaskState.RESCUING], null);
      }
      ownsRescue(rt, instance);
      if (!action.progress.started) {
        const image = rescueImageRef(rt, instance);
        await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
          notifications: [
            rt.notify(instance, 'rescue.start', {
              extra: { rescue_image_name: image },
              includeFixedIps: true,
            }),
          ],
          progress: { started: true, [PROGRESS_RESCUE_IMAGE]: image },
        });
      }
      await expectLifecycle(rt, 'started');
      const result = await powerOffAndRescue(rt, instance);
      if (result.status === 'pending') {
        // The lifecycle event finishes it (it may already have).
        await waitForDriver(rt, result.deadlineSeconds).catch(ignoreFinished);
        return;
      }
      await finishRescue(rt, result.powerState);
    } catch (e) {
      if (e instanceof UnexpectedTaskStateError) return endAsPreempted(rt, e);
      if (isRetryable(e)) throw e;
      await failRescue(rt, e);
    }
  },

  async complete(rt, event) {
    await finishRescue(rt, POWER_STATE_FOR_TRANSITION[event.transition]);
  },

  /** The rescued guest never reported its start: a failed rescue (ERROR). */
  async abandon(rt, error) {
    await failRescue(rt, error);
  },
};

export const unrescueInstance = taskOperation({
  operation: 'unrescue_instance',
  vmStates: [VmState.RESCUED],
  taskState: TaskState.UNRESCUING,
  notify: 'unrescue',
  // Nova hands unrescue's usage notifications the network info.
  notifyExtra: (instance) => ({ fixed_ips: fixedIps(instance) }),
  actionEvent: 'compute_unrescue_instance',
  expects: 'started',
  run: (rt, instance) => rt.deps.driver.unrescue(driverContext(rt), instance),
  final: (_i, power) => ({ vm_state: VmState.ACTIVE, power_state: power ?? PowerState.RUNNING }),
  onFailure: { errorOutTo: () => VmState.ACTIVE },
});
