// rebuild_instance on the same host (nova-compute.md §1.2).
//
//   API      lock, [ACTIVE, STOPPED, ERROR], launched; task REBUILDING (expect None) together
//            with the new image_ref and image metadata, progress 0, display_name / metadata.
//   compute  a mid-period exists FIRST, carrying the OLD image (Nova's orig_image_ref and
//            orig_sys_metadata); rebuild.start (+image_name of the new image); power state
//            saved (expect REBUILDING); driver.rebuild, or — NotSupported, as with the fake —
//            Nova's default: power off, destroy, REBUILD_BLOCK_DEVICE_MAPPING (expect
//            REBUILDING), REBUILD_SPAWNING (expect REBUILD_BLOCK_DEVICE_MAPPING), spawn from the
//            new image; ACTIVE / None, launched_at now (expect REBUILD_SPAWNING). A rebuild of a
//            STOPPED instance then goes ACTIVE / POWERING_OFF and stops it as Nova's
//            stop_instance does (power_off.start/.end); rebuild.end last.
//   failure  _error_out_instance_on_exception: NotSupported puts the original vm_state back,
//            anything else is ERROR; task None, fault, rebuild.error.
//
// admin_password and injected_files are secrets: they go to the driver and nowhere else. That
// is why the spawn happens inside the command (a lifecycle completion has no args); only the
// finish after a pending spawn, and the stop that follows it, run from the lifecycle event.
// The power off and destroy before the spawn are not waited for: the new guest does not depend
// on the old one's end, and waiting would need the secrets after the wait.

import type { ArgsOf } from '../../commands/schemas.ts';
import { ErrorCode, StratusError, UnexpectedTaskStateError } from '../../errors.ts';
import { imageStoreOf } from '../../images/deps.ts';
import { ImageStatus } from '../../images/image-store.ts';
import { imageMetaFrom } from '../../images/instance-images.ts';
import type { LifecycleEvent } from '../../virt/events.ts';
import { NotSupportedError } from '../../virt/errors.ts';
import type { OperationHandler } from '../executor.ts';
import type { Instance } from '../instance.ts';
import { type CommandRuntime, newAction } from '../runtime.ts';
import {
  POWER_STATE_FOR_TRANSITION,
  type PowerState,
  REBUILD_STATES,
  TaskState,
  VmState,
} from '../states.ts';
import {
  actionEvent,
  currentPowerState,
  driverContext,
  expectLifecycle,
  isRetryable,
  NOTHING_PENDING,
} from './common.ts';
import { loadOwnedInstance } from './instance-access.ts';
import {
  abandonWith,
  advanceTask,
  awaitDriver,
  checkApiPreconditions,
  guarded,
  isBeingDeleted,
  ownedInstance,
  ownedWrite,
  progressOf,
} from './snapshot.ts';
import { CLEAN_SHUTDOWN, FORCED_SHUTDOWN } from './task-operation.ts';

type RebuildArgs = ArgsOf<'rebuild_instance'>;

const REBUILD_VM_STATES: readonly VmState[] = [VmState.ACTIVE, VmState.STOPPED, VmState.ERROR];
const REBUILD_EVENT = 'compute_rebuild_instance';
/** Every task a rebuild runs under, the stop of a STOPPED instance's rebuild included. */
const REBUILD_TASKS: readonly TaskState[] = [...REBUILD_STATES, TaskState.POWERING_OFF];

/** What the API hands compute besides the instance (Nova's RPC arguments), kept on the action. */
const P = {
  origImageRef: 'orig_image_ref',
  origImageMeta: 'orig_image_meta',
  origVmState: 'orig_vm_state',
  imageName: 'image_name',
  started: 'rebuild_started',
  path: 'rebuild_path',
  guestGone: 'old_guest_destroyed',
  powerOffStarted: 'power_off_started',
} as const;

/** Nova's PreserveEphemeralNotSupported (an Invalid, raised in compute). */
function preserveEphemeralNotSupported(): StratusError {
  return new StratusError(
    ErrorCode.InvalidCommand,
    'The current driver does not support preserving ephemeral partitions.',
  );
}

interface Prepared {
  instance: Instance;
  imageMeta: Record<string, string>;
  imageName: string;
}

function rebuildStart(rt: CommandRuntime, instance: Instance, imageName: string) {
  return rt.notify(instance, 'rebuild.start', { extra: { image_name: imageName } });
}

function rebuildEnd(rt: CommandRuntime, instance: Instance, imageName: string) {
  return rt.notify(instance, 'rebuild.end', {
    extra: { image_name: imageName },
    includeFixedIps: true,
  });
}

