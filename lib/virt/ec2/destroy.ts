// Deleting an instance: TerminateInstances of every live guest, after an intent tag that tells
// the `terminated` event (and get_info) this was a delete, not a crash.

import { TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import type { Instance } from '../../compute/instance.ts';
import { LifecycleTransition, PowerState, TaskState } from '../../compute/states.ts';
import type { DriverContext, DriverResult } from '../driver.ts';
import { DriverError } from '../errors.ts';
import type { Ec2Context } from './calls.ts';
import { isInstanceNotFound, translateEc2Error } from './errors.ts';
import { pending, setIntent } from './guest-actions.ts';
import { EXISTING_STATES, findGuest, guestsOf } from './guests.ts';
import { Ec2Intent } from './tags.ts';

/**
 * TerminateInstances for every live guest of the instance (duplicates included); done when
 * there is none. During a resize revert the compute layer destroys the destination's guest;
 * a resize on EC2 happens in place, so there is no such guest and nothing is terminated.
 */
export async function terminateGuests(
  ec2: Ec2Context,
  ctx: DriverContext,
  instance: Instance,
): Promise<DriverResult> {
  if (instance.task_state === TaskState.RESIZE_REVERTING) {
    return { status: 'done', powerState: PowerState.NOSTATE };
  }
  const guests = (await guestsOf(ec2, instance.instance_id)).filter((g) =>
    EXISTING_STATES.includes(g.state),
  );
  if (guests.length === 0) return { status: 'done', powerState: PowerState.NOSTATE };
  for (const guest of guests) {
    // The intent tells the `terminated` event (and get_info) that this was a delete, not a
    // crash. Attached Cinder volumes survive: AttachVolume leaves DeleteOnTermination false.
    await setIntent(ec2, guest, Ec2Intent.TERMINATE, ctx).catch((error: unknown) => {
      if (!isInstanceNotFound(error)) {
        throw translateEc2Error(error, {
          operation: 'destroy',
          instanceId: instance.instance_id,
        });
      }
    });
  }
  try {
    await ec2.call('TerminateInstances', () =>
      ec2.client.send(new TerminateInstancesCommand({ InstanceIds: guests.map((g) => g.ec2Id) })),
    );
  } catch (error) {
    // Already gone is destroyed (the contract: an unknown guest counts as done).
    if (isInstanceNotFound(error)) return { status: 'done', powerState: PowerState.NOSTATE };
    throw translateEc2Error(error, { operation: 'destroy', instanceId: instance.instance_id });
  }
  return pending(LifecycleTransition.STOPPED, ec2.settings.stop_deadline_seconds);
}

/** cleanup's check: no live guest may be left once the instance is destroyed. */
export async function requireDestroyed(ec2: Ec2Context, instance: Instance): Promise<void> {
  const guest = await findGuest(ec2, instance);
  if (guest !== null && EXISTING_STATES.includes(guest.state)) {
    throw new DriverError(
      'InstanceExists',
      `Instance ${instance.instance_id} has not been destroyed.`,
    );
  }
}
