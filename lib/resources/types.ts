// The resource tracker's records: a compute node (inventory, allocation ratios, reserved amounts,
// usage) and the claims that make up its usage. Field names follow Nova's ComputeNode
// (nova-compute.md §4.4) where Nova has one; the rest follows Placement (§4.3, §4.5).
//
// Usage counts claims only, as Placement's usages do: the reserved amounts live in the
// inventory, so `usage == sum(claims)` is the invariant every write keeps and the audit checks.

/** The three resource classes Stratus tracks (Placement's VCPU, MEMORY_MB, DISK_GB). */
export interface Resources {
  vcpus: number;
  memory_mb: number;
  local_gb: number;
}

export const NO_RESOURCES: Readonly<Resources> = { vcpus: 0, memory_mb: 0, local_gb: 0 };

/** The inventory half of a node: what the driver reports and configuration decides. */
export interface NodeInventory {
  availability_zone: string;
  hypervisor_type: string;
  hypervisor_hostname: string;
  /** Dedicated Hosts serve one instance type family (e.g. `c5`); null when the node takes any. */
  instance_type_family: string | null;
  /** Totals from get_available_resource. */
  vcpus: number;
  memory_mb: number;
  local_gb: number;
  /** reserved_host_cpus, reserved_host_memory_mb, ceil(reserved_host_disk_mb / 1024). */
  reserved_vcpus: number;
  reserved_memory_mb: number;
  reserved_disk_gb: number;
  cpu_allocation_ratio: number;
  ram_allocation_ratio: number;
  disk_allocation_ratio: number;
}

/** A compute node as stored: pk `node#<name>`, sk `inventory`. */
export interface ComputeNode extends NodeInventory {
  node: string;
  /** Sum of the node's claims (reserved amounts not included). */
  vcpus_used: number;
  memory_mb_used: number;
  local_gb_used: number;
  /** How many claims the node holds (Nova's running_vms, counted from claims). */
  claim_count: number;
  /**
   * Incremented by every inventory change (Placement's provider generation for inventory);
   * a claim is conditional on the generation it computed its limits from.
   */
  generation: number;
  /** Incremented by every change to the node's claims: the audit's consistent-snapshot token. */
  usage_version: number;
  created_at: string;
  updated_at: string;
}

export const ClaimKind = {
  /** The instance's own usage on the node it runs on (build, unshelve, a confirmed move). */
  INSTANCE: 'instance',
  /** The instance's old usage, held at the source under a move until confirm or revert. */
  MOVE_SOURCE: 'move-source',
  /** The new usage on the destination of a move (resize, cold or live migration). */
  MOVE_DEST: 'move-dest',
} as const;
export type ClaimKind = (typeof ClaimKind)[keyof typeof ClaimKind];

/** Where a claim lives: pk `node#<node>`, sk `claim#<instance_id>#<kind>`. */
export interface ClaimKey {
  node: string;
  instance_id: string;
  kind: ClaimKind;
}

export interface Claim extends ClaimKey, Resources {
  /** Unique per claim item: a release or drop names the exact item it read. */
  claim_id: string;
  /** The migration a move claim belongs to; null for an instance claim. */
  migration_id: string | null;
  /** A move's two nodes (move claims only), so a revert or confirm needs nothing else. */
  source_node: string | null;
  dest_node: string | null;
  /** The flavor the amounts came from (for people reading the inventory). */
  flavor: string;
  /** The command that took the claim (the instance's task_owner), when known. */
  owner: string | null;
  created_at: string;
  /** Set again when an owner re-uses its claim (a redelivered build): the audit's grace clock. */
  updated_at: string;
}

/** Nova's NopClaim: rebuild on the same node claims nothing (nova-compute.md §4.2). */
export interface NopClaim {
  kind: 'nop';
  node: string | null;
  instance_id: string;
}

export function claimKeyOf(c: ClaimKey): ClaimKey {
  return { node: c.node, instance_id: c.instance_id, kind: c.kind };
}

export function resourcesOf(r: Resources): Resources {
  return { vcpus: r.vcpus, memory_mb: r.memory_mb, local_gb: r.local_gb };
}

export function addResources(a: Resources, b: Resources, sign = 1): Resources {
  return {
    vcpus: a.vcpus + sign * b.vcpus,
    memory_mb: a.memory_mb + sign * b.memory_mb,
    local_gb: a.local_gb + sign * b.local_gb,
  };
}

export function sumResources(items: readonly Resources[]): Resources {
  return items.reduce<Resources>((acc, r) => addResources(acc, r), { ...NO_RESOURCES });
}

export function isZero(r: Resources): boolean {
  return r.vcpus === 0 && r.memory_mb === 0 && r.local_gb === 0;
}

export function usageOf(node: ComputeNode): Resources {
  return { vcpus: node.vcpus_used, memory_mb: node.memory_mb_used, local_gb: node.local_gb_used };
}
