// Nova's get_device_name_for_instance and its block_device helpers, case by case (the property
// tests in device-names.property.test.ts cover the general rules).

import { describe, expect, it } from 'vitest';
import {
  DEFAULT_ROOT_DEV_NAME,
  DevicePathInUseError,
  InvalidDevicePathError,
  TooManyDiskDevicesError,
  deviceLetterIndex,
  generateDeviceLetter,
  getDeviceLetter,
  getDeviceNameForInstance,
  getNextDeviceName,
  instanceBlockMapping,
  matchDevice,
  rootDeviceNameOf,
} from '../../../lib/compute/device-names.ts';
import type { BlockDeviceMapping } from '../../../lib/compute/instance.ts';

const volume = (
  device_name: string | null,
  boot_index: number | null = null,
): BlockDeviceMapping => ({
  volume_id: `vol-${device_name ?? 'unnamed'}`,
  device_name,
  boot_index,
  delete_on_termination: false,
});

describe('generateDeviceLetter', () => {
  it('counts a…z, aa…zz, aaa… (bijective base 26)', () => {
    expect([0, 1, 25, 26, 27, 51, 52, 701, 702, 18277, 18278].map(generateDeviceLetter)).toEqual([
      'a',
      'b',
      'z',
      'aa',
      'ab',
      'az',
      'ba',
      'zz',
      'aaa',
      'zzz',
      'aaaa',
    ]);
  });

  it('has an inverse', () => {
    expect(deviceLetterIndex('aa')).toBe(26);
    expect(deviceLetterIndex('zzz')).toBe(18277);
  });

  it('refuses a negative index', () => {
    expect(() => generateDeviceLetter(-1)).toThrow(RangeError);
  });
});

describe('matchDevice and getDeviceLetter', () => {
  it('splits prefix and letters as Nova’s regex does', () => {
    expect(matchDevice('/dev/vdb')).toEqual(['/dev/vd', 'b']);
    expect(matchDevice('/dev/xvdc')).toEqual(['/dev/xvd', 'c']);
    expect(matchDevice('/dev/sda1')).toEqual(['/dev/sd', 'a']);
    expect(matchDevice('/dev/hdaa')).toEqual(['/dev/hd', 'aa']);
    expect(matchDevice('vdb')).toBeNull();
    expect(matchDevice('/dev/1')).toBeNull();
    expect(matchDevice('/dev/vdb/')).toBeNull();
  });

  it('strips /dev/, the xvd/vd/sd/hd prefix and digits', () => {
    expect(getDeviceLetter('/dev/sda1')).toBe('a');
    expect(getDeviceLetter('/dev/xvdb')).toBe('b');
    expect(getDeviceLetter('vdc')).toBe('c');
    expect(getDeviceLetter('sda1')).toBe('a');
    expect(getDeviceLetter(null)).toBeNull();
  });
});

describe('instanceBlockMapping', () => {
  it('is Nova’s default mapping for an instance without a root device name', () => {
    expect(instanceBlockMapping({ rootDeviceName: null, volumeDeviceNames: ['/dev/sdz'] })).toEqual(
      {
        ami: 'sda1',
        ephemeral0: 'sda2',
        root: DEFAULT_ROOT_DEV_NAME,
        swap: 'sda3',
      },
    );
  });

  it('lists the root, its ami alias, ephemeral/swap defaults and volumes (unnamed first)', () => {
    expect(
      instanceBlockMapping({
        rootDeviceName: '/dev/vda',
        defaultEphemeralDevice: '/dev/vdb',
        defaultSwapDevice: '/dev/vdc',
        volumeDeviceNames: ['/dev/vde', null, '/dev/vdd'],
      }),
    ).toEqual({
      ami: 'vda',
      root: '/dev/vda',
      ephemeral0: '/dev/vdb',
      swap: '/dev/vdc',
      ebs0: null,
      ebs1: '/dev/vdd',
      ebs2: '/dev/vde',
    });
  });
});