/** The final write of a rebuild that ends ACTIVE (the original was not STOPPED). */
async function finishActive(rt: CommandRuntime, power: PowerState): Promise<void> {
  const progress = await progressOf(rt);
  const imageName = String(progress[P.imageName] ?? '');
  const now = rt.now().toISOString();
  if (progress[P.origVmState] === VmState.STOPPED) {
    // Back to the original state: ACTIVE / POWERING_OFF, then Nova's stop_instance.
    await ownedWrite(rt, {
      expect: [TaskState.REBUILD_SPAWNING],
      changes: () => ({
        vm_state: VmState.ACTIVE,
        task_state: TaskState.POWERING_OFF,
        power_state: power,
        launched_at: now,
        progress: 0,
      }),
      notifications: (old, next) => rt.updates(old, next),
      progress: NOTHING_PENDING,
    });
    return stopAfterRebuild(rt);
  }
  await ownedWrite(rt, {
    expect: [TaskState.REBUILD_SPAWNING],
    changes: () => ({
      vm_state: VmState.ACTIVE,
      task_state: null,
      task_owner: null,
      power_state: power,
      launched_at: now,
    }),
    notifications: (old, next) => [...rt.updates(old, next), rebuildEnd(rt, next, imageName)],
    event: actionEvent(rt, REBUILD_EVENT, 'Success'),
    finish: rt.outcome('succeeded'),
    progress: NOTHING_PENDING,
  });
}

/** stop_instance(clean_shutdown=False) for a rebuilt instance that was STOPPED. */
async function stopAfterRebuild(rt: CommandRuntime): Promise<void> {
  const instance = await ownedInstance(rt);
  if (!instance) {
    throw new UnexpectedTaskStateError(rt.command.instance_id, [TaskState.POWERING_OFF], null);
  }
  if (!(await progressOf(rt))[P.powerOffStarted]) {
    await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
      notifications: [rt.notify(instance, 'power_off.start')],
      progress: { [P.powerOffStarted]: true },
    });
  }
  await expectLifecycle(rt, 'stopped');
  const result = await rt.deps.driver.powerOff(driverContext(rt), instance, FORCED_SHUTDOWN);
  if (result.status === 'pending') return awaitDriver(rt, result.deadlineSeconds);
  return finishStopped(rt, result.powerState);
}

async function finishStopped(rt: CommandRuntime, power: PowerState): Promise<void> {
  const imageName = String((await progressOf(rt))[P.imageName] ?? '');
  await ownedWrite(rt, {
    expect: [TaskState.POWERING_OFF],
    changes: () => ({
      vm_state: VmState.STOPPED,
      task_state: null,
      task_owner: null,
      power_state: power,
    }),
    notifications: (old, next) => [
      ...rt.updates(old, next),
      rt.notify(next, 'power_off.end'),
      rebuildEnd(rt, next, imageName),
    ],
    event: actionEvent(rt, REBUILD_EVENT, 'Success'),
    finish: rt.outcome('succeeded'),
    progress: NOTHING_PENDING,
  });
}

/** Nova's _rebuild_default_impl before the spawn: the old guest goes. */
async function destroyOldGuest(rt: CommandRuntime, instance: Instance): Promise<void> {
  if ((await progressOf(rt))[P.guestGone]) return;
  const ctx = driverContext(rt);
  try {
    await rt.deps.driver.powerOff(ctx, instance, CLEAN_SHUTDOWN);
  } catch (e) {
    // A guest the hypervisor no longer knows is off already (a redelivery after the destroy).
    if (!(e instanceof StratusError && e.code === ErrorCode.InstanceNotFound)) throw e;
  }
  await rt.deps.driver.destroy(ctx, instance);
  await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
    progress: { [P.guestGone]: true, [P.path]: 'default' },
  });
}

