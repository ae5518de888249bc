// attach_volume, detach_volume and swap_volume (nova-compute.md §1.6, §7). No task_state: the
// API checks lock and vm_state (task None) and Nova serialises the rest with a per-instance
// lock; here every write is conditional on the instance record instead.
//
//   attach   the API's write reserves the device name: the block device mapping is added with
//            a name computed from the mappings in the record it writes over, so two concurrent
//            attaches never get one name (the loser's retry re-reads and re-computes).
//            compute: get_volume_connector, attach_volume; `volume.attach` only on success;
//            on failure the mapping goes away again, with a fault. SHELVED_OFFLOADED instances
//            have no host: the API records an unnamed mapping and no driver is called.
//   detach   detach_volume, mapping removed, `volume.detach`.
//   swap     swap_volume, the mapping now names the new volume; no legacy notification.
//
// Mappings are not part of Nova's Instance object, so their saves emit no
// compute.instance.update, here neither.

import type { ArgsOf } from '../../commands/schemas.ts';
import { ErrorCode, StratusError } from '../../errors.ts';
import type { VolumeConnectionInfo } from '../../virt/driver.ts';
import { isNotSupported } from '../../virt/errors.ts';
import {
  DevicePathInUseError,
  InvalidDevicePathError,
  UNLIMITED_DISK_DEVICES,
  getDeviceNameForInstance,
  matchDevice,
  novaErrorCode,
} from '../device-names.ts';
import type { OperationHandler } from '../executor.ts';
import type { BlockDeviceMapping, Instance } from '../instance.ts';
import type { CommandRuntime } from '../runtime.ts';
import { VmState } from '../states.ts';
import { driverContext, isRetryable } from './common.ts';
import {
  type ApiRules,
  checkInstance,
  finishFailed,
  finishSucceeded,
  runningInstance,
  startOnInstance,
} from './no-task-operation.ts';

/** attach_volume / detach_volume: check_instance_state(vm_state=[…]), task None. */
export const VOLUME_VM_STATES: readonly VmState[] = [
  VmState.ACTIVE,
  VmState.PAUSED,
  VmState.STOPPED,
  VmState.RESIZED,
  VmState.SOFT_DELETED,
  VmState.SHELVED,
  VmState.SHELVED_OFFLOADED,
];
export const SWAP_VOLUME_VM_STATES: readonly VmState[] = [
  VmState.ACTIVE,
  VmState.PAUSED,
  VmState.RESIZED,
];

const offloaded = (i: Instance) => i.vm_state === VmState.SHELVED_OFFLOADED;

/** A SHELVED_OFFLOADED instance is handled by the API alone: no host needed. */
const VOLUME_RULES: ApiRules = { vmStates: VOLUME_VM_STATES, requiresHost: (i) => !offloaded(i) };
const SWAP_RULES: ApiRules = { vmStates: SWAP_VOLUME_VM_STATES };

/** How often the attach re-asks a device-naming driver whose name a concurrent attach took. */
const MAX_DRIVER_NAME_ATTEMPTS = 5;

export class VolumeBdmNotFoundError extends StratusError {
  constructor(instanceId: string, volumeId: string) {
    super(
      novaErrorCode('VolumeBDMNotFound', ErrorCode.InstanceNotFound),
      `Instance ${instanceId} is not attached to volume ${volumeId}`,
    );
  }
}

/** Nova's InvalidVolume (400). */
export class InvalidVolumeError extends StratusError {
  constructor(reason: string) {
    super(novaErrorCode('InvalidVolume', ErrorCode.InvalidCommand), `Invalid volume: ${reason}`);
  }
}

function bdmOf(instance: Instance, volumeId: string): BlockDeviceMapping | undefined {
  return instance.block_device_mapping.find((b) => b.volume_id === volumeId);
}

function withoutBdm(instance: Instance, bdm: BlockDeviceMapping): BlockDeviceMapping[] {
  return instance.block_device_mapping.filter(
    (b) => !(b.volume_id === bdm.volume_id && b.device_name === bdm.device_name),
  );
}

/** `[compute]max_disk_devices_to_attach`, once the configuration carries it. */
function maxDiskDevices(rt: CommandRuntime): number {
  const option = (rt.deps.config as { max_disk_devices_to_attach?: number })
    .max_disk_devices_to_attach;
  return option ?? UNLIMITED_DISK_DEVICES;
}

/**
 * Cinder's connection_info, reduced: there is no Cinder, so it names the volume and carries the
 * host's connector (get_volume_connector) the way Nova hands it to Cinder.
 */
