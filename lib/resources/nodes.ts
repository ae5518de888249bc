// Compute nodes: discovered from the driver (get_available_nodes, get_available_resource), their
// inventory recorded with the configured allocation ratios and reserved amounts, and shown with
// their usage and claims.
//
// Nova's _init_compute_node copies the driver's totals onto the ComputeNode and sets the ratios
// on every audit; here that is `saveInventory`, conditional on the generation read, which it
// increments (Placement's provider generation), so a claim computed against old limits fails
// its condition and is planned again against the new ones. Usage is never written here.

import type { DriverContext, InventorySettings } from '../virt/driver.ts';
import { RESOURCE_CLASSES, inventoryFrom, limitsOf, sameInventory } from './capacity.ts';
import { type ResourceDeps, nodeStateOf, nodeStoreOf, trackerContext } from './deps.ts';
import { ClaimContentionError } from './errors.ts';
import type { NodeStore } from './node-store.ts';
import type { Claim, ComputeNode, NodeInventory, Resources } from './types.ts';
import { usageOf } from './types.ts';

const MAX_INVENTORY_ATTEMPTS = 8;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function inventorySettings(config: ResourceDeps['config']): InventorySettings {
  return {
    cpu_allocation_ratio: config.cpu_allocation_ratio,
    ram_allocation_ratio: config.ram_allocation_ratio,
    disk_allocation_ratio: config.disk_allocation_ratio,
    reserved_host_cpus: config.reserved_host_cpus,
    reserved_host_memory_mb: config.reserved_host_memory_mb,
    reserved_host_disk_mb: config.reserved_host_disk_mb,
  };
}

/**
 * Records `inventory` for a node: creates it, or replaces a different inventory and increments
 * the generation. Returns the node as stored afterwards.
 */
export async function saveNodeInventory(
  store: NodeStore,
  node: string,
  inventory: NodeInventory,
  now: Date,
): Promise<{ node: ComputeNode; changed: boolean }> {
  for (let attempt = 0; attempt < MAX_INVENTORY_ATTEMPTS; attempt++) {
    const current = await store.getNode(node);
    if (current && sameInventory(current, inventory)) return { node: current, changed: false };
    if (await store.saveInventory(node, inventory, current?.generation ?? null, now)) {
      const saved = await store.getNode(node);
      if (saved) return { node: saved, changed: true };
    }
    await sleep(Math.random() * Math.min(200, 10 * 2 ** attempt));
  }
  throw new ClaimContentionError(`Inventory of node ${node}`, MAX_INVENTORY_ATTEMPTS);
}

/** Reads one node's inventory from the driver and records it; null if the driver lost it. */
export async function refreshNode(
  deps: ResourceDeps,
  node: string,
  ctx: DriverContext,
): Promise<ComputeNode | null> {
  const resources = await deps.driver.getAvailableResource(ctx, node);
  if (!resources) return null;
  const inventory = inventoryFrom(resources, inventorySettings(deps.config));
  return (await saveNodeInventory(nodeStoreOf(deps), node, inventory, deps.clock())).node;
}

export interface RefreshResult {
  nodes: ComputeNode[];
  /** Nodes whose inventory was created or changed (their generation moved). */
  changed: string[];
}

/** Discovers the driver's nodes and records each one's inventory (Nova's _init_compute_node). */
export async function refreshNodes(
  deps: ResourceDeps,
  ctx: DriverContext = trackerContext('refresh', deps.clock()),
): Promise<RefreshResult> {
  const names = await deps.driver.getAvailableNodes(ctx, true);
  const store = nodeStoreOf(deps);
  const nodes: ComputeNode[] = [];
  const changed: string[] = [];
  for (const name of names) {
    const resources = await deps.driver.getAvailableResource(ctx, name);
    if (!resources) continue;
    const inventory = inventoryFrom(resources, inventorySettings(deps.config));
    const saved = await saveNodeInventory(store, name, inventory, deps.clock());
    nodes.push(saved.node);
    if (saved.changed) changed.push(name);
  }
  return { nodes, changed };
}

/**
 * The inventories of `names`, recording any node the store does not know yet (a node the
 * driver started reporting since the last audit can take instances at once).
 */
export async function loadNodes(
  deps: ResourceDeps,
  names: readonly string[],
  ctx: DriverContext,
): Promise<ComputeNode[]> {
  const known = await nodeStoreOf(deps).getNodes(names);
  const out: ComputeNode[] = [];
  for (const name of names) {
    const node = known.get(name) ?? (await refreshNode(deps, name, ctx));
    if (node) out.push(node);
  }
  return out;
}

export interface ResourceClassView {
  total: number;
  reserved: number;
  allocation_ratio: number;
  /** floor((total − reserved) × allocation_ratio): the most usage this class may reach. */
  limit: number;
  used: number;
  free: number;
}

export interface NodeDescription {
  node: string;
  availability_zone: string;
  enabled: boolean;
  maintenance: boolean;
  hypervisor_type: string;
  instance_type_family: string | null;
  generation: number;
  inventory: Record<'VCPU' | 'MEMORY_MB' | 'DISK_GB', ResourceClassView>;
  usage: Resources;
  limits: Resources;
  claims: Claim[];
}

export function describeNode(
  node: ComputeNode,
  flags: { enabled: boolean; maintenance: boolean },
  claims: Claim[],
): NodeDescription {
  const usage = usageOf(node);
  const limits = limitsOf(node);
  const inventory = Object.fromEntries(
    RESOURCE_CLASSES.map((rc) => [
      rc.cls,
      {
        total: node[rc.amount],
        reserved: node[rc.reserved],
        allocation_ratio: node[rc.ratio],
        limit: limits[rc.amount],
        used: usage[rc.amount],
        free: limits[rc.amount] - usage[rc.amount],
      },
    ]),
  ) as NodeDescription['inventory'];
  return {
    node: node.node,
    availability_zone: node.availability_zone,
    enabled: flags.enabled,
    maintenance: flags.maintenance,
    hypervisor_type: node.hypervisor_type,
    instance_type_family: node.instance_type_family,
    generation: node.generation,
    inventory,
    usage,
    limits,
    claims,
  };
}

/**
 * Each of the driver's nodes with its inventory, limits, usage, operator flags and claims:
 * plain data for the CLI (or an operation's result) to print.
 */
export async function describeNodes(
  deps: ResourceDeps,
  ctx: DriverContext = trackerContext('describe', deps.clock()),
): Promise<NodeDescription[]> {
  const names = await deps.driver.getAvailableNodes(ctx);
  const nodes = await loadNodes(deps, names, ctx);
  const flags = await nodeStateOf(deps).getMany(nodes.map((n) => n.node));
  const store = nodeStoreOf(deps);
  return Promise.all(
    nodes.map(async (n, i) => describeNode(n, flags[i]!, await store.listClaims(n.node))),
  );
}
