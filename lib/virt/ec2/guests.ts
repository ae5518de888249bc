// Reading this deployment's guests from EC2. Every read filters on the deployment tag, so other
// deployments' instances are never seen. EC2's reads are eventually consistent: right after a
// launch an instance may be missing from them, so the reads that must find one retry an empty
// (or NotFound) answer with backoff for `not_found_grace_seconds`.

import { DescribeInstancesCommand, type Instance as Ec2Instance } from '@aws-sdk/client-ec2';
import type { Instance } from '../../compute/instance.ts';
import { InstanceNotFoundError } from '../../errors.ts';
import type { Ec2Context } from './calls.ts';
import { isInstanceNotFound } from './errors.ts';
import { type Ec2Observation, type Ec2StateName, ec2StateName } from './power-state.ts';
import { TAG, deploymentFilters, instanceFilters, tagValue } from './tags.ts';

/** A Stratus guest as EC2 shows it. */
export interface Guest {
  ec2Id: string;
  instanceId: string;
  node: string;
  state: Ec2StateName;
  stateReason: string | null;
  intent: string | null;
  commandId: string | null;
  instanceType: string;
  raw: Ec2Instance;
}

const NOT_FOUND_FIRST_MS = 500;
const NOT_FOUND_CAP_MS = 8_000;
/** States of a guest that still exists (not terminated or terminating). */
export const EXISTING_STATES: readonly Ec2StateName[] = [
  'pending',
  'running',
  'stopping',
  'stopped',
];

/** Backoff delays whose sum reaches `totalMs` (500 ms doubling, capped at 8 s). */
export function notFoundDelays(totalMs: number): number[] {
  const delays: number[] = [];
  let sum = 0;
  for (
    let delay = NOT_FOUND_FIRST_MS;
    sum < totalMs;
    delay = Math.min(delay * 2, NOT_FOUND_CAP_MS)
  ) {
    const next = Math.min(delay, totalMs - sum);
    delays.push(next);
    sum += next;
  }
  return delays;
}

export function guestOf(raw: Ec2Instance): Guest | null {
  const instanceId = tagValue(raw.Tags, TAG.instanceId);
  if (raw.InstanceId === undefined || instanceId === undefined) return null;
  return {
    ec2Id: raw.InstanceId,
    instanceId,
    node: tagValue(raw.Tags, TAG.node) ?? '',
    state: ec2StateName(raw.State),
    stateReason: raw.StateReason?.Code ?? null,
    intent: tagValue(raw.Tags, TAG.intent) ?? null,
    commandId: tagValue(raw.Tags, TAG.commandId) ?? null,
    instanceType: raw.InstanceType ?? '',
    raw,
  };
}

/** The observation power-state.ts maps (exported for the lifecycle-events wiring). */
export function observationOf(raw: Ec2Instance): Ec2Observation {
  return {
    state: ec2StateName(raw.State),
    stateReason: raw.StateReason?.Code ?? null,
    intent: tagValue(raw.Tags, TAG.intent) ?? null,
  };
}

/** Live guests first, then the newest: the one a Stratus instance id stands for. */
export function preferred(guests: Guest[]): Guest | null {
  const rank = (g: Guest) =>
    EXISTING_STATES.includes(g.state) ? 0 : g.state === 'terminated' ? 2 : 1;
  const launched = (g: Guest) => g.raw.LaunchTime?.getTime() ?? 0;
  return [...guests].sort((a, b) => rank(a) - rank(b) || launched(b) - launched(a))[0] ?? null;
}

/** Every instance matching `filters` (paginated; DescribeInstances recommends it). */
export async function describeInstances(
  ec2: Ec2Context,
  filters: ReturnType<typeof deploymentFilters>,
): Promise<Ec2Instance[]> {
  const found: Ec2Instance[] = [];
  let token: string | undefined;
  do {
    const page = await ec2.call('DescribeInstances', () =>
      ec2.client.send(
        new DescribeInstancesCommand({
          Filters: filters,
          MaxResults: 1000,
          ...(token ? { NextToken: token } : {}),
        }),
      ),
    );
    for (const reservation of page.Reservations ?? []) found.push(...(reservation.Instances ?? []));
    token = page.NextToken;
  } while (token);
  return found;
}

/** This deployment's EC2 instances for a Stratus instance (gone ones included). */
export async function guestsOf(ec2: Ec2Context, instanceId: string): Promise<Guest[]> {
  const raw = await describeInstances(
    ec2,
    instanceFilters(ec2.deployment, { instanceId, includeGone: true }),
  );
  return raw.flatMap((r) => guestOf(r) ?? []);
}

/** This deployment's listed guests (instanceFilters' default: the ones not gone). */
export async function listedGuests(ec2: Ec2Context): Promise<Guest[]> {
  const raw = await describeInstances(ec2, instanceFilters(ec2.deployment));
  return raw.flatMap((r) => guestOf(r) ?? []);
}

/**
 * The guest of a Stratus instance, or null. Right after a launch EC2's reads may not show the
 * instance yet (eventual consistency): while the instance is younger than
 * `not_found_grace_seconds`, an empty answer is retried with backoff for that long.
 */
export async function findGuest(ec2: Ec2Context, instance: Instance): Promise<Guest | null> {
  const created = Date.parse(instance.created_at);
  const graceMs = ec2.settings.not_found_grace_seconds * 1000;
  const young = Number.isFinite(created) && ec2.now().getTime() - created < graceMs;
  const delays = young ? notFoundDelays(graceMs) : [];
  for (let i = 0; ; i += 1) {
    const guest = preferred(await guestsOf(ec2, instance.instance_id));
    if (guest !== null || i >= delays.length) return guest;
    await ec2.sleep(delays[i]!);
  }
}

/** The guest, or InstanceNotFound when EC2 has none (or only one the driver terminated). */
export async function requireGuest(ec2: Ec2Context, instance: Instance): Promise<Guest> {
  const guest = await findGuest(ec2, instance);
  if (guest === null || guest.state === 'terminated' || guest.state === 'shutting-down') {
    throw new InstanceNotFoundError(instance.instance_id);
  }
  return guest;
}

/** One instance by EC2 id, only if it is this deployment's; NotFound retried for the grace. */
export async function describeById(
  ec2: Ec2Context,
  ec2InstanceId: string,
): Promise<Ec2Instance | null> {
  const delays = notFoundDelays(ec2.settings.not_found_grace_seconds * 1000);
  for (let i = 0; ; i += 1) {
    try {
      const page = await ec2.call('DescribeInstances', () =>
        ec2.client.send(
          new DescribeInstancesCommand({
            InstanceIds: [ec2InstanceId],
            Filters: deploymentFilters(ec2.deployment),
          }),
        ),
      );
      // A foreign instance does not match the filter: an empty answer, not NotFound.
      return page.Reservations?.flatMap((r) => r.Instances ?? [])[0] ?? null;
    } catch (error) {
      if (!isInstanceNotFound(error)) throw error;
      if (i >= delays.length) return null;
      await ec2.sleep(delays[i]!);
    }
  }
}
