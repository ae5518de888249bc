// shelve_instance, shelve_offload_instance and unshelve_instance (nova-compute.md §1.5).
//
// shelve     API: lock, [ACTIVE, STOPPED, PAUSED, SUSPENDED]; image `<name>-shelved` created
//            first, task SHELVING. Compute: mid-period exists, shelve.start; power off (forced
//            for a PAUSED guest); snapshot with the callback's image states mapped to
//            SHELVING_IMAGE_PENDING_UPLOAD → SHELVING_IMAGE_UPLOADING; vm SHELVED with
//            shelved_at / shelved_image_id / shelved_host (expect [SHELVING,
//            SHELVING_IMAGE_UPLOADING]); shelve.end. With shelved_offload_time 0 the same write
//            sets SHELVING_OFFLOADING and the offload follows in the same command.
//            A volume-backed instance has nothing to snapshot: Nova offloads it straight away.
// offload    API: lock, [SHELVED], task SHELVING_OFFLOADING. shelve_offload.start; power off;
//            power state read; destroy; SHELVED_OFFLOADED / None with host, node and zone
//            cleared (expect [SHELVING, SHELVING_OFFLOADING]); shelve_offload.end.
// unshelve   API: lock, [SHELVED, SHELVED_OFFLOADED], task UNSHELVING. SHELVED (the guest is
//            still there): POWERING_ON and Nova's start_instance (power_on.start/.end).
//            SHELVED_OFFLOADED: a node is chosen (respecting availability_zone), unshelve.start,
//            SPAWNING with host/node, spawn from the shelved image, ACTIVE (expect SPAWNING).
//            Both delete the shelved image and the shelved_* system metadata.
// failure    shelve / offload: task reverted, fault. unshelve: task None, an offloaded
//            instance stays SHELVED_OFFLOADED with no host, fault.
//
// Long driver calls (power off, destroy, spawn, power on) may finish later: the walk records
// which step waits (`awaiting`) and the lifecycle event completes that step and walks on (these
// operations carry no secrets, so the lifecycle function can continue them).

import type { ArgsOf } from '../../commands/schemas.ts';
import { ErrorCode, StratusError, UnexpectedTaskStateError } from '../../errors.ts';
import { imageStoreOf } from '../../images/deps.ts';
import { ImageStatus, ImageType } from '../../images/image-store.ts';
import {
  imageIdForCommand,
  instanceImage,
  isVolumeBacked,
  withoutShelvedKeys,
} from '../../images/instance-images.ts';
import type { Operation } from '../../topology.ts';
import type { CompletionResult, DriverResult } from '../../virt/driver.ts';
import type { LifecycleEvent } from '../../virt/events.ts';
import type { OperationHandler } from '../executor.ts';
import type { Instance } from '../instance.ts';
import { dropInstanceClaims } from '../../resources/claims.ts';
import { selectAndClaim } from '../../resources/scheduler.ts';
import { type CommandRuntime, newAction } from '../runtime.ts';
import {
  type LifecycleTransition,
  POWER_STATE_FOR_TRANSITION,
  PowerState,
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

const SHELVE_VM_STATES: readonly VmState[] = [
  VmState.ACTIVE,
  VmState.STOPPED,
  VmState.PAUSED,
  VmState.SUSPENDED,
];
const SHELVING_TASKS: readonly TaskState[] = [
  TaskState.SHELVING,
  TaskState.SHELVING_IMAGE_PENDING_UPLOAD,
  TaskState.SHELVING_IMAGE_UPLOADING,
];
/** Every task a shelve or an offload runs under (the failure write accepts any of them). */
const SHELVE_AND_OFFLOAD_TASKS: readonly TaskState[] = [
  ...SHELVING_TASKS,
  TaskState.SHELVING_OFFLOADING,
];
const UNSHELVE_TASKS: readonly TaskState[] = [
  TaskState.UNSHELVING,
  TaskState.SPAWNING,
  TaskState.POWERING_ON,
];

/** The shelve callback's translation of the snapshot driver's image task states. */
const SHELVING_STATE_FOR: Partial<Record<TaskState, TaskState>> = {
  [TaskState.IMAGE_PENDING_UPLOAD]: TaskState.SHELVING_IMAGE_PENDING_UPLOAD,
  [TaskState.IMAGE_UPLOADING]: TaskState.SHELVING_IMAGE_UPLOADING,
  [TaskState.SHELVING]: TaskState.SHELVING,
};

const EVENT = {
  shelve: 'compute_shelve_instance',
  offload: 'compute_shelve_offload_instance',
  unshelve: 'compute_unshelve_instance',
  start: 'compute_start_instance',
} as const;

/** Progress keys: which steps are done, and which one waits on a lifecycle event. */
const P = {
  awaiting: 'awaiting',
  shelveStarted: 'shelve_started',
  poweredOff: 'shelve_powered_off',
  snapshotted: 'shelve_snapshotted',
  offloadStarted: 'offload_started',
  offloadPoweredOff: 'offload_powered_off',
  offloadPowerState: 'offload_power_state',
  destroyed: 'offload_destroyed',
  powerOnStarted: 'power_on_started',
} as const;

// ── Steps that may wait ────────────────────────────────────────────────────────────────────

/** Marks a step done and ends its wait. */
async function stepDone(rt: CommandRuntime, flag: string): Promise<void> {
  await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
    progress: { ...NOTHING_PENDING, [P.awaiting]: null, [flag]: true },
    wait: null,
  });
}

