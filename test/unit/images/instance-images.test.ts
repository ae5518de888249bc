import { describe, expect, it } from 'vitest';
import type { Instance } from '../../../lib/compute/instance.ts';
import type { Image } from '../../../lib/images/image-store.ts';
import {
  backupsBeyondRotation,
  imageIdForCommand,
  imageMetaFrom,
  instanceImage,
  isVolumeBacked,
  withoutShelvedKeys,
} from '../../../lib/images/instance-images.ts';

function instance(overrides: Partial<Instance> = {}): Instance {
  return {
    instance_id: '11111111-1111-4111-8111-111111111111',
    project_id: 'project-1',
    user_id: 'user-1',
    display_name: 'web',
    hostname: 'web',
    reservation_id: 'r-1',
    flavor: {
      name: 'm1.small',
      flavorid: '2',
      id: 2,
      vcpus: 1,
      memory_mb: 2048,
      root_gb: 20,
      ephemeral_gb: 0,
    },
    image_ref: 'base-image',
    image_meta: {},
    system_metadata: {},
    metadata: {},
    key_name: null,
    security_groups: [],
    ports: [],
    block_device_mapping: [],
    vm_state: 'active',
    task_state: null,
    power_state: 1,
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
    created_at: '2026-03-01T00:00:00.000Z',
    updated_at: '2026-03-01T00:00:00.000Z',
    launched_at: '2026-03-01T00:00:00.000Z',
    terminated_at: null,
    deleted_at: null,
    deleted: false,
    version: 1,
    ...overrides,
  };
}

const image = (id: string): Image => ({
  id,
  name: id,
  status: 'active',
  owner: 'p',
  min_ram: 0,
  min_disk: 0,
  properties: {},
  created_at: '2026-03-01T00:00:00.000Z',
  updated_at: '2026-03-01T00:00:00.000Z',
  deleted_at: null,
});

describe('instanceImage (Nova create_image)', () => {
  it("carries Nova's properties, the base image and the flavor's disk", () => {
    const made = instanceImage(instance(), {
      id: 'img-1',
      name: 'nightly',
      imageType: 'backup',
      userId: 'user-2',
      extraProperties: { backup_type: 'daily' },
      now: new Date('2026-03-02T00:00:00.000Z'),
    });
    expect(made).toEqual({
      id: 'img-1',
      name: 'nightly',
      owner: 'project-1',
      min_ram: 0,
      min_disk: 20,
      properties: {
        base_image_ref: 'base-image',
        instance_uuid: '11111111-1111-4111-8111-111111111111',
        user_id: 'user-2',
        image_type: 'backup',
        backup_type: 'daily',
      },
      created_at: '2026-03-02T00:00:00.000Z',
    });
  });

  it('keeps the lineage: a snapshot of an instance booted from a snapshot names the first base', () => {
    const made = instanceImage(
      instance({
        image_ref: 'snap-1',
        image_meta: { base_image_ref: 'base-image', image_type: 'snapshot', os_distro: 'ubuntu' },
      }),
      { id: 'snap-2', name: 's', imageType: 'snapshot', userId: 'u', now: new Date() },
    );
    expect(made.properties).toMatchObject({
      base_image_ref: 'base-image',
      os_distro: 'ubuntu',
      image_type: 'snapshot',
    });
  });
});

describe('backupsBeyondRotation (Nova _rotate_backups)', () => {
  const newestFirst = [image('d'), image('c'), image('b'), image('a')];
  it('keeps the newest `rotation` backups and deletes the rest', () => {
    expect(backupsBeyondRotation(newestFirst, 2).map((i) => i.id)).toEqual(['b', 'a']);
    expect(backupsBeyondRotation(newestFirst, 4)).toEqual([]);
    expect(backupsBeyondRotation(newestFirst, 9)).toEqual([]);
  });
  it('rotation 0 deletes every backup, the newest included', () => {
    expect(backupsBeyondRotation(newestFirst, 0).map((i) => i.id)).toEqual(['d', 'c', 'b', 'a']);
  });
});

describe('isVolumeBacked (Nova is_volume_backed_instance)', () => {
  it('is true without an image or with a root volume, false otherwise', () => {
    expect(isVolumeBacked(instance())).toBe(false);
    expect(isVolumeBacked(instance({ image_ref: '' }))).toBe(true);
    const bdm = { volume_id: 'v', device_name: null, delete_on_termination: false };
    expect(isVolumeBacked(instance({ block_device_mapping: [{ ...bdm, boot_index: 0 }] }))).toBe(
      true,
    );
    expect(isVolumeBacked(instance({ block_device_mapping: [{ ...bdm, boot_index: null }] }))).toBe(
      false,
    );
  });
});

describe('helpers', () => {
  it('derives one image id per command', () => {
    expect(imageIdForCommand('cmd-1')).toBe(imageIdForCommand('cmd-1'));
    expect(imageIdForCommand('cmd-1')).not.toBe(imageIdForCommand('cmd-2'));
    expect(imageIdForCommand('cmd-1')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('removes exactly the shelved_* keys', () => {
    expect(
      withoutShelvedKeys({
        shelved_at: 'x',
        shelved_image_id: 'y',
        shelved_host: 'z',
        old_vm_state: 'active',
      }),
    ).toEqual({ old_vm_state: 'active' });
  });

  it('takes image metadata from a known image, nothing from an unknown one', () => {
    expect(imageMetaFrom(null)).toEqual({});
    expect(
      imageMetaFrom({ ...image('i'), min_disk: 20, properties: { base_image_ref: 'b' } }),
    ).toEqual({ base_image_ref: 'b', min_ram: '0', min_disk: '20' });
  });
});
