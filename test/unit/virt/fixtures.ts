// Shared builders for the virt tests: an Instance record, a driver context, a spawn request and
// a fake driver wired to in-memory ports.
import type { Instance } from '../../../lib/compute/instance.ts';
import { PowerState, VmState } from '../../../lib/compute/states.ts';
import type { FakeNode } from '../../../lib/config.ts';
import type { DriverContext, SpawnRequest } from '../../../lib/virt/driver.ts';
import { InMemoryLifecycleSink } from '../../../lib/virt/events.ts';
import { FakeDriver } from '../../../lib/virt/fake/driver.ts';
import { FaultPlan } from '../../../lib/virt/fake/faults.ts';
import {
  type FakeHypervisorStore,
  InMemoryFakeHypervisorStore,
} from '../../../lib/virt/fake/store.ts';

export const NODES: FakeNode[] = [
  { node: 'fake-node-1', vcpus: 16, memory_mb: 32768, local_gb: 500, availability_zone: 'nova' },
  { node: 'fake-node-2', vcpus: 8, memory_mb: 16384, local_gb: 200, availability_zone: 'az-2' },
];

export const FIXED_NOW = new Date('2026-03-01T12:00:00.000Z');

let counter = 0;

export function ctx(commandId = 'cmd-1'): DriverContext {
  return { commandId, requestId: `req-${commandId}` };
}

export function makeInstance(overrides: Partial<Instance> = {}): Instance {
  counter += 1;
  const id = `00000000-0000-4000-8000-${String(counter).padStart(12, '0')}`;
  return {
    instance_id: id,
    project_id: 'project-a',
    user_id: 'user-a',
    display_name: 'vm',
    hostname: 'vm',
    reservation_id: 'r-1',
    flavor: {
      name: 'm1.small',
      flavorid: '2',
      id: 2,
      vcpus: 2,
      memory_mb: 2048,
      root_gb: 20,
      ephemeral_gb: 5,
    },
    image_ref: 'image-1',
    image_meta: {},
    system_metadata: {},
    metadata: {},
    key_name: null,
    security_groups: [],
    ports: [],
    block_device_mapping: [],
    vm_state: VmState.BUILDING,
    task_state: null,
    power_state: PowerState.NOSTATE,
    task_owner: null,
    progress: 0,
    host: 'stratus',
    node: 'fake-node-1',
    availability_zone: 'nova',
    locked: false,
    locked_by: null,
    locked_reason: null,
    os_type: null,
    architecture: null,
    kernel_id: '',
    ramdisk_id: '',
    access_ip_v4: null,
    access_ip_v6: null,
    created_at: FIXED_NOW.toISOString(),
    updated_at: FIXED_NOW.toISOString(),
    launched_at: null,
    terminated_at: null,
    deleted_at: null,
    deleted: false,
    version: 1,
    ...overrides,
  };
}

export function spawnRequest(overrides: Partial<SpawnRequest> = {}): SpawnRequest {
  return {
    imageRef: 'image-1',
    imageMeta: {},
    injectedFiles: [],
    adminPassword: null,
    userData: null,
    requestedNetworks: [],
    blockDeviceMapping: [],
    powerOn: true,
    ...overrides,
  };
}

export interface FakeSetup {
  driver: FakeDriver;
  store: FakeHypervisorStore;
  sink: InMemoryLifecycleSink;
  faults: FaultPlan;
  clock: { now: Date };
}

export function fakeSetup(
  options: { async?: boolean; store?: FakeHypervisorStore; nodes?: FakeNode[] } = {},
): FakeSetup {
  const store = options.store ?? new InMemoryFakeHypervisorStore();
  const sink = new InMemoryLifecycleSink();
  const faults = new FaultPlan();
  const clock = { now: FIXED_NOW };
  const driver = new FakeDriver({
    nodes: options.nodes ?? NODES,
    store,
    sink,
    async: options.async ?? false,
    now: () => clock.now,
    faults,
    host: 'stratus',
  });
  return { driver, store, sink, faults, clock };
}
