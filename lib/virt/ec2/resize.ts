// Resize, emulated in place: EC2 cannot move an instance's disks to another host, but it can
// change a stopped instance's type. migrate_disk_and_power_off stops the instance, and
// finish_migration (or finish_revert_migration, back to the old type) changes its type,
// re-tags its node and usage, and starts it when asked.

import { ModifyInstanceAttributeCommand } from '@aws-sdk/client-ec2';
import type { Instance } from '../../compute/instance.ts';
import { LifecycleTransition, PowerState } from '../../compute/states.ts';
import type { DriverResult, MigrateDiskRequest, MigrateDiskResult } from '../driver.ts';
import { DriverError } from '../errors.ts';
import { type Ec2Context, attempt } from './calls.ts';
import type { Ec2Operation } from './errors.ts';
import {
  invalidState,
  launchDeadline,
  pending,
  startInstance,
  stopInstance,
  tagGuest,
} from './guest-actions.ts';
import { observationOf, requireGuest } from './guests.ts';
import { nodeRef, zoneOf } from './nodes.ts';
import { stopGuest } from './power.ts';
import { isHibernated } from './power-state.ts';
import { instanceTypeFor } from './settings.ts';
import { TAG } from './tags.ts';

/**
 * Resize on EC2 is in place: the instance is stopped here, its type changed and it is started
 * in finish_migration. The destination must be in the instance's availability zone (a pool
 * or host node there); cross-AZ cold migration has no EC2 equivalent. Hibernated instances
 * cannot change type.
 */
export async function stopForResize(
  ec2: Ec2Context,
  instance: Instance,
  request: MigrateDiskRequest,
): Promise<MigrateDiskResult> {
  const guest = await requireGuest(ec2, instance);
  await requireSameZone(ec2, instance, request.destNode);
  if (instanceTypeFor(ec2.settings, request.flavor.name) === null) {
    throw new DriverError('ResizeError', `Flavor ${request.flavor.name} has no EC2 instance type.`);
  }
  if (isHibernated(observationOf(guest.raw))) throw invalidState(guest, 'resize');
  const result = await stopGuest(ec2, instance, 'migrate_disk_and_power_off', false);
  return {
    ...result,
    diskInfo: JSON.stringify({ ec2_instance_id: guest.ec2Id, from: guest.instanceType }),
  };
}

async function requireSameZone(
  ec2: Ec2Context,
  instance: Instance,
  destNode: string,
): Promise<void> {
  const source = await nodeRef(ec2, instance.node);
  const dest = await nodeRef(ec2, destNode);
  if (dest === null || zoneOf(dest) !== (source === null ? null : zoneOf(source))) {
    throw new DriverError(
      'MigrationPreCheckError',
      `Instance ${instance.instance_id} can only be resized in place on EC2: node ${destNode} is not in its availability zone.`,
    );
  }
}

/**
 * Back to the old type: the instance (running the new type) must be stopped first. When it is
 * running this stops it and answers pending; the step then needs the instance stopped, so a
 * redelivery (or the sweeper) finishes it: unlike libvirt's revert, EC2 needs two stops.
 */
export async function revertResize(
  ec2: Ec2Context,
  instance: Instance,
  sourceNode: string,
  powerOn: boolean,
): Promise<DriverResult> {
  const guest = await requireGuest(ec2, instance);
  if (guest.state === 'running' || guest.state === 'pending') {
    await stopInstance(ec2, guest, 'finish_revert_migration');
    throw new DriverError(
      'InstanceInvalidState',
      `Instance ${instance.instance_id} is being stopped to revert its instance type; retry when it is stopped.`,
    );
  }
  return retype(ec2, instance, { node: sourceNode, powerOn }, 'finish_revert_migration');
}

/** Gives the stopped instance its flavor's type and `target` node, then starts it if asked. */
export async function retype(
  ec2: Ec2Context,
  instance: Instance,
  target: { node: string; powerOn: boolean },
  operation: Ec2Operation,
): Promise<DriverResult> {
  const guest = await requireGuest(ec2, instance);
  const wanted = instanceTypeFor(ec2.settings, instance.flavor.name);
  if (wanted === null) {
    throw new DriverError(
      'ResizeError',
      `Flavor ${instance.flavor.name} has no EC2 instance type.`,
    );
  }
  const context = { instanceId: instance.instance_id, node: target.node };
  if (guest.instanceType !== wanted) {
    if (guest.state !== 'stopped') throw invalidState(guest, 'change the instance type');
    await attempt(operation, context, () =>
      ec2.call('ModifyInstanceAttribute', () =>
        ec2.client.send(
          new ModifyInstanceAttributeCommand({
            InstanceId: guest.ec2Id,
            InstanceType: { Value: wanted },
          }),
        ),
      ),
    );
  }
  await tagGuest(ec2, guest.ec2Id, [
    { Key: TAG.node, Value: target.node },
    {
      Key: TAG.usage,
      Value: `${instance.flavor.vcpus}/${instance.flavor.memory_mb}/${instance.flavor.root_gb + instance.flavor.ephemeral_gb}`,
    },
  ]);
  if (!target.powerOn) return { status: 'done', powerState: PowerState.SHUTDOWN };
  if (guest.state === 'running') return { status: 'done', powerState: PowerState.RUNNING };
  await startInstance(ec2, guest, operation);
  return pending(LifecycleTransition.STARTED, launchDeadline(ec2, wanted));
}