/**
 * A driver call that the platform may finish later, done once (its flag records it). Returns
 * false when the walk must stop: the lifecycle event `transition` completes the step.
 */
async function driverStep(
  rt: CommandRuntime,
  flag: string,
  transition: LifecycleTransition,
  call: () => Promise<DriverResult | CompletionResult>,
): Promise<boolean> {
  if ((await progressOf(rt))[flag]) return true;
  await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
    progress: { [P.awaiting]: flag },
  });
  // Recorded before the call: a fast platform may report the transition before it returns.
  await expectLifecycle(rt, transition);
  const result = await call();
  if (result.status === 'pending') {
    await awaitDriver(rt, result.deadlineSeconds);
    return false;
  }
  await stepDone(rt, flag);
  return true;
}

/** A lifecycle event finished the awaited step: record it, then walk on. */
async function completeAwaited(rt: CommandRuntime): Promise<void> {
  const flag = (await progressOf(rt))[P.awaiting];
  if (typeof flag === 'string') await stepDone(rt, flag);
}

function portsAsRequests(instance: Instance) {
  // The same networks (and addresses) in the same order: the guest keeps its network info.
  return instance.ports.map((p) => ({
    network_id: p.network_id,
    ...(p.fixed_ips[0] ? { fixed_ip: p.fixed_ips[0].address } : {}),
  }));
}

async function deleteImageQuietly(rt: CommandRuntime, imageId: string): Promise<void> {
  try {
    await imageStoreOf(rt.deps).delete(imageId, rt.now());
  } catch (e) {
    if (isRetryable(e)) throw e;
    // Nova logs a shelved image it cannot delete and carries on.
    rt.deps.logger.warn('could not delete a shelved image', {
      image_id: imageId,
      error_name: (e as Error).name,
    });
  }
}

// ── shelve_instance / shelve_offload_instance ──────────────────────────────────────────────

async function runOffload(rt: CommandRuntime, instance: Instance, clean: boolean): Promise<void> {
  const progress = await progressOf(rt);
  if (!progress[P.offloadStarted]) {
    await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
      notifications: [rt.notify(instance, 'shelve_offload.start')],
      progress: { [P.offloadStarted]: true },
    });
  }
  const ctx = driverContext(rt);
  const off = clean ? CLEAN_SHUTDOWN : FORCED_SHUTDOWN;
  if (
    !(await driverStep(rt, P.offloadPoweredOff, 'stopped', () =>
      rt.deps.driver.powerOff(ctx, instance, off),
    ))
  ) {
    return;
  }
  // Nova keeps the power state read between the power off and the destroy.
  let power = (await progressOf(rt))[P.offloadPowerState];
  if (typeof power !== 'number') {
    power = await currentPowerState(rt, instance);
    await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
      progress: { [P.offloadPowerState]: power as number },
    });
  }
  if (
    !(await driverStep(rt, P.destroyed, 'stopped', () => rt.deps.driver.destroy(ctx, instance)))
  ) {
    return;
  }
  const event = rt.command.operation === 'shelve_instance' ? EVENT.shelve : EVENT.offload;
  await ownedWrite(rt, {
    expect: [TaskState.SHELVING, TaskState.SHELVING_OFFLOADING],
    changes: () => ({
      vm_state: VmState.SHELVED_OFFLOADED,
      task_state: null,
      task_owner: null,
      power_state: power as PowerState,
      // Off its host, an instance is in no host aggregate and so in no availability zone.
      host: null,
      node: null,
      availability_zone: null,
    }),
    notifications: (old, next) => [...rt.updates(old, next), rt.notify(next, 'shelve_offload.end')],
    event: actionEvent(rt, event, 'Success'),
    finish: rt.outcome('succeeded'),
    progress: NOTHING_PENDING,
  });
  // Off its node, the instance no longer counts there (allow_resource_removal). A crash before
  // this line leaves the claim to the resource audit, which releases it.
  if (instance.node) await dropInstanceClaims(rt.deps, instance.instance_id, [instance.node]);
}

