// Instance records for the benches: complete, realistic, and cheap to make by the thousand.
import type { Instance } from '../lib/compute/instance.ts';
import { PowerState, TaskState, VmState } from '../lib/compute/states.ts';

/** A record as a build in progress leaves it (scheduling, no node); override what a bench needs. */
export function benchInstance(id: string, overrides: Partial<Instance> = {}): Instance {
  const now = new Date().toISOString();
  return {
    instance_id: id,
    project_id: 'bench',
    user_id: 'bench',
    display_name: id,
    hostname: id,
    reservation_id: 'r-bench',
    flavor: {
      name: 'm1.small',
      flavorid: '2',
      id: 2,
      vcpus: 1,
      memory_mb: 2048,
      root_gb: 20,
      ephemeral_gb: 0,
    },
    image_ref: 'image',
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
    task_owner: `cmd-${id}`,
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
    created_at: now,
    updated_at: now,
    launched_at: null,
    terminated_at: null,
    deleted_at: null,
    deleted: false,
    version: 1,
    ...overrides,
  };
}
