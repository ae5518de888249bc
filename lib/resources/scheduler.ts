// Node selection: Nova's filter scheduler on the tracker's node records, then a claim on the
// chosen node. The filters and weighers only rank; the claim's transaction is what decides, so
// a node that filled up since it was read just fails its claim and the next candidate is tried.
// No candidate left: NoValidHost ("No valid host was found. There are not enough hosts
// available."), as Nova's conductor answers.
//
// Filters:  ComputeFilter (enabled, not in maintenance), AvailabilityZoneFilter, the capacity
//           filters under allocation ratios and reserved amounts (Placement's allocation
//           candidates: RAM, cores, disk, max_unit), and the driver's constraints (a Dedicated
//           Host takes one instance type family).
// Weigher:  RAMWeigher: free RAM × ram_weight_multiplier; > 0 spreads (most free first, the
//           default 1.0), < 0 packs. Ties go to the node name, so the order is stable.

import type { Instance, InstanceFlavor } from '../compute/instance.ts';
import type { DriverContext } from '../virt/driver.ts';
import { claimResources, insufficient } from './capacity.ts';
import { type MoveRequest, instanceClaim, moveClaim } from './claims.ts';
import { type ResourceDeps, nodeStateOf, nodeStoreOf } from './deps.ts';
import { NoValidHostError, isComputeResourcesUnavailable } from './errors.ts';
import { loadNodes } from './nodes.ts';
import { type Claim, ClaimKind, type ComputeNode, usageOf } from './types.ts';

export { NoValidHostError };

export const NO_VALID_HOST_REASON = 'There are not enough hosts available.';

/** A driver's constraint on which nodes can take an instance. */
export interface HostConstraint {
  name: string;
  /** Null when `node` can take the instance at `flavor`, otherwise why not. */
  check(node: ComputeNode, instance: Instance, flavor: InstanceFlavor): string | null;
}

/**
 * A Dedicated Host runs one instance type family. The EC2 driver launches `flavor.name` as the
 * instance type (`c5.large` → family `c5`); a node with no family takes anything, so this is a
 * no-op for the fake driver.
 */
export const instanceTypeFamilyConstraint: HostConstraint = {
  name: 'InstanceTypeFamilyFilter',
  check(node, _instance, flavor) {
    if (!node.instance_type_family) return null;
    const family = flavor.name.split('.')[0];
    return family === node.instance_type_family
      ? null
      : `instance type family ${family} is not ${node.instance_type_family}`;
  },
};

export const DEFAULT_CONSTRAINTS: readonly HostConstraint[] = [instanceTypeFamilyConstraint];

export interface SelectOptions {
  /** Only this node (an admin's `node`). */
  node?: string;
  availability_zone?: string;
  /** Never these nodes (a move's source when the driver cannot move in place). */
  exclude?: readonly string[];
  /** Defaults to the instance's flavor. */
  flavor?: InstanceFlavor;
  ctx?: DriverContext;
  constraints?: readonly HostConstraint[];
  /** Overrides config `ram_weight_multiplier`. */
  ramWeightMultiplier?: number;
}

export interface Placement {
  node: string;
  availability_zone: string;
  claim: Claim;
}

export interface FilterInput {
  node: ComputeNode;
  enabled: boolean;
  maintenance: boolean;
}

/** The nodes that pass every filter, and why each other one did not. */
export function filterNodes(
  inputs: readonly FilterInput[],
  instance: Instance,
  flavor: InstanceFlavor,
  options: Pick<SelectOptions, 'availability_zone' | 'constraints'> = {},
): { passed: ComputeNode[]; rejected: Record<string, string> } {
  const request = claimResources(instance, flavor);
  const constraints = options.constraints ?? DEFAULT_CONSTRAINTS;
  const passed: ComputeNode[] = [];
  const rejected: Record<string, string> = {};
  for (const { node, enabled, maintenance } of inputs) {
    let reason: string | null = null;
    if (!enabled) reason = 'ComputeFilter: disabled';
    else if (maintenance) reason = 'ComputeFilter: in maintenance';
    else if (
      options.availability_zone !== undefined &&
      node.availability_zone !== options.availability_zone
    ) {
      reason = `AvailabilityZoneFilter: in ${node.availability_zone}`;
    } else {
      const short = insufficient(node, usageOf(node), request);
      if (short.length > 0) reason = `ResourcesFilter: ${short.join('; ')}`;
      for (const c of constraints) {
        if (reason) break;
        const why = c.check(node, instance, flavor);
        if (why) reason = `${c.name}: ${why}`;
      }
    }
    if (reason) rejected[node.node] = reason;
    else passed.push(node);
  }
  return { passed, rejected };
}

/** Nova's RAMWeigher: free_ram_mb (total − reserved − used) × multiplier, heaviest first. */
export function weighNodes(nodes: readonly ComputeNode[], multiplier: number): ComputeNode[] {
  const freeRam = (n: ComputeNode) => n.memory_mb - n.reserved_memory_mb - n.memory_mb_used;
  return [...nodes].sort(
    (a, b) => multiplier * (freeRam(b) - freeRam(a)) || (a.node < b.node ? -1 : 1),
  );
}

function weightMultiplier(deps: ResourceDeps, options: SelectOptions): number {
  return options.ramWeightMultiplier ?? deps.config.ram_weight_multiplier ?? 1.0;
}

