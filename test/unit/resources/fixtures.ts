// Builders for the resource tracker's tests: a driver that reports chosen nodes, the in-memory
// stores, and instances. The integration tests use the same builders with the DynamoDB stores.

import type { Instance, InstanceFlavor } from '../../../lib/compute/instance.ts';
import { PowerState, TaskState, VmState } from '../../../lib/compute/states.ts';
import { loadConfig } from '../../../lib/config.ts';
import type { ResourceConfig, ResourceDeps } from '../../../lib/resources/deps.ts';
import { InMemoryNodeStore } from '../../../lib/resources/memory-node-store.ts';
import type { NodeStore } from '../../../lib/resources/node-store.ts';
import { InMemoryStateStore } from '../../../lib/store/memory-state-store.ts';
import { InMemoryMigrationStore, type MigrationStore } from '../../../lib/store/migration-store.ts';
import {
  InMemoryNodeStateStore,
  type NodeStateStore,
} from '../../../lib/store/node-state-store.ts';
import type { StateStore } from '../../../lib/store/state-store.ts';
import type { NodeResources } from '../../../lib/virt/driver.ts';

export const T0 = new Date('2026-11-22T10:00:00.000Z');

export interface NodeSpec {
  node: string;
  vcpus: number;
  memory_mb: number;
  local_gb: number;
  availability_zone?: string;
  instance_type_family?: string;
  /** What the driver says is used (the fake driver's guests). */
  used?: { vcpus: number; memory_mb: number; local_gb: number };
}

export const flavor = (
  name: string,
  vcpus: number,
  memory_mb: number,
  root_gb: number,
  ephemeral_gb = 0,
): InstanceFlavor => ({ name, flavorid: name, id: 1, vcpus, memory_mb, root_gb, ephemeral_gb });

export const SMALL = flavor('m1.small', 1, 2048, 20);
export const MEDIUM = flavor('m1.medium', 2, 4096, 40);

/** A driver with exactly the ComputeDriver methods the tracker calls. */
export class StubDriver {
  readonly name = 'fake';
  specs: NodeSpec[];
  constructor(specs: NodeSpec[]) {
    this.specs = specs;
  }
  async getAvailableNodes(): Promise<string[]> {
    return this.specs.map((s) => s.node);
  }
  async getAvailableResource(_ctx: unknown, nodename: string): Promise<NodeResources | null> {
    const s = this.specs.find((x) => x.node === nodename);
    if (!s) return null;
    return {
      vcpus: s.vcpus,
      memory_mb: s.memory_mb,
      local_gb: s.local_gb,
      vcpus_used: s.used?.vcpus ?? 0,
      memory_mb_used: s.used?.memory_mb ?? 0,
      local_gb_used: s.used?.local_gb ?? 0,
      cpu_info: '{}',
      numa_topology: null,
      hypervisor_type: 'fake',
      hypervisor_version: 1000,
      hypervisor_hostname: s.node,
      availability_zone: s.availability_zone ?? 'nova',
      supported_instances: [['x86_64', 'fake', 'hvm']],
      ...(s.instance_type_family ? { instance_type_family: s.instance_type_family } : {}),
    } as NodeResources;
  }
}

export function testConfig(overrides: Partial<ResourceConfig> = {}): ResourceConfig {
  const base = loadConfig({});
  return {
    cpu_allocation_ratio: base.cpu_allocation_ratio,
    ram_allocation_ratio: base.ram_allocation_ratio,
    disk_allocation_ratio: base.disk_allocation_ratio,
    reserved_host_cpus: base.reserved_host_cpus,
    reserved_host_memory_mb: base.reserved_host_memory_mb,
    reserved_host_disk_mb: base.reserved_host_disk_mb,
    tables: base.tables,
    ...overrides,
  };
}

export interface TestDeps extends ResourceDeps {
  driver: StubDriver;
  store: StateStore;
  nodes: NodeStore;
  nodeState: NodeStateStore;
  migrations: MigrationStore;
  logs: { level: string; message: string; extra: Record<string, unknown>[] }[];
  setNow(d: Date): void;
}

export function makeDeps(
  specs: NodeSpec[],
  options: {
    config?: Partial<ResourceConfig>;
    store?: StateStore;
    nodes?: NodeStore;
    nodeState?: NodeStateStore;
    migrations?: MigrationStore;
  } = {},
): TestDeps {
  let now = T0;
  const store = options.store ?? new InMemoryStateStore();
  const logs: TestDeps['logs'] = [];
  const log =
    (level: string) =>
    (message: string, ...extra: Record<string, unknown>[]) =>
      logs.push({ level, message, extra });
  return {
    config: testConfig(options.config),
    driver: new StubDriver(specs),
    store,
    nodes: options.nodes ?? new InMemoryNodeStore({ instances: store }),
    nodeState: options.nodeState ?? new InMemoryNodeStateStore(),
    migrations: options.migrations ?? new InMemoryMigrationStore(),
    clock: () => now,
    logger: { info: log('info'), warn: log('warn'), error: log('error') },
    logs,
    setNow(d: Date) {
      now = d;
    },
  };
}

let counter = 0;

export function makeInstance(overrides: Partial<Instance> = {}): Instance {
  counter += 1;
  const id = `10000000-0000-4000-8000-${String(counter).padStart(12, '0')}`;
  return {
    instance_id: id,
    project_id: 'project-a',
    user_id: 'user-a',
    display_name: `vm-${counter}`,
    hostname: `vm-${counter}`,
    reservation_id: 'r-1',
    flavor: SMALL,
    image_ref: 'image-1',
    image_meta: {},
    system_metadata: {},
    metadata: {},
    key_name: null,
    security_groups: [],
    ports: [],
    block_device_mapping: [],
    vm_state: VmState.BUILDING,
    task_state: TaskState.SCHEDULING,
    power_state: PowerState.NOSTATE,
    task_owner: `cmd-${counter}`,
    progress: 0,
    host: null,
    node: null,
    availability_zone: null,
    locked: false,
    locked_by: null,
    locked_reason: null,
    os_type: null,
    architecture: null,
    kernel_id: '',
    ramdisk_id: '',
    access_ip_v4: null,
    access_ip_v6: null,
    created_at: T0.toISOString(),
    updated_at: T0.toISOString(),
    launched_at: null,
    terminated_at: null,
    deleted_at: null,
    deleted: false,
    version: 1,
    ...overrides,
  };
}

/** Stores an instance record (with its building action) in the state store. */
export async function storeInstance(store: StateStore, instance: Instance): Promise<Instance> {
  const owner = instance.task_owner ?? `cmd-${instance.instance_id}`;
  await store.createInstance(
    instance,
    {
      subject: { kind: 'instance', id: instance.instance_id },
      command_id: owner,
      operation: 'build_and_run_instance',
      instance_id: instance.instance_id,
      request_id: `req-${owner}`,
      user_id: instance.user_id,
      project_id: instance.project_id,
      status: 'running',
      error_code: null,
      outcome: null,
      start_time: T0.toISOString(),
      finish_time: null,
      events: [],
      reply_to: null,
      reply_sent: false,
      progress: {},
    },
    [],
  );
  return instance;
}

/** Moves an instance onto a node (the build's write after its claim). */
export async function placeOn(store: StateStore, instance: Instance, node: string | null) {
  const res = await store.updateInstance({
    instanceId: instance.instance_id,
    action: {
      subject: { kind: 'instance', id: instance.instance_id },
      commandId: instance.task_owner ?? `cmd-${instance.instance_id}`,
    },
    expect: {},
    changes: { node, host: node ? 'stratus' : null },
    now: T0,
  });
  return res.new;
}