async function runShelve(rt: CommandRuntime): Promise<void> {
  let instance = await ownedInstance(rt);
  if (!instance) throw new UnexpectedTaskStateError(rt.command.instance_id, SHELVING_TASKS, null);
  if (instance.task_state === TaskState.SHELVING_OFFLOADING) {
    // shelve_offload_instance shuts down cleanly; the offload that follows a shelve does not
    // need to (the guest is already off).
    return runOffload(rt, instance, rt.command.operation === 'shelve_offload_instance');
  }
  if (isVolumeBacked(instance)) return runOffload(rt, instance, true);

  const ctx = driverContext(rt);
  const progress = await progressOf(rt);
  if (!progress[P.shelveStarted]) {
    await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
      notifications: [rt.notifyExists(instance), rt.notify(instance, 'shelve.start')],
      progress: { [P.shelveStarted]: true },
    });
  }
  // Some hypervisors fail a clean shutdown of a paused guest: Nova forces it.
  const off = instance.power_state === PowerState.PAUSED ? FORCED_SHUTDOWN : CLEAN_SHUTDOWN;
  const guest = instance;
  if (
    !(await driverStep(rt, P.poweredOff, 'stopped', () => rt.deps.driver.powerOff(ctx, guest, off)))
  ) {
    return;
  }

  const imageId = imageIdForCommand(rt.command.command_id);
  if (!(await progressOf(rt))[P.snapshotted]) {
    const result = await rt.deps.driver.snapshot(ctx, instance, imageId, async (task, expected) => {
      const to = SHELVING_STATE_FOR[task] ?? task;
      const from = SHELVING_STATE_FOR[expected ?? TaskState.SHELVING] ?? expected ?? null;
      await advanceTask(rt, SHELVING_TASKS, from, to);
    });
    if (result.status === 'pending') {
      await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
        progress: { [P.awaiting]: P.snapshotted },
      });
      if (result.expect) await expectLifecycle(rt, result.expect, result.deadlineSeconds);
      else await awaitDriver(rt, result.deadlineSeconds);
      return;
    }
    await stepDone(rt, P.snapshotted);
  }
  const images = imageStoreOf(rt.deps);
  if ((await images.get(imageId))?.status !== ImageStatus.ACTIVE) {
    await images.setStatus(imageId, 'active', rt.now());
  }

  const power = await currentPowerState(rt, instance);
  const offloadNow = rt.deps.config.shelved_offload_time === 0;
  const now = rt.now().toISOString();
  const host = rt.deps.config.host;
  const res = await ownedWrite(rt, {
    expect: [TaskState.SHELVING, TaskState.SHELVING_IMAGE_UPLOADING],
    changes: (current) => ({
      vm_state: VmState.SHELVED,
      task_state: offloadNow ? TaskState.SHELVING_OFFLOADING : null,
      task_owner: offloadNow ? rt.command.command_id : null,
      power_state: power,
      system_metadata: {
        ...current.system_metadata,
        shelved_at: now,
        shelved_image_id: imageId,
        shelved_host: host,
      },
    }),
    notifications: (old, next) => [...rt.updates(old, next), rt.notify(next, 'shelve.end')],
    ...(offloadNow
      ? {}
      : {
          event: actionEvent(rt, EVENT.shelve, 'Success'),
          finish: rt.outcome('succeeded'),
          progress: NOTHING_PENDING,
        }),
  });
  instance = res.new;
  if (offloadNow) await runOffload(rt, instance, false);
}

