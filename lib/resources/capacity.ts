// Nova's capacity arithmetic, in one place so the claim writes, the scheduler's filters, the
// in-memory twin and the tests all use the same formula (nova-compute.md §4.3):
//
//   capacity = (total − reserved) × allocation_ratio
//   an allocation of n fails if  used + n > capacity  or  n > total (max_unit)
//
// Usage is integral, so `used + n <= capacity` is exactly `used <= floor(capacity) − n`: that
// integer is what a claim's ConditionExpression compares the stored counter with. The product
// is the same IEEE double Placement computes, so the decision matches Placement's to the unit.

import type { Instance, InstanceFlavor } from '../compute/instance.ts';
import type { InventorySettings, NodeResources } from '../virt/driver.ts';
import type { NodeInventory, Resources } from './types.ts';

export interface ResourceClass {
  /** Placement's resource class name. */
  cls: 'VCPU' | 'MEMORY_MB' | 'DISK_GB';
  /** The field in Resources (and the node's total). */
  amount: keyof Resources;
  used: 'vcpus_used' | 'memory_mb_used' | 'local_gb_used';
  reserved: 'reserved_vcpus' | 'reserved_memory_mb' | 'reserved_disk_gb';
  ratio: 'cpu_allocation_ratio' | 'ram_allocation_ratio' | 'disk_allocation_ratio';
  /** Nova's words in "Free <label> <free> <unit> < requested <n> <unit>". */
  label: string;
  unit: string;
}

export const RESOURCE_CLASSES: readonly ResourceClass[] = [
  {
    cls: 'VCPU',
    amount: 'vcpus',
    used: 'vcpus_used',
    reserved: 'reserved_vcpus',
    ratio: 'cpu_allocation_ratio',
    label: 'vcpu',
    unit: 'VCPU',
  },
  {
    cls: 'MEMORY_MB',
    amount: 'memory_mb',
    used: 'memory_mb_used',
    reserved: 'reserved_memory_mb',
    ratio: 'ram_allocation_ratio',
    label: 'memory',
    unit: 'MB',
  },
  {
    cls: 'DISK_GB',
    amount: 'local_gb',
    used: 'local_gb_used',
    reserved: 'reserved_disk_gb',
    ratio: 'disk_allocation_ratio',
    label: 'disk',
    unit: 'GB',
  },
];

/** Placement's capacity of one class: (total − reserved) × allocation_ratio (a float). */
export function capacityOf(inv: NodeInventory, rc: ResourceClass): number {
  return (inv[rc.amount] - inv[rc.reserved]) * inv[rc.ratio];
}

/** The most usage one class may reach: floor(capacity) (negative when reserved > total). */
export function limitOf(inv: NodeInventory, rc: ResourceClass): number {
  return Math.floor(capacityOf(inv, rc));
}

export function limitsOf(inv: NodeInventory): Resources {
  const [v, m, d] = RESOURCE_CLASSES.map((rc) => limitOf(inv, rc)) as [number, number, number];
  return { vcpus: v, memory_mb: m, local_gb: d };
}

/**
 * Placement's max_unit (= total): an instance never overcommits against itself. Reasons why
 * `claim` is larger than the node, in Nova's words; empty when it is not.
 */
export function exceedsTotal(inv: NodeInventory, claim: Resources): string[] {
  const reasons: string[] = [];
  for (const rc of RESOURCE_CLASSES) {
    const n = claim[rc.amount];
    if (n > 0 && n > inv[rc.amount]) {
      reasons.push(
        `Requested ${rc.label} ${n} ${rc.unit} > total ${inv[rc.amount]} ${rc.unit} (max_unit)`,
      );
    }
  }
  return reasons;
}

/**
 * Why adding `delta` to `usage` breaks `used + n <= capacity` (empty when it fits), in Nova's
 * words ("Free vcpu 3.00 VCPU < requested 4 VCPU"). A class that does not grow is not checked,
 * as Placement checks requested classes only.
 */