async function runRebuild(rt: CommandRuntime): Promise<void> {
  let instance = await ownedInstance(rt);
  if (!instance) throw new UnexpectedTaskStateError(rt.command.instance_id, REBUILD_TASKS, null);
  const args = rt.command.args as RebuildArgs;
  const ctx = driverContext(rt);
  const sequence = REBUILD_STATES;

  if (instance.task_state === TaskState.REBUILDING) {
    const progress = await progressOf(rt);
    if (!progress[P.started]) {
      // The exists carries the image the instance ran until now; rebuild.start the new one.
      const original: Instance = {
        ...instance,
        image_ref: String(progress[P.origImageRef] ?? instance.image_ref),
        image_meta: JSON.parse(String(progress[P.origImageMeta] ?? '{}')) as Record<string, string>,
      };
      await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
        notifications: [
          rt.notifyExists(original),
          rebuildStart(rt, instance, String(progress[P.imageName] ?? '')),
        ],
        progress: { [P.started]: true },
      });
      const power = await currentPowerState(rt, instance);
      instance = (
        await ownedWrite(rt, {
          expect: [TaskState.REBUILDING],
          changes: () => ({ power_state: power }),
          notifications: (old, next) => rt.updates(old, next),
        })
      ).new;
    }

    if (progress[P.path] !== 'default') {
      let driverRebuilt = progress[P.path] === 'driver';
      if (!driverRebuilt) {
        try {
          await expectLifecycle(rt, 'started');
          const result = await rt.deps.driver.rebuild(ctx, instance, {
            imageRef: instance.image_ref,
            imageMeta: instance.image_meta,
            injectedFiles: args.injected_files ?? [],
            adminPassword: args.admin_password ?? null,
            blockDeviceMapping: instance.block_device_mapping,
            preserveEphemeral: args.preserve_ephemeral,
            evacuate: false,
          });
          await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
            progress: { [P.path]: 'driver' },
          });
          driverRebuilt = true;
          // The driver rebuilt the guest: walk the task states it would have walked.
          await advanceTask(
            rt,
            sequence,
            TaskState.REBUILDING,
            TaskState.REBUILD_BLOCK_DEVICE_MAPPING,
          );
          await advanceTask(
            rt,
            sequence,
            TaskState.REBUILD_BLOCK_DEVICE_MAPPING,
            TaskState.REBUILD_SPAWNING,
          );
          if (result.status === 'pending') return awaitDriver(rt, result.deadlineSeconds);
          return finishActive(rt, result.powerState);
        } catch (e) {
          if (!(e instanceof NotSupportedError) || driverRebuilt) throw e;
        }
      }
    }
    // Nova's default implementation.
    if (args.preserve_ephemeral) throw preserveEphemeralNotSupported();
    await destroyOldGuest(rt, instance);
    instance = await advanceTask(
      rt,
      sequence,
      TaskState.REBUILDING,
      TaskState.REBUILD_BLOCK_DEVICE_MAPPING,
    );
  }

  if (instance.task_state === TaskState.REBUILD_BLOCK_DEVICE_MAPPING) {
    instance = await advanceTask(
      rt,
      sequence,
      TaskState.REBUILD_BLOCK_DEVICE_MAPPING,
      TaskState.REBUILD_SPAWNING,
    );
  }

  if (instance.task_state === TaskState.REBUILD_SPAWNING) {
    if ((await progressOf(rt))[P.path] === 'driver') {
      // Redelivered after the driver's rebuild: the guest is whatever the driver left.
      return finishActive(rt, await currentPowerState(rt, instance));
    }
    await expectLifecycle(rt, 'started');
    const result = await rt.deps.driver.spawn(ctx, instance, {
      imageRef: instance.image_ref,
      imageMeta: instance.image_meta,
      injectedFiles: args.injected_files ?? [],
      adminPassword: args.admin_password ?? null,
      userData: null,
      // The guest keeps its network info across a rebuild.
      requestedNetworks: instance.ports.map((p) => ({
        network_id: p.network_id,
        ...(p.fixed_ips[0] ? { fixed_ip: p.fixed_ips[0].address } : {}),
      })),
      blockDeviceMapping: instance.block_device_mapping,
      powerOn: true,
    });
    if (result.status === 'pending') return awaitDriver(rt, result.deadlineSeconds);
    return finishActive(rt, result.powerState);
  }

  if (instance.task_state === TaskState.POWERING_OFF) return stopAfterRebuild(rt);
  throw new UnexpectedTaskStateError(instance.instance_id, REBUILD_TASKS, instance.task_state);
}

async function failRebuild(rt: CommandRuntime, current: Instance, error: unknown): Promise<void> {
  const progress = await progressOf(rt);
  const original = (progress[P.origVmState] as VmState | undefined) ?? current.vm_state;
  await ownedWrite(rt, {
    expect: REBUILD_TASKS,
    changes: () => ({
      vm_state: error instanceof NotSupportedError ? original : VmState.ERROR,
      task_state: null,
      task_owner: null,
    }),
    notifications: (old, next) => [
      ...rt.updates(old, next),
      rt.notifyError(next, 'rebuild', error),
    ],
    fault: rt.fault(current, error),
    event: actionEvent(rt, REBUILD_EVENT, 'Error'),
    finish: rt.outcome('failed', error),
    progress: NOTHING_PENDING,
  });
}