function connectionInfo(
  volumeId: string,
  connector?: Record<string, string>,
): VolumeConnectionInfo {
  return {
    volume_id: volumeId,
    driver_volume_type: 'volume',
    data: { volume_id: volumeId, access_mode: 'rw', ...(connector ? { connector } : {}) },
  };
}

/** driver.get_device_name_for_instance; null when the driver leaves naming to compute utils. */
async function driverDeviceName(
  rt: CommandRuntime,
  instance: Instance,
  requested: BlockDeviceMapping,
): Promise<string | null> {
  try {
    return await rt.deps.driver.getDeviceNameForInstance(
      driverContext(rt),
      instance,
      instance.block_device_mapping,
      requested,
    );
  } catch (e) {
    if (isNotSupported(e)) return null;
    throw e;
  }
}

/** The device a driver named is free on the record about to be written (re-checked per retry). */
class DriverNameTaken extends Error {}

// ── attach_volume ────────────────────────────────────────────────────────────────────────────

export const attachVolume: OperationHandler<void> = {
  operation: 'attach_volume',

  async prepare(rt, admin) {
    await checkInstance(rt, admin, VOLUME_RULES);
    const args = rt.command.args as ArgsOf<'attach_volume'>;
    // Nova's API fails fast on a device name the manager could never accept.
    if (args.device && !matchDevice(args.device)) throw new InvalidDevicePathError(args.device);
  },

  /** reserve_block_device_name: the mapping and the action commit together, or not at all. */
  async start(rt) {
    const args = rt.command.args as ArgsOf<'attach_volume'>;
    const requested: BlockDeviceMapping = {
      volume_id: args.volume_id,
      device_name: args.device ?? null,
      boot_index: null,
      delete_on_termination: false,
    };
    for (let attempt = 1; ; attempt++) {
      const read = await rt.deps.store.getInstance(rt.command.instance_id);
      const named = read && !offloaded(read) ? await driverDeviceName(rt, read, requested) : null;
      try {
        await startOnInstance(rt, VOLUME_RULES, {
          changes: (current) => {
            if (bdmOf(current, args.volume_id)) {
              throw new InvalidVolumeError(`volume ${args.volume_id} already attached`);
            }
            let deviceName: string | null = null;
            if (!offloaded(current)) {
              deviceName =
                named ?? getDeviceNameForInstance(current, args.device, maxDiskDevices(rt));
              if (named && current.block_device_mapping.some((b) => b.device_name === named)) {
                throw new DriverNameTaken();
              }
            }
            return {
              block_device_mapping: [
                ...current.block_device_mapping,
                { ...requested, device_name: deviceName },
              ],
            };
          },
        });
        return;
      } catch (e) {
        if (!(e instanceof DriverNameTaken)) throw e;
        if (attempt >= MAX_DRIVER_NAME_ATTEMPTS) throw new DevicePathInUseError(named);
      }
    }
  },

  async perform(rt) {
    const instance = await runningInstance(rt);
    if (!instance) return;
    const args = rt.command.args as ArgsOf<'attach_volume'>;
    const bdm = bdmOf(instance, args.volume_id);
    if (!bdm) {
      await finishFailed(
        rt,
        instance,
        new VolumeBdmNotFoundError(instance.instance_id, args.volume_id),
        {
          event: 'compute_attach_volume',
        },
      );
      return;
    }
    const result = { volume_id: bdm.volume_id, device: bdm.device_name };
    if (bdm.device_name === null) {
      // Attached to a shelved-offloaded instance: the compute service that unshelves it
      // connects the volume (Nova's _attach_volume_shelved_offloaded).
      await finishSucceeded(rt, instance, { event: 'api_attach_volume', result });
      return;
    }
    try {
      const ctx = driverContext(rt);
      const connector = await rt.deps.driver.getVolumeConnector(ctx, instance);
      await rt.deps.driver.attachVolume(ctx, instance, {
        connectionInfo: connectionInfo(bdm.volume_id, { ...connector }),
        mountpoint: bdm.device_name,
        diskBus: args.disk_bus ?? null,
        deviceType: args.device_type ?? null,
      });
    } catch (e) {
      if (isRetryable(e)) throw e;
      await finishFailed(rt, instance, e, {
        event: 'compute_attach_volume',
        changes: (current) => ({ block_device_mapping: withoutBdm(current, bdm) }),
      });
      return;
    }
    await finishSucceeded(rt, instance, {
      event: 'compute_attach_volume',
      notifications: (_old, next) => [
        rt.notify(next, 'volume.attach', { extra: { volume_id: bdm.volume_id } }),
      ],
      result,
    });
  },
};

// ── detach_volume ────────────────────────────────────────────────────────────────────────────

