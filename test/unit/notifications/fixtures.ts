// A complete, realistic Instance for notification tests; override what a test is about.
import type { Instance } from '../../../lib/compute/instance.ts';
import { PowerState, VmState } from '../../../lib/compute/states.ts';

export const INSTANCE_ID = '3f2b7a3e-5c1d-4f7e-9a41-0b6c2d8e9f10';

export function buildInstance(overrides: Partial<Instance> = {}): Instance {
  return {
    instance_id: INSTANCE_ID,
    project_id: 'project-a',
    user_id: 'user-a',
    display_name: 'web-1',
    hostname: 'web-1',
    reservation_id: 'r-0001abcd',
    flavor: {
      name: 'm1.small',
      flavorid: '2',
      id: 2,
      vcpus: 1,
      memory_mb: 2048,
      root_gb: 20,
      ephemeral_gb: 5,
    },
    image_ref: '155d900f-4e14-4e4c-a73d-069cbf4541e6',
    image_meta: { min_disk: '20', container_format: 'bare' },
    system_metadata: {},
    metadata: { role: 'web' },
    key_name: 'ops-key',
    security_groups: ['default'],
    ports: [
      {
        port_id: 'port-1',
        network_id: 'net-1',
        mac: 'fa:16:3e:00:00:01',
        fixed_ips: [
          {
            address: '10.0.0.5',
            version: 4,
            label: 'private',
            vif_mac: 'fa:16:3e:00:00:01',
            type: 'fixed',
            floating_ips: ['172.24.4.10'],
            meta: {},
          },
          {
            address: 'fd00::5',
            version: 6,
            label: 'private',
            vif_mac: 'fa:16:3e:00:00:01',
            type: 'fixed',
            floating_ips: [],
            meta: { dhcp_server: 'fd00::1' },
          },
        ],
      },
    ],
    block_device_mapping: [],
    vm_state: VmState.ACTIVE,
    task_state: null,
    power_state: PowerState.RUNNING,
    task_owner: null,
    progress: 0,
    host: 'stratus',
    node: 'fake-node-1',
    availability_zone: 'nova',
    locked: false,
    locked_by: null,
    locked_reason: null,
    os_type: 'linux',
    architecture: 'x86_64',
    kernel_id: '',
    ramdisk_id: '',
    access_ip_v4: null,
    access_ip_v6: null,
    created_at: '2024-03-10T09:00:00.000Z',
    updated_at: '2024-03-10T09:01:00.000Z',
    launched_at: '2024-03-10T09:00:42.123Z',
    terminated_at: null,
    deleted_at: null,
    deleted: false,
    version: 3,
    ...overrides,
  };
}
