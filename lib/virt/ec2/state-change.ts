// EC2's own lifecycle events: the "EC2 Instance State-change Notification" that EventBridge
// delivers (reference §4.1) becomes a Stratus LifecycleEvent and completes a pending task through
// handleLifecycleEvent, exactly as the fake driver's events do.
//
// What the event does not carry is looked up: which Stratus instance the EC2 instance is (its
// `stratus:instance-id` tag, through the driver's findByEc2InstanceId, which answers only for
// instances tagged with this deployment). Instances of other deployments and instances nobody
// asked Stratus for are ignored. The driver's onStateChange maps the state (power-state.ts,
// with the StateReason and intent tag it reads) and takes the next step of an emulation.
// A `terminated` marks the event `guestGone`: it completes only a destroying task, and with no
// task running it records the out-of-band destroy (lib/compute/lifecycle.ts).
//
// Ordering (reference §4.3: late, duplicated, reordered). The event's `time` is when EC2 changed
// the state, to the second. It becomes `occurredAt` (the end of that second: an event from the
// second in which a task began waiting still counts for it) and `sequence` (microseconds, plus
// the state's rank within a lifecycle so two changes in one second keep their order). The
// transition is the event's state, never the instance's current one, which may be newer: a
// late `stopped` handled after the instance runs again is still a `stopped` of the past, which
// the lifecycle handler ignores because no task waits for it (or the wait began after it). A
// duplicate finds the task already finished and changes nothing.

import * as z from 'zod/mini';
import '../../validation.ts';
import { handleLifecycleEvent, type LifecycleResult } from '../../compute/lifecycle.ts';
import type { ComputeDeps } from '../../compute/runtime.ts';
import type { LifecycleEvent } from '../events.ts';
import { EC2_STATE_NAMES, EC2_STATE_ORDER, type Ec2StateName } from './power-state.ts';

export const EC2_EVENT_SOURCE = 'aws.ec2';
export const EC2_STATE_CHANGE_DETAIL_TYPE = 'EC2 Instance State-change Notification';

const Ec2StateChangeSchema = z.object({
  id: z.string().check(z.minLength(1)),
  source: z.literal(EC2_EVENT_SOURCE),
  'detail-type': z.literal(EC2_STATE_CHANGE_DETAIL_TYPE),
  time: z.string().check(z.refine((t) => Number.isFinite(Date.parse(t)), 'not a timestamp')),
  detail: z.object({
    'instance-id': z.string().check(z.regex(/^i-[0-9a-f]+$/, 'an EC2 instance id')),
    state: z.enum(EC2_STATE_NAMES),
  }),
});

/** The parts of a state-change notification Stratus uses. */
export interface Ec2StateChange {
  /** EventBridge's event id (the same for every delivery of one event). */
  eventId: string;
  ec2InstanceId: string;
  state: Ec2StateName;
  /** The event's `time`, as sent (second precision). */
  time: string;
}

export type ParsedEc2Event = { ok: true; change: Ec2StateChange } | { ok: false; reason: string };

/** Parses an EventBridge event from source `aws.ec2`; anything else is a reason to ignore it. */
export function parseEc2StateChange(event: unknown): ParsedEc2Event {
  const parsed = Ec2StateChangeSchema.safeParse(event);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
    return { ok: false, reason: `not an EC2 state-change notification${where}` };
  }
  const { id, time, detail } = parsed.data;
  return {
    ok: true,
    change: { eventId: id, ec2InstanceId: detail['instance-id'], state: detail.state, time },
  };
}

/**
 * Each state's place in one launch → stop → start → terminate lifecycle, to order two changes
 * EC2 stamps with the same second (pending and running of a fast launch, say).
 */

/** EventBridge times name a second; the change happened at the latest at its end. */
const SECOND_MS = 1000;

/** `occurredAt` (ISO, ms) and `sequence` (µs) of a change. */
export function eventOrder(change: Pick<Ec2StateChange, 'time' | 'state'>): {
  occurredAt: string;
  sequence: number;
} {
  const ms = Date.parse(change.time);
  const secondStart = Math.floor(ms / SECOND_MS) * SECOND_MS;
  // A time with sub-second digits is taken as given; a whole second means "within it".
  const occurred = ms === secondStart ? secondStart + SECOND_MS - 1 : ms;
  return {
    occurredAt: new Date(occurred).toISOString(),
    sequence: ms * 1000 + EC2_STATE_ORDER[change.state],
  };
}