describe('getNextDeviceName', () => {
  it('picks the first letter the instance does not use, under the root’s prefix', () => {
    expect(
      getNextDeviceName({ usedNames: ['/dev/vda', 'vda', '/dev/vdb'], rootDeviceName: '/dev/vda' }),
    ).toBe('/dev/vdc');
    expect(
      getNextDeviceName({ usedNames: ['/dev/vda', '/dev/vdc'], rootDeviceName: '/dev/vda' }),
    ).toBe('/dev/vdb');
  });

  it('defaults the root to /dev/sda1', () => {
    expect(getNextDeviceName({ usedNames: [] })).toBe('/dev/sda');
    expect(getNextDeviceName({ usedNames: ['sda1'] })).toBe('/dev/sdb');
  });

  it('converts a requested name to the root’s prefix (vd ↔ xvd)', () => {
    expect(
      getNextDeviceName({
        usedNames: ['/dev/xvda'],
        rootDeviceName: '/dev/xvda',
        device: '/dev/vdc',
      }),
    ).toBe('/dev/xvdc');
    expect(
      getNextDeviceName({
        usedNames: ['/dev/vda'],
        rootDeviceName: '/dev/vda',
        device: '/dev/xvdd',
      }),
    ).toBe('/dev/vdd');
  });

  it('goes on to aa after z', () => {
    const used = Array.from({ length: 26 }, (_, i) => `/dev/vd${generateDeviceLetter(i)}`);
    expect(getNextDeviceName({ usedNames: used, rootDeviceName: '/dev/vda' })).toBe('/dev/vdaa');
  });

  it('DevicePathInUse (409) for a requested letter in use, naming the requested path', () => {
    const attempt = () =>
      getNextDeviceName({
        usedNames: ['/dev/xvda', '/dev/xvdb'],
        rootDeviceName: '/dev/xvda',
        device: '/dev/vdb',
      });
    expect(attempt).toThrow(DevicePathInUseError);
    expect(attempt).toThrow('The supplied device path (/dev/vdb) is in use.');
    try {
      attempt();
    } catch (e) {
      expect((e as DevicePathInUseError).status).toBe(409);
    }
  });

  it('InvalidDevicePath (400) for a request or root that is no device path', () => {
    for (const device of ['vdb', '/dev/', '/dev/12', '/dev/vd-b']) {
      const attempt = () => getNextDeviceName({ usedNames: [], device });
      expect(attempt, device).toThrow(InvalidDevicePathError);
      expect(attempt, device).toThrow(`The supplied device path (${device}) is invalid.`);
    }
    expect(() => getNextDeviceName({ usedNames: [], rootDeviceName: '/dev/0' })).toThrow(
      InvalidDevicePathError,
    );
    expect(new InvalidDevicePathError('x').status).toBe(400);
  });

  it('TooManyDiskDevices (403) past max_disk_devices_to_attach; negative is no limit', () => {
    const usedNames = ['/dev/vda', '/dev/vdb', '/dev/vdc'];
    const attempt = (maxDevices: number) =>
      getNextDeviceName({ usedNames, rootDeviceName: '/dev/vda', maxDevices });
    expect(() => attempt(3)).toThrow(TooManyDiskDevicesError);
    expect(() => attempt(3)).toThrow(
      'The maximum allowed number of disk devices (3) to attach to a single instance has been exceeded.',
    );
    expect(new TooManyDiskDevicesError(3).status).toBe(403);
    expect(attempt(4)).toBe('/dev/vdd');
    expect(attempt(-1)).toBe('/dev/vdd');
  });

  it('counts an unnamed device towards the maximum', () => {
    expect(() =>
      getNextDeviceName({
        usedNames: ['/dev/vda', null],
        rootDeviceName: '/dev/vda',
        maxDevices: 2,
      }),
    ).toThrow(TooManyDiskDevicesError);
  });
});

describe('getDeviceNameForInstance', () => {
  it('uses the root Nova stores for drivers without default_root_device_name (/dev/sda)', () => {
    expect(rootDeviceNameOf({ block_device_mapping: [] })).toBe('/dev/sda');
    expect(getDeviceNameForInstance({ block_device_mapping: [] })).toBe('/dev/sdb');
    expect(getDeviceNameForInstance({ block_device_mapping: [volume('/dev/sdb')] })).toBe(
      '/dev/sdc',
    );
  });

  it('takes the root from the instance, else from its boot volume', () => {
    expect(
      getDeviceNameForInstance({ root_device_name: '/dev/xvda', block_device_mapping: [] }),
    ).toBe('/dev/xvdb');
    expect(getDeviceNameForInstance({ block_device_mapping: [volume('/dev/vda', 0)] })).toBe(
      '/dev/vdb',
    );
  });

  it('counts an unnamed boot volume as the root, not as one more device', () => {
    const instance = { block_device_mapping: [volume(null, 0)] };
    expect(getDeviceNameForInstance(instance, null, 2)).toBe('/dev/sdb');
  });

  it('honours a requested device (converted) and refuses one in use', () => {
    const instance = { block_device_mapping: [volume('/dev/vda', 0), volume('/dev/vdb')] };
    expect(getDeviceNameForInstance(instance, '/dev/xvdd')).toBe('/dev/vdd');
    expect(() => getDeviceNameForInstance(instance, '/dev/sdb')).toThrow(DevicePathInUseError);
  });
});
