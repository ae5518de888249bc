// Properties of Nova's device naming: names are unique, never collide with a used one, follow
// the root's prefix, come in Nova's sequence (a…z, aa…), and the three errors are raised exactly
// when Nova raises them.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DevicePathInUseError,
  InvalidDevicePathError,
  TooManyDiskDevicesError,
  deviceLetterIndex,
  generateDeviceLetter,
  getDeviceLetter,
  getDeviceNameForInstance,
  getNextDeviceName,
  matchDevice,
} from '../../../lib/compute/device-names.ts';
import type { BlockDeviceMapping } from '../../../lib/compute/instance.ts';

const PREFIXES = ['/dev/vd', '/dev/sd', '/dev/xvd', '/dev/hd'] as const;
const prefixArb = fc.constantFrom(...PREFIXES);
const lettersArb = fc.nat({ max: 1500 }).map(generateDeviceLetter);
/** A device path of any family, sometimes with a partition number (sda1). */
const deviceArb = fc
  .tuple(prefixArb, lettersArb, fc.option(fc.integer({ min: 1, max: 9 }), { nil: undefined }))
  .map(([prefix, letters, part]) => `${prefix}${letters}${part ?? ''}`);

/** Shortlex order: the order generateDeviceLetter walks. */
function shortlexLess(a: string, b: string): boolean {
  return a.length < b.length || (a.length === b.length && a < b);
}

function mapping(volume_id: string, device_name: string | null): BlockDeviceMapping {
  return { volume_id, device_name, boot_index: null, delete_on_termination: false };
}

describe('device letters (property)', () => {
  it('generateDeviceLetter is a shortlex-increasing bijection onto [a-z]+', () => {
    fc.assert(
      fc.property(fc.nat({ max: 1_000_000 }), (i) => {
        const letters = generateDeviceLetter(i);
        expect(letters).toMatch(/^[a-z]+$/);
        expect(deviceLetterIndex(letters)).toBe(i);
        expect(shortlexLess(letters, generateDeviceLetter(i + 1))).toBe(true);
      }),
    );
  });

  it('every device path splits into its family prefix and letters', () => {
    fc.assert(
      fc.property(prefixArb, lettersArb, (prefix, letters) => {
        expect(matchDevice(`${prefix}${letters}`)).toEqual([prefix, letters]);
        expect(getDeviceLetter(`${prefix}${letters}`)).toBe(letters);
      }),
    );
  });
});

describe('getNextDeviceName (property)', () => {
  it('a run of attaches gets unique names in Nova’s sequence under the root’s prefix', () => {
    fc.assert(
      fc.property(prefixArb, fc.integer({ min: 1, max: 60 }), (prefix, count) => {
        const root = `${prefix}a`;
        const bdms: BlockDeviceMapping[] = [];
        for (let n = 0; n < count; n++) {
          const name = getDeviceNameForInstance({
            root_device_name: root,
            block_device_mapping: bdms,
          });
          bdms.push(mapping(`vol-${n}`, name));
        }
        const names = bdms.map((b) => b.device_name);
        expect(new Set(names).size).toBe(count);
        // The root has `a`: the volumes get b, c, …, z, aa, … in order.
        expect(names).toEqual(
          Array.from({ length: count }, (_, n) => `${prefix}${generateDeviceLetter(n + 1)}`),
        );
      }),
    );
  });

  it('never picks a used letter, and picks the first free one in the sequence', () => {
    fc.assert(
      fc.property(prefixArb, fc.array(deviceArb, { maxLength: 40 }), (prefix, used) => {
        const root = `${prefix}a`;
        const name = getNextDeviceName({ usedNames: [root, ...used], rootDeviceName: root });
        const [namePrefix, letters] = matchDevice(name)!;
        expect(namePrefix).toBe(prefix);
        const usedLetters = new Set([root, ...used].map(getDeviceLetter));
        expect(usedLetters.has(letters)).toBe(false);
        for (let i = 0; i < deviceLetterIndex(letters); i++) {
          expect(usedLetters.has(generateDeviceLetter(i))).toBe(true);
        }
      }),
    );
  });

  it('a requested device keeps its letters, takes the root’s prefix, or is in use', () => {
    fc.assert(
      fc.property(
        prefixArb,
        fc.array(deviceArb, { maxLength: 20 }),
        prefixArb,
        lettersArb,
        (prefix, used, requestedPrefix, letters) => {
          const root = `${prefix}a`;
          const device = `${requestedPrefix}${letters}`;
          const usedNames = [root, ...used];
          const inUse = usedNames.map(getDeviceLetter).includes(letters);
          const attempt = () => getNextDeviceName({ usedNames, rootDeviceName: root, device });
          if (inUse) {
            expect(attempt).toThrow(DevicePathInUseError);
          } else {
            expect(attempt()).toBe(`${prefix}${letters}`);
          }
        },
      ),
    );
  });

  it('a request that is no device path is InvalidDevicePath', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), (device) => {
        fc.pre(device !== '' && matchDevice(device) === null);
        expect(() => getNextDeviceName({ usedNames: [], device })).toThrow(InvalidDevicePathError);
      }),
    );
  });

  it('TooManyDiskDevices exactly when one more device exceeds the maximum', () => {
    fc.assert(
      fc.property(
        fc.array(deviceArb, { maxLength: 30 }),
        fc.integer({ min: 0, max: 32 }),
        (used, maxDevices) => {
          const root = '/dev/vda';
          const usedNames = [root, ...used];
          const distinct = new Set(usedNames.map(getDeviceLetter)).size;
          const attempt = () => getNextDeviceName({ usedNames, rootDeviceName: root, maxDevices });
          if (distinct + 1 > maxDevices) expect(attempt).toThrow(TooManyDiskDevicesError);
          else expect(attempt()).toMatch(/^\/dev\/vd[a-z]+$/);
        },
      ),
    );
  });
});
