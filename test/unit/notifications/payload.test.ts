import { describe, expect, it } from 'vitest';
import { TaskState, VmState } from '../../../lib/compute/states.ts';
import { instancePayload } from '../../../lib/notifications/payload.ts';
import { legacyInstancePayloadSchema } from '../../../lib/notifications/schemas.ts';
import { INSTANCE_ID, buildInstance } from './fixtures.ts';

// Nova's info_from_instance key order (nova/notifications/base.py).
const NOVA_KEYS = [
  'tenant_id',
  'user_id',
  'instance_id',
  'display_name',
  'reservation_id',
  'hostname',
  'instance_type',
  'instance_type_id',
  'instance_flavor_id',
  'architecture',
  'memory_mb',
  'disk_gb',
  'vcpus',
  'root_gb',
  'ephemeral_gb',
  'host',
  'node',
  'availability_zone',
  'cell_name',
  'created_at',
  'terminated_at',
  'deleted_at',
  'launched_at',
  'image_ref_url',
  'os_type',
  'kernel_id',
  'ramdisk_id',
  'state',
  'state_description',
  'progress',
  'access_ip_v4',
  'access_ip_v6',
  'image_meta',
  'metadata',
];

describe('instancePayload', () => {
  it("carries every CONTRACT field in Nova's order, with fixed_ips only when asked", () => {
    expect(Object.keys(instancePayload(buildInstance()))).toEqual(NOVA_KEYS);
    const withIps = Object.keys(instancePayload(buildInstance(), { includeFixedIps: true }));
    expect(withIps).toEqual([...NOVA_KEYS.slice(0, -2), 'fixed_ips', 'image_meta', 'metadata']);
  });

  it('maps the instance record to the legacy fields', () => {
    expect(instancePayload(buildInstance())).toEqual({
      tenant_id: 'project-a',
      user_id: 'user-a',
      instance_id: INSTANCE_ID,
      display_name: 'web-1',
      reservation_id: 'r-0001abcd',
      hostname: 'web-1',
      instance_type: 'm1.small',
      instance_type_id: 2,
      instance_flavor_id: '2',
      architecture: 'x86_64',
      memory_mb: 2048,
      disk_gb: 25,
      vcpus: 1,
      root_gb: 20,
      ephemeral_gb: 5,
      host: 'stratus',
      node: 'fake-node-1',
      availability_zone: 'nova',
      cell_name: '',
      created_at: '2024-03-10 09:00:00.000000',
      terminated_at: '',
      deleted_at: '',
      launched_at: '2024-03-10 09:00:42.123000',
      image_ref_url: '155d900f-4e14-4e4c-a73d-069cbf4541e6',
      os_type: 'linux',
      kernel_id: '',
      ramdisk_id: '',
      state: 'active',
      state_description: '',
      progress: '',
      access_ip_v4: null,
      access_ip_v6: null,
      image_meta: { min_disk: '20', container_format: 'bare' },
      metadata: { role: 'web' },
    });
  });

  it('reports task_state, progress and set times as Nova does', () => {
    const p = instancePayload(
      buildInstance({
        vm_state: VmState.DELETED,
        task_state: TaskState.DELETING,
        progress: 42,
        terminated_at: '2024-03-11T00:00:00Z',
        deleted_at: '2024-03-11T00:00:01.5Z',
        access_ip_v4: '203.0.113.7',
      }),
    );
    expect(p.state).toBe('deleted');
    expect(p.state_description).toBe('deleting');
    expect(p.progress).toBe(42);
    expect(p.terminated_at).toBe('2024-03-11 00:00:00.000000');
    expect(p.deleted_at).toBe('2024-03-11 00:00:01.500000');
    expect(p.access_ip_v4).toBe('203.0.113.7');
  });

  it('keeps unset location fields null, as Nova does', () => {
    const p = instancePayload(
      buildInstance({ host: null, node: null, availability_zone: null, launched_at: null }),
    );
    expect(p.host).toBeNull();
    expect(p.node).toBeNull();
    expect(p.availability_zone).toBeNull();
    expect(p.launched_at).toBe('');
  });

  it('lists every fixed IP of every port with its network label and the VIF MAC', () => {
    const instance = buildInstance();
    instance.ports.push({
      port_id: 'port-2',
      network_id: 'net-2',
      mac: 'fa:16:3e:00:00:02',
      fixed_ips: [
        {
          address: '192.168.1.9',
          version: 4,
          label: 'storage',
          vif_mac: 'fa:16:3e:00:00:02',
          type: 'fixed',
          floating_ips: [],
          meta: {},
        },
      ],
    });
    const { fixed_ips } = instancePayload(instance, { includeFixedIps: true });
    expect(fixed_ips).toEqual([
      {
        address: '10.0.0.5',
        floating_ips: ['172.24.4.10'],
        label: 'private',
        meta: {},
        type: 'fixed',
        version: 4,
        vif_mac: 'fa:16:3e:00:00:01',
      },
      {
        address: 'fd00::5',
        floating_ips: [],
        label: 'private',
        meta: { dhcp_server: 'fd00::1' },
        type: 'fixed',
        version: 6,
        vif_mac: 'fa:16:3e:00:00:01',
      },
      {
        address: '192.168.1.9',
        floating_ips: [],
        label: 'storage',
        meta: {},
        type: 'fixed',
        version: 4,
        vif_mac: 'fa:16:3e:00:00:02',
      },
    ]);
    expect(
      instancePayload(buildInstance({ ports: [] }), { includeFixedIps: true }).fixed_ips,
    ).toEqual([]);
  });

  it('copies metadata, so a later change to the instance does not change a built payload', () => {
    const instance = buildInstance();
    const p = instancePayload(instance, { includeFixedIps: true });
    instance.metadata.role = 'db';
    instance.image_meta.min_disk = '99';
    instance.ports[0]!.fixed_ips[0]!.floating_ips.push('172.24.4.11');
    expect(p.metadata.role).toBe('web');
    expect(p.image_meta.min_disk).toBe('20');
    expect(p.fixed_ips![0]!.floating_ips).toEqual(['172.24.4.10']);
  });

  it('satisfies the published schema', () => {
    expect(() =>
      legacyInstancePayloadSchema.parse(
        instancePayload(buildInstance(), { includeFixedIps: true }),
      ),
    ).not.toThrow();
  });
});
