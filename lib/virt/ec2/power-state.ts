// EC2 instance state → Nova power_state and lifecycle transition (reference §2). Pure functions:
// the driver's get_info and the lifecycle-events handler (EC2 state-change notifications) both
// use them, so the state a task waits for and the state the sweeper reads back always agree.
//
// Why the extra inputs besides the state name: EC2 reports a hibernated instance as plain
// `stopped` (only StateReason `Client.UserInitiatedHibernate` tells it apart), and the event
// carries no previous state, so "running again after hibernation" (RESUMED) and "terminated by
// us" (not a crash) are recognised from the intent tag the driver set (tags.ts).

import { LifecycleTransition, PowerState } from '../../compute/states.ts';
import { Ec2Intent } from './tags.ts';

export const EC2_STATE_NAMES = [
  'pending',
  'running',
  'shutting-down',
  'terminated',
  'stopping',
  'stopped',
] as const;
export type Ec2StateName = (typeof EC2_STATE_NAMES)[number];

/** EC2's state codes (InstanceState API); only the low byte is meaningful. */
const STATE_BY_CODE: Readonly<Record<number, Ec2StateName>> = {
  0: 'pending',
  16: 'running',
  32: 'shutting-down',
  48: 'terminated',
  64: 'stopping',
  80: 'stopped',
};

/** StateReason code of a hibernated instance. */
export const HIBERNATED_REASON = 'Client.UserInitiatedHibernate';

/**
 * StateReason codes that mean the platform, not a user, ended the instance: a launch that ran
 * out of capacity or volumes, an internal error. A `terminated` with one of these is CRASHED.
 */
export const SERVER_FAILURE_REASONS: readonly string[] = [
  'Server.InsufficientInstanceCapacity',
  'Server.InternalError',
  'Server.SpotInstanceTermination',
  'Server.SpotInstanceShutdown',
  'Client.VolumeLimitExceeded',
  'Client.InternalError',
  'Client.InvalidSnapshot.NotFound',
];

export function isEc2StateName(value: unknown): value is Ec2StateName {
  return (EC2_STATE_NAMES as readonly unknown[]).includes(value);
}

/** The state name of an EC2 InstanceState, from its Name or else its code (`code & 0xff`). */
export function ec2StateName(state: { Name?: string; Code?: number } | undefined): Ec2StateName {
  if (isEc2StateName(state?.Name)) return state.Name;
  const byCode = state?.Code === undefined ? undefined : STATE_BY_CODE[state.Code & 0xff];
  if (byCode === undefined) throw new Error(`unknown EC2 instance state ${JSON.stringify(state)}`);
  return byCode;
}

/** What the mapping needs to know about one instance. */
export interface Ec2Observation {
  state: Ec2StateName;
  /** StateReason.Code, e.g. `Client.UserInitiatedHibernate`. */
  stateReason?: string | null;
  /** The driver's intent tag (tags.ts), if an emulated operation is in flight. */
  intent?: string | null;
}

export function isHibernated(observation: Ec2Observation): boolean {
  return observation.state === 'stopped' && observation.stateReason === HIBERNATED_REASON;
}

/**
 * Nova power_state for an EC2 instance (reference §2, "Proposed" column):
 * pending, stopping, shutting-down → NOSTATE (in flight; Nova's power sync ignores NOSTATE);
 * running → RUNNING; stopped → SHUTDOWN, or SUSPENDED when hibernated; terminated → NOSTATE
 * when the driver terminated it (a delete), CRASHED when it ended out of band.
 */
export function powerStateOf(observation: Ec2Observation): PowerState {
  switch (observation.state) {
    case 'running':
      return PowerState.RUNNING;
    case 'stopped':
      return isHibernated(observation) ? PowerState.SUSPENDED : PowerState.SHUTDOWN;
    case 'terminated':
      return observation.intent === Ec2Intent.TERMINATE ? PowerState.NOSTATE : PowerState.CRASHED;
    case 'pending':
    case 'stopping':
    case 'shutting-down':
      return PowerState.NOSTATE;
  }
}

/** Whether a `terminated` instance ended without the driver asking (crash, capacity, spot). */
export function terminatedOutOfBand(observation: Ec2Observation): boolean {
  return observation.state === 'terminated' && observation.intent !== Ec2Intent.TERMINATE;
}

/**
 * The lifecycle transition an EC2 state-change event reports (nova/virt/event.py), or null for
 * the in-between states that complete nothing:
 * running → STARTED (RESUMED when a resume from hibernation started it);
 * stopped → STOPPED (SUSPENDED when hibernated); terminated → STOPPED (libvirt reports a
 * destroyed domain as STOPPED, and the fake driver's destroy does too);
 * pending, stopping, shutting-down → null.
 *
 * A `stopped` that a HARD reboot caused (intent `start`) is still STOPPED: the task waits for
 * STARTED and ignores it, and the driver starts the instance (Ec2Driver.onStateChange).
 */
export function lifecycleTransitionOf(observation: Ec2Observation): LifecycleTransition | null {
  switch (observation.state) {
    case 'running':
      return observation.intent === Ec2Intent.RESUME
        ? LifecycleTransition.RESUMED
        : LifecycleTransition.STARTED;
    case 'stopped':
      return isHibernated(observation)
        ? LifecycleTransition.SUSPENDED
        : LifecycleTransition.STOPPED;
    case 'terminated':
      return LifecycleTransition.STOPPED;
    case 'pending':
    case 'stopping':
    case 'shutting-down':
      return null;
  }
}

/**
 * The order of EC2's states in one instance's life, breaking ties between two changes EC2
 * stamped with the same second, so lifecycle sequences keep them in order.
 */
export const EC2_STATE_ORDER: Readonly<Record<Ec2StateName, number>> = {
  pending: 0,
  running: 1,
  stopping: 2,
  stopped: 3,
  'shutting-down': 4,
  terminated: 5,
};
