// Nova's capacity formula: capacity = (total − reserved) × ratio, a request fails when
// used + n > capacity or n > total. Boundaries: exactly at the limit fits, one more does not.

import { describe, expect, it } from 'vitest';
import {
  RESOURCE_CLASSES,
  claimResources,
  exceedsCapacity,
  exceedsTotal,
  insufficient,
  inventoryFrom,
  limitsOf,
  maxUsageBeforeClaim,
} from '../../../lib/resources/capacity.ts';
import type { NodeInventory } from '../../../lib/resources/types.ts';
import { MEDIUM, SMALL, StubDriver, makeInstance } from './fixtures.ts';

function inventory(overrides: Partial<NodeInventory> = {}): NodeInventory {
  return {
    availability_zone: 'nova',
    hypervisor_type: 'fake',
    hypervisor_hostname: 'n',
    instance_type_family: null,
    vcpus: 16,
    memory_mb: 32768,
    local_gb: 500,
    reserved_vcpus: 0,
    reserved_memory_mb: 512,
    reserved_disk_gb: 0,
    cpu_allocation_ratio: 4.0,
    ram_allocation_ratio: 1.0,
    disk_allocation_ratio: 1.0,
    ...overrides,
  };
}

const zero = { vcpus: 0, memory_mb: 0, local_gb: 0 };

describe('limits', () => {
  it('are (total − reserved) × allocation_ratio per class, with Nova’s defaults', () => {
    expect(limitsOf(inventory())).toEqual({ vcpus: 64, memory_mb: 32256, local_gb: 500 });
  });

  it('follow every ratio and reserved amount', () => {
    const inv = inventory({
      reserved_vcpus: 2,
      reserved_memory_mb: 1024,
      reserved_disk_gb: 10,
      cpu_allocation_ratio: 16.0,
      ram_allocation_ratio: 1.5,
      disk_allocation_ratio: 2.0,
    });
    expect(limitsOf(inv)).toEqual({
      vcpus: (16 - 2) * 16,
      memory_mb: (32768 - 1024) * 1.5,
      local_gb: (500 - 10) * 2,
    });
  });

  it('round a fractional capacity down, as an integral usage compares with Placement’s float', () => {
    // (10 − 0) × 1.15 = 11.499999999999998: usage 11 fits, 12 does not.
    const inv = inventory({ vcpus: 10, cpu_allocation_ratio: 1.15 });
    expect(limitsOf(inv).vcpus).toBe(11);
    expect(exceedsCapacity(inv, { ...zero, vcpus: 10 }, { ...zero, vcpus: 1 })).toEqual([]);
    expect(exceedsCapacity(inv, { ...zero, vcpus: 11 }, { ...zero, vcpus: 1 })).toHaveLength(1);
  });

  it('record reserved disk in whole GB, rounded up (Placement’s DISK_GB reserved)', () => {
    const driver = new StubDriver([{ node: 'n', vcpus: 4, memory_mb: 4096, local_gb: 100 }]);
    return driver.getAvailableResource(null, 'n').then((r) => {
      const inv = inventoryFrom(r!, {
        cpu_allocation_ratio: 4,
        ram_allocation_ratio: 1,
        disk_allocation_ratio: 1,
        reserved_host_cpus: 1,
        reserved_host_memory_mb: 512,
        reserved_host_disk_mb: 1025,
      });
      expect(inv).toMatchObject({
        reserved_vcpus: 1,
        reserved_memory_mb: 512,
        reserved_disk_gb: 2,
      });
    });
  });
});

describe('boundaries', () => {
  for (const rc of RESOURCE_CLASSES) {
    it(`${rc.cls}: exactly at the limit fits, one more does not`, () => {
      const inv = inventory({
        reserved_vcpus: 3,
        reserved_memory_mb: 700,
        reserved_disk_gb: 7,
        cpu_allocation_ratio: 2.5,
        ram_allocation_ratio: 1.25,
        disk_allocation_ratio: 1.5,
      });
      const limit = limitsOf(inv)[rc.amount];
      const usage = { ...zero, [rc.amount]: limit - 1 };
      expect(exceedsCapacity(inv, usage, { ...zero, [rc.amount]: 1 })).toEqual([]);
      const over = exceedsCapacity(inv, usage, { ...zero, [rc.amount]: 2 });
      expect(over).toHaveLength(1);
      expect(over[0]).toMatch(
        new RegExp(`^Free ${rc.label} 1\\.\\d\\d ${rc.unit} < requested 2 ${rc.unit}$`),
      );
      expect(maxUsageBeforeClaim(inv, { ...zero, [rc.amount]: 2 })).toEqual({
        [rc.amount]: limit - 2,
      });
    });
  }

  it('uses Nova’s message: "Free memory 1024.00 MB < requested 2048 MB"', () => {
    const inv = inventory({ memory_mb: 4096, reserved_memory_mb: 0 });
    expect(insufficient(inv, { ...zero, memory_mb: 3072 }, { ...zero, memory_mb: 2048 })).toEqual([
      'Free memory 1024.00 MB < requested 2048 MB',
    ]);
  });

  it('refuses an instance larger than the node even when the ratio would allow it (max_unit)', () => {
    const inv = inventory({ vcpus: 4, cpu_allocation_ratio: 16 });
    expect(exceedsTotal(inv, { ...zero, vcpus: 5 })).toEqual([
      'Requested vcpu 5 VCPU > total 4 VCPU (max_unit)',
    ]);
    expect(exceedsTotal(inv, { ...zero, vcpus: 4 })).toEqual([]);
  });

  it('never checks a class that is not requested', () => {
    const inv = inventory({ local_gb: 10, reserved_disk_gb: 20 });
    expect(insufficient(inv, zero, { vcpus: 1, memory_mb: 1, local_gb: 0 })).toEqual([]);
    expect(insufficient(inv, zero, { vcpus: 1, memory_mb: 1, local_gb: 1 })).toHaveLength(1);
  });
});

describe('claimResources', () => {
  it('claims vcpus, memory and root + ephemeral disk', () => {
    expect(claimResources(makeInstance(), { ...MEDIUM, ephemeral_gb: 5 })).toEqual({
      vcpus: 2,
      memory_mb: 4096,
      local_gb: 45,
    });
  });

  it('claims no root disk for a volume-backed instance (no image, a boot volume)', () => {
    const instance = makeInstance({
      image_ref: '',
      block_device_mapping: [
        { volume_id: 'v', device_name: '/dev/vda', boot_index: 0, delete_on_termination: true },
      ],
    });
    expect(claimResources(instance, SMALL)).toEqual({ vcpus: 1, memory_mb: 2048, local_gb: 0 });
  });
});
