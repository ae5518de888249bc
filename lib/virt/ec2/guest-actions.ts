// The small steps the driver's operations are built from: start and stop one guest, set and
// clear its `stratus:intent` tag (the next step of a multi-step emulation, tags.ts), and the
// `pending` results that hand completion to EC2's state-change events.

import {
  CreateTagsCommand,
  DeleteTagsCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  type Tag,
} from '@aws-sdk/client-ec2';
import type { LifecycleTransition } from '../../compute/states.ts';
import type { DriverContext, DriverResult } from '../driver.ts';
import { DriverError } from '../errors.ts';
import { type Ec2Context, attempt } from './calls.ts';
import type { Ec2Operation } from './errors.ts';
import type { Guest } from './guests.ts';
import { isMetalType } from './settings.ts';
import { type Ec2Intent, TAG } from './tags.ts';

/** Adds (or overwrites) tags on a guest. */
export async function tagGuest(ec2: Ec2Context, ec2Id: string, tags: Tag[]): Promise<void> {
  await ec2.call('CreateTags', () =>
    ec2.client.send(new CreateTagsCommand({ Resources: [ec2Id], Tags: tags })),
  );
}

export async function setIntent(
  ec2: Ec2Context,
  guest: Guest,
  intent: Ec2Intent,
  ctx: DriverContext,
): Promise<void> {
  await tagGuest(ec2, guest.ec2Id, [
    { Key: TAG.intent, Value: intent },
    { Key: TAG.intentCommand, Value: ctx.commandId.slice(0, 256) },
  ]);
}

export async function clearIntent(ec2: Ec2Context, ec2Id: string): Promise<void> {
  await ec2.call('DeleteTags', () =>
    ec2.client.send(
      new DeleteTagsCommand({
        Resources: [ec2Id],
        Tags: [{ Key: TAG.intent }, { Key: TAG.intentCommand }],
      }),
    ),
  );
}

export function pending(expect: LifecycleTransition, deadlineSeconds: number): DriverResult {
  return { status: 'pending', expect, deadlineSeconds };
}

export function launchDeadline(ec2: Ec2Context, instanceType: string): number {
  return isMetalType(instanceType)
    ? ec2.settings.metal_launch_deadline_seconds
    : ec2.settings.launch_deadline_seconds;
}

export async function startInstance(
  ec2: Ec2Context,
  guest: Guest,
  operation: Ec2Operation,
): Promise<void> {
  await attempt(operation, { instanceId: guest.instanceId, node: guest.node }, () =>
    ec2.call('StartInstances', () =>
      ec2.client.send(new StartInstancesCommand({ InstanceIds: [guest.ec2Id] })),
    ),
  );
}

export async function stopInstance(
  ec2: Ec2Context,
  guest: Guest,
  operation: Ec2Operation,
  options: { force?: boolean; hibernate?: boolean } = {},
): Promise<void> {
  await attempt(operation, { instanceId: guest.instanceId, node: guest.node }, () =>
    ec2.call('StopInstances', () =>
      ec2.client.send(
        new StopInstancesCommand({
          InstanceIds: [guest.ec2Id],
          ...(options.force ? { Force: true } : {}),
          ...(options.hibernate ? { Hibernate: true } : {}),
        }),
      ),
    ),
  );
}

export function invalidState(guest: Guest, operation: string): DriverError {
  return new DriverError(
    'InstanceInvalidState',
    `Instance ${guest.instanceId} is ${guest.state} on EC2. Cannot ${operation} while the instance is in this state.`,
  );
}