function contextFor(instance: Instance, options: SelectOptions): DriverContext {
  if (options.ctx) return options.ctx;
  const commandId = instance.task_owner ?? `schedule:${instance.instance_id}`;
  return { commandId, requestId: `req-${commandId}` };
}

/** The candidates for `instance`, best first, after filters and weighers. */
async function candidates(
  deps: ResourceDeps,
  instance: Instance,
  flavor: InstanceFlavor,
  names: readonly string[],
  options: SelectOptions,
  ctx: DriverContext,
): Promise<ComputeNode[]> {
  const wanted = names.filter(
    (n) =>
      (options.node === undefined || n === options.node) && !(options.exclude ?? []).includes(n),
  );
  const nodes = await loadNodes(deps, wanted, ctx);
  const flags = await nodeStateOf(deps).getMany(nodes.map((n) => n.node));
  const { passed, rejected } = filterNodes(
    nodes.map((node, i) => ({
      node,
      enabled: flags[i]!.enabled,
      maintenance: flags[i]!.maintenance,
    })),
    instance,
    flavor,
    options,
  );
  if (Object.keys(rejected).length > 0) {
    deps.logger.info('Nodes filtered out', { instance_id: instance.instance_id, rejected });
  }
  return weighNodes(passed, weightMultiplier(deps, options));
}

/** Tries each candidate's claim in order; a node that filled up meanwhile passes to the next. */
async function claimFirst(
  deps: ResourceDeps,
  instance: Instance,
  ordered: readonly ComputeNode[],
  claim: (node: ComputeNode) => Promise<Claim>,
): Promise<Placement> {
  for (const node of ordered) {
    try {
      const c = await claim(node);
      return { node: node.node, availability_zone: node.availability_zone, claim: c };
    } catch (e) {
      if (!isComputeResourcesUnavailable(e)) throw e;
      deps.logger.info('Claim refused, trying the next node', {
        instance_id: instance.instance_id,
        node: node.node,
        reasons: e.reasons,
      });
    }
  }
  throw new NoValidHostError(NO_VALID_HOST_REASON);
}

/**
 * Chooses a node for a build or unshelve and claims the instance's resources on it. A command
 * that already holds a claim for the instance (a redelivered build) gets it back, renewed.
 */
export async function selectAndClaim(
  deps: ResourceDeps,
  instance: Instance,
  options: SelectOptions = {},
): Promise<Placement> {
  const ctx = contextFor(instance, options);
  const flavor = options.flavor ?? instance.flavor;
  const names = await deps.driver.getAvailableNodes(ctx);
  const held = await nodeStoreOf(deps).getClaims(
    names.map((node) => ({ node, instance_id: instance.instance_id, kind: ClaimKind.INSTANCE })),
  );
  const excluded = options.exclude ?? [];
  const kept = held.filter((c) => !excluded.includes(c.node));
  const mine = kept.find((c) => c.node === instance.node) ?? kept[0];
  if (mine) {
    const [node] = await loadNodes(deps, [mine.node], ctx);
    if (node) {
      const claim = await instanceClaim(deps, instance, node.node, { flavor });
      return { node: node.node, availability_zone: node.availability_zone, claim };
    }
  }
  const ordered = await candidates(deps, instance, flavor, names, options, ctx);
  return claimFirst(deps, instance, ordered, (node) =>
    instanceClaim(deps, instance, node.node, { flavor }),
  );
}

export interface MoveSelectOptions extends Omit<SelectOptions, 'flavor' | 'availability_zone'> {
  /** The driver can move an instance onto its own node (supports_migrate_to_same_host). */
  allowSameNode?: boolean;
}

/**
 * Chooses a destination for a resize or cold migration and takes the move claim there (the
 * source's usage is held under the migration). The destination stays in the instance's
 * availability zone. A command that already holds the move claim gets it back.
 */
export async function selectAndMoveClaim(
  deps: ResourceDeps,
  instance: Instance,
  move: Pick<MoveRequest, 'id' | 'new_flavor'>,
  options: MoveSelectOptions = {},
): Promise<Placement> {
  const source = instance.node;
  if (!source) throw new NoValidHostError(`Instance ${instance.instance_id} has no node.`);
  const ctx = contextFor(instance, options);
  const names = await deps.driver.getAvailableNodes(ctx);
  const held = await nodeStoreOf(deps).getClaims(
    names.map((node) => ({ node, instance_id: instance.instance_id, kind: ClaimKind.MOVE_DEST })),
  );
  const request = (dest: string): MoveRequest => ({
    id: move.id,
    instance_id: instance.instance_id,
    source_node: source,
    dest_node: dest,
    new_flavor: move.new_flavor,
  });
  const mine = held.find((c) => c.migration_id === move.id);
  if (mine) {
    const [node] = await loadNodes(deps, [mine.node], ctx);
    if (node) {
      const claim = await moveClaim(deps, instance, request(node.node));
      return { node: node.node, availability_zone: node.availability_zone, claim };
    }
  }
  const ordered = await candidates(
    deps,
    instance,
    move.new_flavor,
    names,
    {
      ...options,
      exclude: [...(options.exclude ?? []), ...(options.allowSameNode ? [] : [source])],
      ...(instance.availability_zone ? { availability_zone: instance.availability_zone } : {}),
    },
    ctx,
  );
  return claimFirst(deps, instance, ordered, (node) =>
    moveClaim(deps, instance, request(node.node)),
  );
}