/** The part of the EC2 driver the event handler uses (Ec2Driver implements it). */
export interface Ec2EventResolver {
  /** The Stratus instance of an EC2 instance; null when it does not carry this deployment's tag. */
  findByEc2InstanceId(ec2InstanceId: string): Promise<{ instanceId: string; node: string } | null>;
  /**
   * The lifecycle event a state change stands for, or null when it completes nothing; takes
   * the next step of an emulation the change ends (a HARD reboot's `stopped` starts the guest).
   */
  onStateChange(
    ec2InstanceId: string,
    state: string,
    occurredAt?: string,
  ): Promise<LifecycleEvent | null>;
}

export function isEc2EventResolver(driver: unknown): driver is Ec2EventResolver {
  if (typeof driver !== 'object' || driver === null) return false;
  const d = driver as Partial<Ec2EventResolver>;
  return typeof d.findByEc2InstanceId === 'function' && typeof d.onStateChange === 'function';
}

/** States between two stable ones: they complete nothing and start no emulation step. */
const IN_TRANSITION: ReadonlySet<Ec2StateName> = new Set(['pending', 'stopping', 'shutting-down']);

export type Ec2EventResult =
  | LifecycleResult
  /** The EC2 instance is not this deployment's (untagged, or another deployment's). */
  | 'foreign'
  /** pending, stopping, shutting-down, or a step of an emulation: no task completes. */
  | 'in_transition'
  /** Not a state-change notification Stratus understands. */
  | 'unrecognized';

/**
 * Handles one EventBridge event from `aws.ec2`. Errors (EC2 throttling, DynamoDB) propagate so
 * the queue redelivers the event; everything that can never succeed is logged and ignored.
 *
 * In-between states are dropped without an EC2 call (the default bus carries every instance of
 * the account). A stable state costs one DescribeInstances for a foreign instance (the
 * deployment filter finds nothing) and two for one of ours (the lookup, then the driver's
 * onStateChange, which reads the instance again for StateReason and intent).
 */
export async function handleEc2Event(deps: ComputeDeps, event: unknown): Promise<Ec2EventResult> {
  const parsed = parseEc2StateChange(event);
  if (!parsed.ok) {
    deps.logger.warn('EC2 event ignored', { reason: parsed.reason });
    return 'unrecognized';
  }
  const { change } = parsed;
  const details = {
    event_id: change.eventId,
    ec2_instance_id: change.ec2InstanceId,
    ec2_state: change.state,
    time: change.time,
  };
  if (!isEc2EventResolver(deps.driver)) {
    deps.logger.warn('EC2 event ignored: the driver is not the EC2 driver', details);
    return 'unrecognized';
  }
  if (IN_TRANSITION.has(change.state)) {
    deps.logger.info('EC2 event completes nothing (state in transition)', details);
    return 'in_transition';
  }
  const owner = await deps.driver.findByEc2InstanceId(change.ec2InstanceId);
  if (owner === null) {
    deps.logger.info('EC2 event for an instance this deployment does not own: ignored', details);
    return 'foreign';
  }
  const { occurredAt, sequence } = eventOrder(change);
  const translated = await deps.driver.onStateChange(
    change.ec2InstanceId,
    change.state,
    occurredAt,
  );
  if (translated === null) {
    deps.logger.info('EC2 event completes no task (an emulation step)', {
      ...details,
      instance_id: owner.instanceId,
    });
    return 'in_transition';
  }
  const lifecycle: LifecycleEvent = {
    ...translated,
    occurredAt,
    sequence,
    source: 'ec2',
    ...(change.state === 'terminated' ? { guestGone: true } : {}),
  };
  deps.logger.info('EC2 state change', {
    ...details,
    instance_id: lifecycle.instanceId,
    transition: lifecycle.transition,
  });
  return handleLifecycleEvent(deps, lifecycle);
}