async function failShelve(rt: CommandRuntime, current: Instance, error: unknown): Promise<void> {
  if (rt.command.operation === 'shelve_instance') await dropUnfinishedShelvedImage(rt);
  const event = rt.command.operation === 'shelve_instance' ? EVENT.shelve : EVENT.offload;
  await ownedWrite(rt, {
    expect: SHELVE_AND_OFFLOAD_TASKS,
    changes: () => ({ task_state: null, task_owner: null }),
    notifications: (old, next) => rt.updates(old, next),
    fault: rt.fault(current, error),
    event: actionEvent(rt, event, 'Error'),
    finish: rt.outcome('failed', error),
    progress: NOTHING_PENDING,
  });
}

/** An image whose upload never finished is useless; an active one may be unshelved from. */
async function dropUnfinishedShelvedImage(rt: CommandRuntime): Promise<void> {
  const imageId = imageIdForCommand(rt.command.command_id);
  const image = await imageStoreOf(rt.deps).get(imageId);
  if (image && image.status !== ImageStatus.ACTIVE) await deleteImageQuietly(rt, imageId);
}

function shelveRules(rt: CommandRuntime) {
  return {
    failed: (current: Instance, e: unknown) => failShelve(rt, current, e),
    preempted: async () => {
      if (rt.command.operation === 'shelve_instance') await dropUnfinishedShelvedImage(rt);
    },
  };
}

function shelveGuard(rt: CommandRuntime, body: () => Promise<void>): Promise<void> {
  return guarded(rt, body, shelveRules(rt));
}

type ShelveOperation = OperationHandler<Instance> & {
  complete(rt: CommandRuntime, event: LifecycleEvent): Promise<void>;
  abandon(rt: CommandRuntime, error: StratusError): Promise<void>;
};

function shelveFamily(spec: {
  operation: Extract<Operation, 'shelve_instance' | 'shelve_offload_instance'>;
  vmStates: readonly VmState[];
  taskState: TaskState;
  createsImage: boolean;
}): ShelveOperation {
  return {
    operation: spec.operation,

    async prepare(rt, admin) {
      const instance = await loadOwnedInstance(rt, admin);
      checkApiPreconditions(rt, instance, { vmStates: spec.vmStates, checksLock: true, admin });
      return instance;
    },

    /** The API: the shelved image first (image-backed only), then the task. */
    async start(rt, instance) {
      const now = rt.now();
      const images = imageStoreOf(rt.deps);
      const imageId = imageIdForCommand(rt.command.command_id);
      const withImage = spec.createsImage && !isVolumeBacked(instance);
      if (withImage) {
        await images.create(
          instanceImage(instance, {
            id: imageId,
            name: `${instance.display_name}-shelved`,
            imageType: ImageType.SNAPSHOT,
            userId: rt.command.context.user_id,
            now,
          }),
        );
      }
      try {
        await rt.deps.store.updateInstance({
          instanceId: rt.command.instance_id,
          action: rt.actionRef,
          startAction: newAction(rt.command, rt.subject, now),
          expect: { taskState: [null], vmState: spec.vmStates },
          changes: { task_state: spec.taskState, task_owner: rt.command.command_id },
          notifications: (old, next) => rt.updates(old, next),
          now,
        });
      } catch (e) {
        if (withImage && !(await rt.deps.store.getAction(rt.subject, rt.command.command_id))) {
          await images.delete(imageId, now);
        }
        throw e;
      }
    },

    async perform(rt) {
      const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
      if (action?.status !== 'running') return;
      await shelveGuard(rt, () => runShelve(rt));
    },

    async complete(rt) {
      await shelveGuard(rt, async () => {
        await completeAwaited(rt);
        await runShelve(rt);
      });
    },

    abandon: (rt, error) => abandonWith(rt, error, shelveRules(rt)),
  };
}

export const shelveInstance = shelveFamily({
  operation: 'shelve_instance',
  vmStates: SHELVE_VM_STATES,
  taskState: TaskState.SHELVING,
  createsImage: true,
});

export const shelveOffloadInstance = shelveFamily({
  operation: 'shelve_offload_instance',
  vmStates: [VmState.SHELVED],
  taskState: TaskState.SHELVING_OFFLOADING,
  createsImage: false,
});

// ── unshelve_instance ──────────────────────────────────────────────────────────────────────

/** Both unshelve paths end here: the shelved image and its system metadata go. */
async function dropShelvedImage(rt: CommandRuntime, instance: Instance): Promise<void> {
  const imageId = instance.system_metadata.shelved_image_id;
  if (imageId) await deleteImageQuietly(rt, imageId);
}

