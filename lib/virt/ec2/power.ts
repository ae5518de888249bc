// Power on EC2, and the emulations that take more than one EC2 call. Such an emulation makes
// its first call, leaves a `stratus:intent` tag saying what comes next, and answers `pending`;
// the instance's next state-change event (stateChangeEvent) takes the next step and clears
// the tag:
//
// - HARD reboot: stop with Force, intent `start`; `stopped` starts the instance again;
// - a launch with power off: intent `stop` set at launch (launch.ts); `running` stops it;
// - suspend = hibernate; resume starts it with intent `resume`, and `running` is RESUMED.

import { RebootInstancesCommand } from '@aws-sdk/client-ec2';
import type { Instance } from '../../compute/instance.ts';
import { LifecycleTransition, PowerState } from '../../compute/states.ts';
import type { DriverContext, DriverResult, RebootType } from '../driver.ts';
import { NotSupportedError } from '../errors.ts';
import type { LifecycleEvent } from '../events.ts';
import { type Ec2Context, attempt } from './calls.ts';
import { EC2_DRIVER_NAME, type Ec2Operation } from './errors.ts';
import {
  clearIntent,
  invalidState,
  launchDeadline,
  pending,
  setIntent,
  startInstance,
  stopInstance,
} from './guest-actions.ts';
import { describeById, findGuest, guestOf, observationOf, requireGuest } from './guests.ts';
import {
  EC2_STATE_ORDER,
  isEc2StateName,
  isHibernated,
  lifecycleTransitionOf,
  powerStateOf,
  terminatedOutOfBand,
} from './power-state.ts';
import { Ec2Intent } from './tags.ts';

/** Stops the guest (done when already stopped); `force` skips the guest's own shutdown. */
export async function stopGuest(
  ec2: Ec2Context,
  instance: Instance,
  operation: Ec2Operation,
  force: boolean,
): Promise<DriverResult> {
  // A guest terminated outside Stratus (its instance is CRASHED) is as stopped as it will ever
  // be: stopping it succeeds, so the power sync's stop settles the instance in STOPPED instead
  // of failing again at every sync interval (Nova treats a vanished guest the same way).
  const found = await findGuest(ec2, instance);
  if (found && terminatedOutOfBand(observationOf(found.raw)))
    return { status: 'done', powerState: PowerState.CRASHED };
  const guest = await requireGuest(ec2, instance);
  const stopped = pending(LifecycleTransition.STOPPED, ec2.settings.stop_deadline_seconds);
  if (guest.state === 'stopped')
    return { status: 'done', powerState: powerStateOf(observationOf(guest.raw)) };
  if (guest.state === 'stopping') return stopped;
  await stopInstance(ec2, guest, operation, { force });
  return stopped;
}

/** Starts the guest (done when already running), dropping an intent left from before. */
export async function startGuest(
  ec2: Ec2Context,
  instance: Instance,
  operation: Ec2Operation,
): Promise<DriverResult> {
  const guest = await requireGuest(ec2, instance);
  const started = pending(LifecycleTransition.STARTED, launchDeadline(ec2, guest.instanceType));
  if (guest.state === 'running') return { status: 'done', powerState: PowerState.RUNNING };
  if (guest.state === 'pending') return started;
  if (guest.state === 'stopping') throw invalidState(guest, operation.replace('_', ' '));
  if (guest.intent !== null) await clearIntent(ec2, guest.ec2Id);
  await startInstance(ec2, guest, operation);
  return started;
}

/**
 * SOFT: RebootInstances (EC2 escalates to a hard reboot itself when the guest does not shut
 * down in a few minutes). EC2 emits no state change for a reboot, so it is done at once.
 * HARD (emulated): stop with Force, then start when `stopped` arrives (intent `start`). Unlike
 * a hypervisor's reset this may move the guest to other hardware and changes its public IP
 * (no Elastic IP); on a Dedicated Host, Affinity keeps it on the host.
 */
export async function rebootGuest(
  ec2: Ec2Context,
  ctx: DriverContext,
  instance: Instance,
  rebootType: RebootType,
): Promise<DriverResult> {
  const guest = await requireGuest(ec2, instance);
  const started = pending(LifecycleTransition.STARTED, launchDeadline(ec2, guest.instanceType));
  if (rebootType === 'SOFT' && guest.state === 'running') {
    await attempt('reboot', { instanceId: instance.instance_id }, () =>
      ec2.call('RebootInstances', () =>
        ec2.client.send(new RebootInstancesCommand({ InstanceIds: [guest.ec2Id] })),
      ),
    );
    return { status: 'done', powerState: PowerState.RUNNING };
  }
  switch (guest.state) {
    case 'running':
      await setIntent(ec2, guest, Ec2Intent.START, ctx);
      await stopInstance(ec2, guest, 'reboot', { force: true });
      return started;
    case 'stopping':
      await setIntent(ec2, guest, Ec2Intent.START, ctx);
      return started;
    case 'stopped':
      await startInstance(ec2, guest, 'reboot');
      if (guest.intent === Ec2Intent.START) await clearIntent(ec2, guest.ec2Id);
      return started;
    default:
      return started; // pending: already starting
  }
}

