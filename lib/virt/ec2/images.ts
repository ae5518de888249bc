// Images are AMIs. A snapshot is a CreateImage tagged with the Stratus image id; a spawn finds
// its AMI in the settings, as an `ami-…` ref or the image's `aws_image_id`, or by that tag.

import { CreateImageCommand, DescribeImagesCommand } from '@aws-sdk/client-ec2';
import type { Instance } from '../../compute/instance.ts';
import { TaskState } from '../../compute/states.ts';
import type { CompletionResult, DriverContext, UpdateTaskState } from '../driver.ts';
import { DriverError } from '../errors.ts';
import { type Ec2Context, attempt } from './calls.ts';
import { invalidState } from './guest-actions.ts';
import { EXISTING_STATES, findGuest, observationOf } from './guests.ts';
import { isHibernated } from './power-state.ts';
import { amiFor } from './settings.ts';
import { TAG, deploymentFilters, ownedTagSpecifications } from './tags.ts';

/**
 * CreateImage of the instance, tagged with the image id so a later spawn from that image
 * finds the AMI. EC2 finishes the AMI later (its `EC2 AMI State Change` event); the upload is
 * handed off when CreateImage returns, so the snapshot task ends here. CreateImage reboots
 * the instance for a consistent image (NoReboot false), as libvirt quiesces.
 */
export async function snapshotToAmi(
  ec2: Ec2Context,
  ctx: DriverContext,
  instance: Instance,
  imageId: string,
  updateTaskState: UpdateTaskState,
): Promise<CompletionResult> {
  const guest = await findGuest(ec2, instance);
  if (guest === null || !EXISTING_STATES.includes(guest.state)) {
    throw new DriverError('InstanceNotRunning', `Instance ${instance.instance_id} is not running.`);
  }
  if (isHibernated(observationOf(guest.raw))) throw invalidState(guest, 'snapshot');
  await updateTaskState(TaskState.IMAGE_PENDING_UPLOAD);
  await attempt('snapshot', { instanceId: instance.instance_id, node: guest.node }, () =>
    ec2.call('CreateImage', () =>
      ec2.client.send(
        new CreateImageCommand({
          InstanceId: guest.ec2Id,
          Name: `${ec2.deployment}-${imageId}`.slice(0, 128),
          Description: `Stratus snapshot ${imageId} of ${instance.instance_id}`,
          TagSpecifications: ownedTagSpecifications('image', ec2.deployment, instance.instance_id, [
            { Key: TAG.imageId, Value: imageId },
            { Key: TAG.commandId, Value: ctx.commandId.slice(0, 256) },
          ]),
        }),
      ),
    ),
  );
  await updateTaskState(TaskState.IMAGE_UPLOADING, TaskState.IMAGE_PENDING_UPLOAD);
  return { status: 'done' };
}

/** Settings, an `ami-…` ref, the image's `aws_image_id`, or an AMI a snapshot tagged. */
export async function resolveAmi(
  ec2: Ec2Context,
  imageRef: string,
  imageMeta: Record<string, string>,
): Promise<string> {
  const direct = amiFor(ec2.settings, imageRef, imageMeta);
  if (direct !== null) return direct;
  const out = await ec2.call('DescribeImages', () =>
    ec2.client.send(
      new DescribeImagesCommand({
        Owners: ['self'],
        Filters: [
          ...deploymentFilters(ec2.deployment),
          { Name: `tag:${TAG.imageId}`, Values: [imageRef] },
        ],
      }),
    ),
  );
  const ami = out.Images?.[0]?.ImageId;
  if (ami === undefined) {
    throw new DriverError(
      'ImageNotFound',
      `Image ${imageRef} could not be found: map it to an AMI in ec2.images, or use an ami-… id.`,
    );
  }
  return ami;
}