/** SHELVED: Nova's start_instance finishes the unshelve. */
async function finishPowerOn(rt: CommandRuntime, power: PowerState): Promise<void> {
  const instance = await ownedInstance(rt);
  if (instance) await dropShelvedImage(rt, instance);
  await ownedWrite(rt, {
    expect: [TaskState.POWERING_ON],
    changes: (current) => ({
      vm_state: VmState.ACTIVE,
      task_state: null,
      task_owner: null,
      power_state: power,
      system_metadata: withoutShelvedKeys(current.system_metadata),
    }),
    notifications: (old, next) => [...rt.updates(old, next), rt.notify(next, 'power_on.end')],
    event: actionEvent(rt, EVENT.start, 'Success'),
    finish: rt.outcome('succeeded'),
    progress: NOTHING_PENDING,
  });
}

/** SHELVED_OFFLOADED: the spawn on the chosen node is done. */
async function finishSpawn(
  rt: CommandRuntime,
  power: PowerState,
  ports: Instance['ports'] = [],
): Promise<void> {
  const instance = await ownedInstance(rt);
  if (instance) await dropShelvedImage(rt, instance);
  const now = rt.now().toISOString();
  await ownedWrite(rt, {
    expect: [TaskState.SPAWNING],
    changes: (current) => ({
      vm_state: VmState.ACTIVE,
      task_state: null,
      task_owner: null,
      power_state: power,
      launched_at: now,
      system_metadata: withoutShelvedKeys(current.system_metadata),
      ...(current.ports.length === 0 && ports.length > 0 ? { ports } : {}),
    }),
    notifications: (old, next) => [...rt.updates(old, next), rt.notify(next, 'unshelve.end')],
    event: actionEvent(rt, EVENT.unshelve, 'Success'),
    finish: rt.outcome('succeeded'),
    progress: NOTHING_PENDING,
  });
}

async function runUnshelve(rt: CommandRuntime): Promise<void> {
  let instance = await ownedInstance(rt);
  if (!instance) throw new UnexpectedTaskStateError(rt.command.instance_id, UNSHELVE_TASKS, null);
  const ctx = driverContext(rt);

  if (instance.task_state === TaskState.UNSHELVING) {
    if (instance.vm_state === VmState.SHELVED) {
      // The conductor's path for a guest that is still on its host: start it.
      instance = await advanceTask(
        rt,
        [TaskState.UNSHELVING, TaskState.POWERING_ON],
        TaskState.UNSHELVING,
        TaskState.POWERING_ON,
      );
    } else {
      const args = rt.command.args as ArgsOf<'unshelve_instance'>;
      // The resource tracker chooses the node and claims the flavor there (a redelivered
      // unshelve gets its own claim back).
      const placed = await selectAndClaim(rt.deps, instance, {
        ...(args.availability_zone !== undefined
          ? { availability_zone: args.availability_zone }
          : {}),
        ctx,
      });
      const placement = { node: placed.node, availability_zone: placed.availability_zone };
      instance = await advanceTask(
        rt,
        [TaskState.UNSHELVING, TaskState.SPAWNING],
        TaskState.UNSHELVING,
        TaskState.SPAWNING,
        {
          changes: () => ({ host: rt.deps.config.host, ...placement }),
          before: (old) => [rt.notify(old, 'unshelve.start')],
        },
      );
    }
  }

  if (instance.task_state === TaskState.POWERING_ON) {
    if (!(await progressOf(rt))[P.powerOnStarted]) {
      await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
        notifications: [rt.notify(instance, 'power_on.start')],
        progress: { [P.powerOnStarted]: true },
      });
    }
    await expectLifecycle(rt, 'started');
    const result = await rt.deps.driver.powerOn(ctx, instance);
    if (result.status === 'pending') return awaitDriver(rt, result.deadlineSeconds);
    return finishPowerOn(rt, result.powerState);
  }

  if (instance.task_state === TaskState.SPAWNING) {
    await expectLifecycle(rt, 'started');
    // Spawned from the shelved snapshot, with no injected files and no password (Nova's
    // unshelve passes neither); image_ref stays the instance's original image.
    const result = await rt.deps.driver.spawn(ctx, instance, {
      imageRef: instance.system_metadata.shelved_image_id ?? instance.image_ref,
      imageMeta: instance.image_meta,
      injectedFiles: [],
      adminPassword: null,
      userData: null,
      requestedNetworks: portsAsRequests(instance),
      blockDeviceMapping: instance.block_device_mapping,
      powerOn: true,
    });
    if (result.status === 'pending') return awaitDriver(rt, result.deadlineSeconds);
    return finishSpawn(rt, result.powerState, result.ports);
  }

  throw new UnexpectedTaskStateError(instance.instance_id, UNSHELVE_TASKS, instance.task_state);
}

