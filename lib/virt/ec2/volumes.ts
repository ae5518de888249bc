// Cinder volumes as EBS volumes: the volume id travels in connection_info, Nova's device names
// become the names EC2 accepts, and attach/detach are idempotent for retried commands.

import { AttachVolumeCommand, DetachVolumeCommand } from '@aws-sdk/client-ec2';
import type { BlockDeviceMapping, Instance } from '../../compute/instance.ts';
import type { VolumeAttachRequest, VolumeDetachRequest } from '../driver.ts';
import { DriverError } from '../errors.ts';
import { isAwsId } from './aws-ids.ts';
import { type Ec2Context, attempt } from './calls.ts';
import { ec2ErrorCode, translateEc2Error } from './errors.ts';
import type { Guest } from './guests.ts';

/** Device names AWS recommends for EBS data volumes (reference §1, attach_volume). */
const DATA_DEVICE_NAMES = Array.from(
  { length: 11 },
  (_unused, i) => `/dev/sd${String.fromCharCode(102 + i)}`,
);
const EC2_DEVICE = /^\/dev\/(sd[b-z]|xvd[b-z]|xvd[a-d][a-z])$/;

/** The EBS volume id Cinder's connection_info names. */
function volumeIdOf(connectionInfo: VolumeAttachRequest['connectionInfo']): string {
  const fromData = connectionInfo.data['volume_id'];
  return typeof fromData === 'string' && isAwsId('vol', fromData)
    ? fromData
    : connectionInfo.volume_id;
}

/** A device name EC2 accepts: Nova's /dev/vdX becomes /dev/sdX (reference §1). */
function ec2Device(mountpoint: string): string {
  if (EC2_DEVICE.test(mountpoint)) return mountpoint;
  const virtio = /^\/dev\/vd([b-z])$/.exec(mountpoint);
  if (virtio) return `/dev/sd${virtio[1]}`;
  throw new DriverError(
    'InvalidDevicePath',
    `The supplied device path (${mountpoint}) is invalid on EC2.`,
  );
}

/** The first free /dev/sd[f-p], as AWS recommends for EBS data volumes. */
export function freeDeviceName(
  instance: Instance,
  guest: Guest,
  bdms: BlockDeviceMapping[],
): string {
  const taken = new Set([
    ...bdms.flatMap((b) => (b.device_name ? [ec2Device(b.device_name)] : [])),
    ...(guest.raw.BlockDeviceMappings ?? []).flatMap((m) => (m.DeviceName ? [m.DeviceName] : [])),
  ]);
  const free = DATA_DEVICE_NAMES.find(
    (name) => !taken.has(name) && !taken.has(name.replace('/sd', '/xvd')),
  );
  if (free === undefined) {
    throw new DriverError(
      'TooManyDiskDevices',
      `Instance ${instance.instance_id} has no free EBS device name.`,
    );
  }
  return free;
}

/** AttachVolume; attaching what is already attached there is done (a retried command). */
export async function attachVolume(
  ec2: Ec2Context,
  instance: Instance,
  guest: Guest,
  request: VolumeAttachRequest,
): Promise<void> {
  const volumeId = volumeIdOf(request.connectionInfo);
  const device = ec2Device(request.mountpoint);
  const mapped = (guest.raw.BlockDeviceMappings ?? []).find((m) => m.Ebs?.VolumeId === volumeId);
  if (mapped !== undefined) return;
  await attempt('attach_volume', { instanceId: instance.instance_id }, () =>
    ec2.call('AttachVolume', () =>
      ec2.client.send(
        new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: guest.ec2Id, Device: device }),
      ),
    ),
  );
}

/** DetachVolume; a volume that is not attached (InvalidAttachment.NotFound) is detached. */
export async function detachVolume(
  ec2: Ec2Context,
  instance: Instance,
  guest: Guest,
  request: VolumeDetachRequest,
): Promise<void> {
  const volumeId = volumeIdOf(request.connectionInfo);
  try {
    await ec2.call('DetachVolume', () =>
      ec2.client.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: guest.ec2Id })),
    );
  } catch (error) {
    const code = ec2ErrorCode(error);
    if (code === 'InvalidAttachment.NotFound' || code === 'IncorrectState') return;
    throw translateEc2Error(error, {
      operation: 'detach_volume',
      instanceId: instance.instance_id,
    });
  }
}