/**
 * Emulated by hibernation (StopInstances Hibernate): only for an instance launched
 * hibernation-enabled (ec2.hibernation); otherwise not supported, never a plain cold stop
 * that would lose the guest's memory behind Nova's back.
 */
export async function suspendGuest(ec2: Ec2Context, instance: Instance): Promise<DriverResult> {
  const guest = await requireGuest(ec2, instance);
  const suspended = pending(LifecycleTransition.SUSPENDED, ec2.settings.stop_deadline_seconds);
  if (isHibernated(observationOf(guest.raw)))
    return { status: 'done', powerState: PowerState.SUSPENDED };
  if (guest.raw.HibernationOptions?.Configured !== true) {
    throw new NotSupportedError(
      EC2_DRIVER_NAME,
      'suspend',
      `instance ${instance.instance_id} was not launched hibernation-enabled (set ec2.hibernation before building it)`,
    );
  }
  if (guest.state === 'stopping') return suspended;
  if (guest.state !== 'running') throw invalidState(guest, 'suspend');
  await stopInstance(ec2, guest, 'suspend', { hibernate: true });
  return suspended;
}

/** Starts a hibernated instance; the intent makes its `running` event RESUMED. */
export async function resumeGuest(
  ec2: Ec2Context,
  ctx: DriverContext,
  instance: Instance,
): Promise<DriverResult> {
  const guest = await requireGuest(ec2, instance);
  const resumed = pending(LifecycleTransition.RESUMED, launchDeadline(ec2, guest.instanceType));
  if (guest.state === 'running') return { status: 'done', powerState: PowerState.RUNNING };
  if (guest.state === 'pending' && guest.intent === Ec2Intent.RESUME) return resumed;
  if (!isHibernated(observationOf(guest.raw))) throw invalidState(guest, 'resume');
  await setIntent(ec2, guest, Ec2Intent.RESUME, ctx);
  await startInstance(ec2, guest, 'resume');
  return resumed;
}

/**
 * Translates an EC2 state-change notification (detail `instance-id`, `state`, and the event's
 * `time`) into the lifecycle event that completes a pending task, or null when it completes
 * nothing (a foreign instance, an in-between state, a step of an emulation). Takes the next
 * step of an emulation the event ends: a HARD reboot's `stopped` starts the instance, a
 * power-off launch's `running` stops it; the intent tag is removed when its step is done.
 */
export async function stateChangeEvent(
  ec2: Ec2Context,
  ec2InstanceId: string,
  state: string,
  occurredAt: string,
): Promise<LifecycleEvent | null> {
  if (!isEc2StateName(state)) return null;
  const raw = await describeById(ec2, ec2InstanceId);
  const guest = raw === null ? null : guestOf(raw);
  if (guest === null) return null;
  const current = observationOf(guest.raw);

  if (guest.intent === Ec2Intent.START && current.state === 'stopped' && state === 'stopped') {
    await startInstance(ec2, guest, 'reboot');
    await clearIntent(ec2, guest.ec2Id);
    return null;
  }
  if (guest.intent === Ec2Intent.STOP && current.state === 'running' && state === 'running') {
    await stopInstance(ec2, guest, 'spawn');
    await clearIntent(ec2, guest.ec2Id);
    return null;
  }
  // The event's state decides the transition; the current instance adds what the event lacks
  // (StateReason for hibernation, the intent tag).
  const transition = lifecycleTransitionOf({
    state,
    stateReason: current.state === state ? current.stateReason : null,
    intent: current.intent,
  });
  if (transition === null) return null;
  if (guest.intent === Ec2Intent.RESUME && state === 'running') {
    await clearIntent(ec2, guest.ec2Id);
  }
  const millis = Date.parse(occurredAt);
  return {
    instanceId: guest.instanceId,
    transition,
    node: guest.node,
    occurredAt,
    source: 'ec2',
    sequence:
      (Number.isFinite(millis) ? millis : ec2.now().getTime()) * 1000 + EC2_STATE_ORDER[state],
  };
}