async function failUnshelve(rt: CommandRuntime, current: Instance, error: unknown): Promise<void> {
  const offloaded = current.vm_state === VmState.SHELVED_OFFLOADED;
  await ownedWrite(rt, {
    expect: UNSHELVE_TASKS,
    changes: () => ({
      task_state: null,
      task_owner: null,
      // Nova cleans up the node it tried: the instance is back off any host.
      ...(offloaded ? { host: null, node: null, availability_zone: null } : {}),
    }),
    notifications: (old, next) => rt.updates(old, next),
    fault: rt.fault(current, error),
    event: actionEvent(rt, offloaded ? EVENT.unshelve : EVENT.start, 'Error'),
    finish: rt.outcome('failed', error),
    progress: NOTHING_PENDING,
  });
  // Nova deletes the allocations of a failed unshelve: the claim on the node it tried goes.
  if (offloaded && current.node) {
    await dropInstanceClaims(rt.deps, current.instance_id, [current.node]);
  }
}

function unshelveRules(rt: CommandRuntime): Parameters<typeof guarded>[2] {
  return {
    failed: (current, e) => failUnshelve(rt, current, e),
    preempted: async (current) => {
      // A delete took the task while the guest was being spawned: it must not outlive it.
      if (current?.node && isBeingDeleted(current)) {
        await rt.deps.driver.destroy(driverContext(rt), current).catch((e: unknown) => {
          if (isRetryable(e)) throw e;
        });
      }
    },
  };
}

function unshelveGuard(rt: CommandRuntime, body: () => Promise<void>): Promise<void> {
  return guarded(rt, body, unshelveRules(rt));
}

export const unshelveInstance: ShelveOperation = {
  operation: 'unshelve_instance',

  async prepare(rt, admin) {
    const instance = await loadOwnedInstance(rt, admin);
    checkApiPreconditions(rt, instance, {
      vmStates: [VmState.SHELVED, VmState.SHELVED_OFFLOADED],
      checksLock: true,
      admin,
      requiresHost: false,
    });
    const zone = (rt.command.args as ArgsOf<'unshelve_instance'>).availability_zone;
    if (zone !== undefined) {
      if (instance.vm_state !== VmState.SHELVED_OFFLOADED) {
        throw new StratusError(
          ErrorCode.InstanceInvalidState,
          `Instance ${instance.instance_id} is ${instance.vm_state}: an availability zone can ` +
            'only be given to unshelve a shelved_offloaded instance',
        );
      }
      if (!(await availabilityZones(rt)).has(zone)) {
        throw new StratusError(
          ErrorCode.InvalidCommand,
          'The requested availability zone is not available',
        );
      }
    }
    return instance;
  },

  async start(rt) {
    const now = rt.now();
    await rt.deps.store.updateInstance({
      instanceId: rt.command.instance_id,
      action: rt.actionRef,
      startAction: newAction(rt.command, rt.subject, now),
      expect: { taskState: [null], vmState: [VmState.SHELVED, VmState.SHELVED_OFFLOADED] },
      changes: { task_state: TaskState.UNSHELVING, task_owner: rt.command.command_id },
      notifications: (old, next) => rt.updates(old, next),
      now,
    });
  },

  async perform(rt) {
    const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
    if (action?.status !== 'running') return;
    await unshelveGuard(rt, () => runUnshelve(rt));
  },

  async complete(rt, event) {
    const power = POWER_STATE_FOR_TRANSITION[event.transition];
    await unshelveGuard(rt, async () => {
      const instance = await ownedInstance(rt);
      if (instance?.task_state === TaskState.POWERING_ON) return finishPowerOn(rt, power);
      return finishSpawn(rt, power);
    });
  },

  abandon: (rt, error) => abandonWith(rt, error, unshelveRules(rt)),
};

/** The zones of the driver's nodes (Nova: get_availability_zones, available only). */
async function availabilityZones(rt: CommandRuntime): Promise<Set<string>> {
  const ctx = driverContext(rt);
  const zones = new Set<string>();
  for (const node of await rt.deps.driver.getAvailableNodes(ctx)) {
    const resources = await rt.deps.driver.getAvailableResource(ctx, node);
    if (resources) zones.add(resources.availability_zone);
  }
  return zones;
}
