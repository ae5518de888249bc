// What a node can hold and what it holds (get_available_resource, update_provider_tree). A
// pool's capacity is configured, read from the vCPU quota, or counted in whole *.metal servers,
// and lowered to a vCPU limit EC2 reported since; a Dedicated Host's comes from the host.
// Usage is read from the usage tags of the deployment's instances on the node.

import type { InventorySettings, NodeInventory, NodeResources } from '../driver.ts';
import { DriverError } from '../errors.ts';
import type { Ec2Context } from './calls.ts';
import { describeInstances } from './guests.ts';
import { type InstanceTypeCache, instanceTypeInfo } from './instance-types.ts';
import { nodeRef } from './nodes.ts';
import type { Ec2Pool } from './settings.ts';
import { TAG, instanceFilters, tagValue } from './tags.ts';

export const EC2_HYPERVISOR_TYPE = 'ec2';
export const EC2_HYPERVISOR_VERSION = 1000;

/** The driver's state that capacity depends on besides the settings (see Ec2Driver). */
export interface CapacitySources {
  instanceTypes: InstanceTypeCache;
  observedVcpuLimits: ReadonlyMap<string, number>;
  quotaReader: ((quotaCode: string) => Promise<number>) | undefined;
}

export type Ec2NodeResources = NodeResources & { instance_type_family: string | null };

function parseUsage(value: string | undefined): {
  vcpus: number;
  memory_mb: number;
  disk_gb: number;
} {
  const [vcpus, memory, disk] = (value ?? '').split('/').map(Number);
  const n = (x: number | undefined) => (x !== undefined && Number.isFinite(x) ? x : 0);
  return { vcpus: n(vcpus), memory_mb: n(memory), disk_gb: n(disk) };
}

/** What this deployment's live instances on `node` use, from their usage tags. */
async function usedOn(ec2: Ec2Context, node: string) {
  const raw = await describeInstances(ec2, instanceFilters(ec2.deployment, { node }));
  return raw.reduce(
    (sum, r) => {
      const u = parseUsage(tagValue(r.Tags, TAG.usage));
      return {
        vcpus: sum.vcpus + u.vcpus,
        memory_mb: sum.memory_mb + u.memory_mb,
        disk_gb: sum.disk_gb + u.disk_gb,
      };
    },
    { vcpus: 0, memory_mb: 0, disk_gb: 0 },
  );
}

/** A pool's totals: configured vCPUs, the vCPU quota, or whole metal servers. */
async function poolTotals(
  ec2: Ec2Context,
  sources: CapacitySources,
  pool: Ec2Pool,
): Promise<{ vcpus: number; memory_mb: number; family: string | null }> {
  if (pool.metal !== undefined) {
    const type = await instanceTypeInfo(ec2, sources.instanceTypes, pool.metal.instance_type);
    if (type === null) {
      throw new DriverError(
        'VirtDriverNotReady',
        `Instance type ${pool.metal.instance_type} of node ${pool.node} is unknown to EC2.`,
      );
    }
    return {
      vcpus: type.vcpus * pool.metal.count,
      memory_mb: pool.memory_mb ?? type.memory_mb * pool.metal.count,
      family: pool.metal.instance_type.split('.')[0] ?? null,
    };
  }
  let vcpus: number;
  if (pool.vcpus === 'quota') {
    if (sources.quotaReader === undefined) {
      throw new DriverError(
        'VirtDriverNotReady',
        `Node ${pool.node} takes its vCPUs from quota ${pool.quota_code}, but no quota reader is configured.`,
      );
    }
    vcpus = await sources.quotaReader(pool.quota_code);
  } else {
    vcpus = pool.vcpus ?? 0;
  }
  return { vcpus, memory_mb: pool.memory_mb ?? vcpus * pool.memory_mb_per_vcpu, family: null };
}

/**
 * A node's capacity and usage. Pool: as configured (or the vCPU quota, or metal servers),
 * lowered to a vCPU limit EC2 reported since; Dedicated Host: its vCPUs, memory from its
 * instance type, and its instance family (the scheduler places only that family there).
 * Usage is what this deployment's instances on the node count (their usage tags).
 */
export async function nodeResources(
  ec2: Ec2Context,
  sources: CapacitySources,
  nodename: string,
): Promise<Ec2NodeResources | null> {
  const ref = await nodeRef(ec2, nodename);
  if (ref === null) return null;
  let vcpus: number;
  let memoryMb: number;
  let localGb: number;
  let family: string | null;
  let zone: string;
  if (ref.kind === 'pool') {
    const totals = await poolTotals(ec2, sources, ref.pool);
    const limit = sources.observedVcpuLimits.get(nodename);
    vcpus = limit === undefined ? totals.vcpus : Math.min(totals.vcpus, limit);
    memoryMb = totals.memory_mb;
    localGb = ref.pool.local_gb;
    family = totals.family;
    zone = ref.pool.availability_zone;
  } else {
    const { host } = ref;
    const sample = host.instanceType ?? (host.family ? `${host.family}.metal` : null);
    const type =
      sample === null ? null : await instanceTypeInfo(ec2, sources.instanceTypes, sample);
    const perVcpu = type && type.vcpus > 0 ? type.memory_mb / type.vcpus : 4096;
    vcpus = host.totalVcpus;
    memoryMb = Math.floor(vcpus * perVcpu);
    localGb = 1_048_576;
    family = host.family;
    zone = host.availabilityZone;
  }
  const used = await usedOn(ec2, nodename);
  return {
    vcpus,
    memory_mb: memoryMb,
    local_gb: localGb,
    vcpus_used: used.vcpus,
    memory_mb_used: used.memory_mb,
    local_gb_used: used.disk_gb,
    cpu_info: JSON.stringify({
      arch: 'x86_64',
      vendor: 'aws',
      model: family ?? 'ec2',
      features: [],
    }),
    numa_topology: null,
    hypervisor_type: EC2_HYPERVISOR_TYPE,
    hypervisor_version: EC2_HYPERVISOR_VERSION,
    hypervisor_hostname: nodename,
    availability_zone: zone,
    supported_instances: [
      ['x86_64', EC2_HYPERVISOR_TYPE, 'hvm'],
      ['aarch64', EC2_HYPERVISOR_TYPE, 'hvm'],
    ],
    instance_type_family: family,
  };
}

/** Placement inventory records for a node's resources, with the operator's reservations. */
export function nodeInventory(
  resources: NodeResources,
  settings: InventorySettings,
): NodeInventory {
  const record = (total: number, reserved: number, allocationRatio: number) => ({
    total,
    reserved,
    min_unit: 1,
    max_unit: total,
    step_size: 1,
    allocation_ratio: allocationRatio,
  });
  return {
    VCPU: record(resources.vcpus, settings.reserved_host_cpus, settings.cpu_allocation_ratio),
    MEMORY_MB: record(
      resources.memory_mb,
      settings.reserved_host_memory_mb,
      settings.ram_allocation_ratio,
    ),
    DISK_GB: record(
      resources.local_gb,
      Math.ceil(settings.reserved_host_disk_mb / 1024),
      settings.disk_allocation_ratio,
    ),
  };
}