function attachedBdm(instance: Instance, volumeId: string): BlockDeviceMapping {
  const bdm = bdmOf(instance, volumeId);
  if (!bdm) throw new VolumeBdmNotFoundError(instance.instance_id, volumeId);
  return bdm;
}

export const detachVolume: OperationHandler<void> = {
  operation: 'detach_volume',

  async prepare(rt, admin) {
    const instance = await checkInstance(rt, admin, VOLUME_RULES);
    const { volume_id } = rt.command.args as ArgsOf<'detach_volume'>;
    if (attachedBdm(instance, volume_id).boot_index === 0) {
      throw new InvalidVolumeError('Cannot detach a root device volume');
    }
  },

  async start(rt) {
    const { volume_id } = rt.command.args as ArgsOf<'detach_volume'>;
    await startOnInstance(rt, VOLUME_RULES, {
      changes: (current) => {
        attachedBdm(current, volume_id);
        return {};
      },
    });
  },

  async perform(rt) {
    const instance = await runningInstance(rt);
    if (!instance) return;
    const { volume_id } = rt.command.args as ArgsOf<'detach_volume'>;
    const bdm = bdmOf(instance, volume_id);
    const onHost = !offloaded(instance) && bdm?.device_name != null;
    const event = onHost ? 'compute_detach_volume' : 'api_detach_volume';
    if (!bdm) {
      // Another detach of the same volume finished first (Nova's lock would have made this one
      // find no mapping too).
      await finishFailed(
        rt,
        instance,
        new VolumeBdmNotFoundError(instance.instance_id, volume_id),
        {
          event,
        },
      );
      return;
    }
    if (onHost) {
      try {
        await rt.deps.driver.detachVolume(driverContext(rt), instance, {
          connectionInfo: connectionInfo(volume_id),
          mountpoint: bdm.device_name!,
        });
      } catch (e) {
        if (isRetryable(e)) throw e;
        await finishFailed(rt, instance, e, { event });
        return;
      }
    }
    await finishSucceeded(rt, instance, {
      event,
      changes: (current) => ({ block_device_mapping: withoutBdm(current, bdm) }),
      notifications: (_old, next) =>
        onHost ? [rt.notify(next, 'volume.detach', { extra: { volume_id } })] : [],
    });
  },
};

// ── swap_volume ──────────────────────────────────────────────────────────────────────────────

function checkSwap(instance: Instance, oldVolumeId: string, newVolumeId: string): void {
  if (!bdmOf(instance, oldVolumeId))
    throw new VolumeBdmNotFoundError(instance.instance_id, oldVolumeId);
  if (bdmOf(instance, newVolumeId)) {
    throw new InvalidVolumeError('New volume must be detached in order to swap.');
  }
}

export const swapVolume: OperationHandler<void> = {
  operation: 'swap_volume',

  async prepare(rt, admin) {
    const instance = await checkInstance(rt, admin, SWAP_RULES);
    const args = rt.command.args as ArgsOf<'swap_volume'>;
    checkSwap(instance, args.old_volume_id, args.new_volume_id);
  },

  async start(rt) {
    const args = rt.command.args as ArgsOf<'swap_volume'>;
    await startOnInstance(rt, SWAP_RULES, {
      changes: (current) => {
        checkSwap(current, args.old_volume_id, args.new_volume_id);
        return {};
      },
    });
  },

  async perform(rt) {
    const instance = await runningInstance(rt);
    if (!instance) return;
    const args = rt.command.args as ArgsOf<'swap_volume'>;
    const event = 'compute_swap_volume';
    const bdm = bdmOf(instance, args.old_volume_id);
    if (!bdm?.device_name) {
      const error = new VolumeBdmNotFoundError(instance.instance_id, args.old_volume_id);
      await finishFailed(rt, instance, error, { event });
      return;
    }
    try {
      await rt.deps.driver.swapVolume(driverContext(rt), instance, {
        oldConnectionInfo: connectionInfo(args.old_volume_id),
        newConnectionInfo: connectionInfo(args.new_volume_id),
        mountpoint: bdm.device_name,
        resizeTo: 0,
      });
    } catch (e) {
      if (isRetryable(e)) throw e;
      await finishFailed(rt, instance, e, { event });
      return;
    }
    await finishSucceeded(rt, instance, {
      event,
      changes: (current) => ({
        block_device_mapping: current.block_device_mapping.map((b) =>
          b.volume_id === args.old_volume_id && b.device_name === bdm.device_name
            ? { ...b, volume_id: args.new_volume_id }
            : b,
        ),
      }),
      result: { volume_id: args.new_volume_id, device: bdm.device_name },
    });
  },
};