function rebuildRules(rt: CommandRuntime): Parameters<typeof guarded>[2] {
  return {
    failed: (current, e) => failRebuild(rt, current, e),
    // "Instance was deleted while rebuilding": quiet; a guest spawned meanwhile must go too.
    preempted: async (current) => {
      if (current?.node && isBeingDeleted(current)) {
        await rt.deps.driver.destroy(driverContext(rt), current).catch((e: unknown) => {
          if (isRetryable(e)) throw e;
        });
      }
    },
  };
}

function rebuildGuard(rt: CommandRuntime, body: () => Promise<void>): Promise<void> {
  return guarded(rt, body, rebuildRules(rt));
}

export const rebuildInstance: OperationHandler<Prepared> & {
  complete(rt: CommandRuntime, event: LifecycleEvent): Promise<void>;
  abandon(rt: CommandRuntime, error: StratusError): Promise<void>;
} = {
  operation: 'rebuild_instance',

  async prepare(rt, admin) {
    const instance = await loadOwnedInstance(rt, admin);
    checkApiPreconditions(rt, instance, { vmStates: REBUILD_VM_STATES, checksLock: true, admin });
    const imageRef = (rt.command.args as RebuildArgs).image_ref;
    // Stratus knows the images it made (snapshots, backups); any other ref is the driver's.
    const image = await imageStoreOf(rt.deps).get(imageRef);
    if (image && image.status !== ImageStatus.ACTIVE) {
      throw new StratusError(ErrorCode.InvalidCommand, `Image ${imageRef} is not active.`);
    }
    return { instance, imageMeta: imageMetaFrom(image), imageName: image?.name ?? imageRef };
  },

  /** The API's write: the new image and the task together, the old image kept for compute. */
  async start(rt, prepared) {
    const args = rt.command.args as RebuildArgs;
    const before = prepared.instance;
    const now = rt.now();
    await rt.deps.store.updateInstance({
      instanceId: rt.command.instance_id,
      action: rt.actionRef,
      startAction: {
        ...newAction(rt.command, rt.subject, now),
        progress: {
          [P.origImageRef]: before.image_ref,
          [P.origImageMeta]: JSON.stringify(before.image_meta),
          [P.origVmState]: before.vm_state,
          [P.imageName]: prepared.imageName,
        },
      },
      expect: { taskState: [null], vmState: REBUILD_VM_STATES },
      changes: (current) => {
        if (current.image_ref !== before.image_ref || current.vm_state !== before.vm_state) {
          // Another rebuild finished since the checks: these are not the originals any more.
          throw new StratusError(
            ErrorCode.InstanceUpdateConflict,
            `Instance ${current.instance_id} changed while the rebuild was being accepted`,
          );
        }
        return {
          task_state: TaskState.REBUILDING,
          task_owner: rt.command.command_id,
          image_ref: args.image_ref,
          image_meta: prepared.imageMeta,
          kernel_id: '',
          ramdisk_id: '',
          progress: 0,
          ...(args.display_name !== undefined ? { display_name: args.display_name } : {}),
          ...(args.metadata !== undefined ? { metadata: args.metadata } : {}),
        };
      },
      notifications: (old, next) => rt.updates(old, next),
      now,
    });
  },

  async perform(rt) {
    const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
    if (action?.status !== 'running') return;
    await rebuildGuard(rt, () => runRebuild(rt));
  },

  async complete(rt, event) {
    const power = POWER_STATE_FOR_TRANSITION[event.transition];
    await rebuildGuard(rt, async () => {
      const instance = await ownedInstance(rt);
      if (instance?.task_state === TaskState.POWERING_OFF) return finishStopped(rt, power);
      // A driver's own rebuild may report before its task steps were written: take them now.
      if (instance?.task_state === TaskState.REBUILDING) {
        await advanceTask(
          rt,
          REBUILD_STATES,
          TaskState.REBUILDING,
          TaskState.REBUILD_BLOCK_DEVICE_MAPPING,
        );
      }
      if (instance && instance.task_state !== TaskState.REBUILD_SPAWNING) {
        await advanceTask(
          rt,
          REBUILD_STATES,
          TaskState.REBUILD_BLOCK_DEVICE_MAPPING,
          TaskState.REBUILD_SPAWNING,
        );
      }
      return finishActive(rt, power);
    });
  },

  abandon: (rt, error) => abandonWith(rt, error, rebuildRules(rt)),
};