export function exceedsCapacity(inv: NodeInventory, usage: Resources, delta: Resources): string[] {
  const reasons: string[] = [];
  for (const rc of RESOURCE_CLASSES) {
    const n = delta[rc.amount];
    if (n <= 0) continue;
    const capacity = capacityOf(inv, rc);
    if (usage[rc.amount] + n > capacity) {
      const free = capacity - usage[rc.amount];
      reasons.push(`Free ${rc.label} ${free.toFixed(2)} ${rc.unit} < requested ${n} ${rc.unit}`);
    }
  }
  return reasons;
}

/** Why `request` does not fit on a node whose usage is `usage` (empty when it fits). */
export function insufficient(inv: NodeInventory, usage: Resources, request: Resources): string[] {
  const tooBig = exceedsTotal(inv, request);
  return tooBig.length > 0 ? tooBig : exceedsCapacity(inv, usage, request);
}

/**
 * For each class a change adds to: the highest stored usage at which the change still fits
 * (`floor(capacity) − delta`). A claim's write is conditional on `<used> <= <this>`.
 */
export function maxUsageBeforeClaim(inv: NodeInventory, delta: Resources): Partial<Resources> {
  const out: Partial<Resources> = {};
  for (const rc of RESOURCE_CLASSES) {
    const n = delta[rc.amount];
    if (n > 0) out[rc.amount] = limitOf(inv, rc) - n;
  }
  return out;
}

/**
 * Nova's compute_utils.is_volume_backed_instance: no image and a boot volume. Its root disk is
 * the volume, so it claims no local disk for root.
 */
export function isVolumeBacked(instance: Pick<Instance, 'image_ref' | 'block_device_mapping'>) {
  return !instance.image_ref && instance.block_device_mapping.some((b) => b.boot_index === 0);
}

/**
 * What an instance of `flavor` uses on a node (Nova's _update_usage): vcpus, memory_mb and
 * root_gb + ephemeral_gb (root 0 when volume-backed). Stratus flavors carry no swap.
 */
export function claimResources(
  instance: Pick<Instance, 'image_ref' | 'block_device_mapping'>,
  flavor: InstanceFlavor,
): Resources {
  const root = isVolumeBacked(instance) ? 0 : flavor.root_gb;
  return { vcpus: flavor.vcpus, memory_mb: flavor.memory_mb, local_gb: root + flavor.ephemeral_gb };
}

/** The inventory of a node: the driver's totals, the configured ratios and reserved amounts. */
export function inventoryFrom(
  resources: NodeResources & { instance_type_family?: string | null },
  settings: InventorySettings,
): NodeInventory {
  return {
    availability_zone: resources.availability_zone,
    hypervisor_type: resources.hypervisor_type,
    hypervisor_hostname: resources.hypervisor_hostname,
    instance_type_family: resources.instance_type_family ?? null,
    vcpus: resources.vcpus,
    memory_mb: resources.memory_mb,
    local_gb: resources.local_gb,
    reserved_vcpus: settings.reserved_host_cpus,
    reserved_memory_mb: settings.reserved_host_memory_mb,
    // Placement's DISK_GB reserved: ceil(reserved_host_disk_mb / 1024) (nova-compute.md §4.3).
    reserved_disk_gb: Math.ceil(settings.reserved_host_disk_mb / 1024),
    cpu_allocation_ratio: settings.cpu_allocation_ratio,
    ram_allocation_ratio: settings.ram_allocation_ratio,
    disk_allocation_ratio: settings.disk_allocation_ratio,
  };
}

export const INVENTORY_FIELDS = [
  'availability_zone',
  'hypervisor_type',
  'hypervisor_hostname',
  'instance_type_family',
  'vcpus',
  'memory_mb',
  'local_gb',
  'reserved_vcpus',
  'reserved_memory_mb',
  'reserved_disk_gb',
  'cpu_allocation_ratio',
  'ram_allocation_ratio',
  'disk_allocation_ratio',
] as const satisfies readonly (keyof NodeInventory)[];

export function sameInventory(a: NodeInventory, b: NodeInventory): boolean {
  return INVENTORY_FIELDS.every((f) => a[f] === b[f]);
}
