// Nova's block device naming (nova-compute.md §7): `compute_utils.get_device_name_for_instance`
// and the `nova/block_device.py` helpers it stands on, as pure functions. A driver that names
// devices itself (getDeviceNameForInstance) is asked first; these are the fallback Nova uses
// when it raises NotImplementedError, which is every driver but libvirt.
//
//   used names  the instance's block mapping: root, its `ami` alias, default ephemeral/swap,
//               every volume's device name (instance_block_mapping)
//   prefix      always the root device's (`/dev/vd`, `/dev/sd`, `/dev/xvd`, `/dev/hd`): a
//               requested `/dev/vdc` on an xvd guest becomes `/dev/xvdc`, and vice versa
//   letter      the requested one, or the first unused of a, b, …, z, aa, ab, … (bijective
//               base 26, unbounded since Nova removed the 702-name cap in 2019)
//   errors      InvalidDevicePath (400), DevicePathInUse (409), TooManyDiskDevices (403)

import { ErrorCode, StratusError } from '../errors.ts';
import type { BlockDeviceMapping, Instance } from './instance.ts';

/** block_device.DEFAULT_ROOT_DEV_NAME: the root Nova assumes when an instance names none. */
export const DEFAULT_ROOT_DEV_NAME = '/dev/sda1';

/** `[compute]max_disk_devices_to_attach` default: -1, no limit. */
export const UNLIMITED_DISK_DEVICES = -1;

/**
 * The ErrorCode Nova's exception will have once lib/errors.ts names it, else `fallback` (same
 * HTTP status). Until then the outcome carries the right status under the nearest existing code.
 */
export function novaErrorCode(name: string, fallback: ErrorCode): ErrorCode {
  return Object.hasOwn(ErrorCode, name)
    ? (ErrorCode as Record<string, ErrorCode>)[name]!
    : fallback;
}

/** Nova's InvalidDevicePath (400). */
export class InvalidDevicePathError extends StratusError {
  readonly path: string | null;
  constructor(path: string | null) {
    super(
      novaErrorCode('InvalidDevicePath', ErrorCode.InvalidCommand),
      `The supplied device path (${path}) is invalid.`,
    );
    this.path = path;
  }
}

/** Nova's DevicePathInUse (409). */
export class DevicePathInUseError extends StratusError {
  readonly path: string | null;
  constructor(path: string | null) {
    super(
      novaErrorCode('DevicePathInUse', ErrorCode.InstanceInvalidState),
      `The supplied device path (${path}) is in use.`,
    );
    this.path = path;
  }
}

/** Nova's TooManyDiskDevices (403). */
export class TooManyDiskDevicesError extends StratusError {
  readonly maximum: number;
  constructor(maximum: number) {
    super(
      novaErrorCode('TooManyDiskDevices', ErrorCode.Forbidden),
      `The maximum allowed number of disk devices (${maximum}) to attach to a single instance has been exceeded.`,
    );
    this.maximum = maximum;
  }
}

// The expressions of nova/block_device.py, with Python's re.match/re.sub semantics.
const DEVICE = /^(\/dev\/x?[a-z]?d?)([a-z]+)[0-9]*$/;
const DEV = /^\/dev\//;
const PREFIX = /^((x?v|s|h)d)/;
const DIGITS = /\d+/g;

/** match_device: `[prefix, letters]` of a device path, or null when it is not one. */
export function matchDevice(device: string): [prefix: string, letters: string] | null {
  const m = DEVICE.exec(device);
  return m ? [m[1]!, m[2]!] : null;
}

/** strip_dev: removes a leading `/dev/`. */
export function stripDev(deviceName: string): string {
  return deviceName.replace(DEV, '');
}

/** prepend_dev: makes sure there is a leading `/dev/`. */
export function prependDev(deviceName: string): string {
  return `/dev/${stripDev(deviceName)}`;
}

/**
 * get_device_letter: the name without `/dev/`, without an xvd/vd/sd/hd prefix and without
 * digits (`/dev/sda1` → `a`). Null for an unnamed device, which Nova counts as one "letter".
 */
export function getDeviceLetter(deviceName: string | null): string | null {
  if (!deviceName) return null;
  return stripDev(deviceName).replace(PREFIX, '').replace(DIGITS, '');
}

/** generate_device_letter: 0 → a, 25 → z, 26 → aa, 701 → zz, 702 → aaa (bijective base 26). */
export function generateDeviceLetter(index: number): string {
  if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`bad index ${index}`);
  let letters = '';
  for (let i = index; i >= 0; i = Math.floor(i / 26) - 1) {
    letters = String.fromCharCode(97 + (i % 26)) + letters;
  }
  return letters;
}

/** The inverse of generateDeviceLetter (a → 0, aa → 26); for callers that walk the sequence. */
export function deviceLetterIndex(letters: string): number {
  if (!/^[a-z]+$/.test(letters)) throw new RangeError(`not device letters: ${letters}`);
  let index = 0;
  for (const ch of letters) index = index * 26 + (ch.charCodeAt(0) - 96);
  return index - 1;
}

/** What instance_block_mapping reads from an instance and its block device mappings. */
export interface BlockMappingSource {
  /** instance.root_device_name; null when the instance never got one. */
  rootDeviceName: string | null;
  defaultEphemeralDevice?: string | null;
  defaultSwapDevice?: string | null;
  /** Device names of the volume mappings (null for one reserved without a name). */
  volumeDeviceNames: readonly (string | null)[];
}

/** _DEFAULT_MAPPINGS: Nova's answer for an instance without a root device name. */
const DEFAULT_MAPPINGS: Readonly<Record<string, string>> = {
  ami: 'sda1',
  ephemeral0: 'sda2',
  root: DEFAULT_ROOT_DEV_NAME,
  swap: 'sda3',
};

/**
 * instance_block_mapping: the names an instance's devices already use. Volume names are sorted
 * with unnamed ones first (Nova's `(x is not None, x)` key), as `ebs0`, `ebs1`, ….
 */
export function instanceBlockMapping(source: BlockMappingSource): Record<string, string | null> {
  if (source.rootDeviceName === null) return { ...DEFAULT_MAPPINGS };
  const mappings: Record<string, string | null> = {
    ami: stripDev(source.rootDeviceName),
    root: source.rootDeviceName,
  };
  if (source.defaultEphemeralDevice) mappings.ephemeral0 = source.defaultEphemeralDevice;
  if (source.defaultSwapDevice) mappings.swap = source.defaultSwapDevice;
  const volumes = [...source.volumeDeviceNames].sort((a, b) => {
    if (a === null || b === null) return a === b ? 0 : a === null ? -1 : 1;
    return a < b ? -1 : a > b ? 1 : 0;
  });
  volumes.forEach((name, index) => {
    mappings[`ebs${index}`] = name;
  });
  return mappings;
}

/** check_max_disk_devices_to_attach: a negative maximum is no limit. */
export function checkMaxDiskDevicesToAttach(numDevices: number, maximum: number): void {
  if (maximum < 0) return;
  if (numDevices > maximum) throw new TooManyDiskDevicesError(maximum);
}

export interface NextDeviceNameRequest {
  /** Every name the instance already uses (mapping values; null for an unnamed device). */
  usedNames: readonly (string | null)[];
  /** The root device; null means DEFAULT_ROOT_DEV_NAME. */
  rootDeviceName?: string | null;
  /** The device the caller asked for, if any. */
  device?: string | null;
  /** `[compute]max_disk_devices_to_attach`; negative = unlimited. */
  maxDevices?: number;
}

/**
 * get_next_device_name: validates a requested name (converting its prefix to the root's) or
 * picks the first free letter under the root's prefix.
 */
export function getNextDeviceName(request: NextDeviceNameRequest): string {
  const device = request.device ?? null;
  let requestedLetters: string | null = null;
  if (device) {
    const match = matchDevice(device);
    if (!match) throw new InvalidDevicePathError(device);
    requestedLetters = match[1];
  }
  const root = request.rootDeviceName || DEFAULT_ROOT_DEV_NAME;
  const rootMatch = matchDevice(prependDev(root));
  if (!rootMatch) throw new InvalidDevicePathError(root);
  const prefix = rootMatch[0];

  const usedLetters = new Set(request.usedNames.map(getDeviceLetter));
  checkMaxDiskDevicesToAttach(usedLetters.size + 1, request.maxDevices ?? UNLIMITED_DISK_DEVICES);

  if (!requestedLetters) {
    let index = 0;
    while (usedLetters.has(generateDeviceLetter(index))) index += 1;
    requestedLetters = generateDeviceLetter(index);
  }
  if (usedLetters.has(requestedLetters)) throw new DevicePathInUseError(device);
  return prefix + requestedLetters;
}

/** The part of an instance its device names depend on. */
export type DeviceNamingInstance = Pick<Instance, 'block_device_mapping'> & {
  /**
   * Nova's instance.root_device_name. Stratus records do not carry it yet; when they do, it is
   * read from here.
   */
  root_device_name?: string | null;
};

/**
 * The instance's root device name, as Nova's build would have stored it: its own, else the
 * boot volume's device name, else what get_next_device_name gives an empty instance
 * (`/dev/sda`), the name Nova stores for drivers without default_root_device_name.
 */
export function rootDeviceNameOf(instance: DeviceNamingInstance): string {
  if (instance.root_device_name) return instance.root_device_name;
  const boot = instance.block_device_mapping.find((b) => b.boot_index === 0 && b.device_name);
  if (boot?.device_name) return boot.device_name;
  return getNextDeviceName({ usedNames: [] });
}

/**
 * compute_utils.get_device_name_for_instance: the name a new volume mapping gets on `instance`
 * (whose `block_device_mapping` are the existing mappings), honouring a requested `device`.
 */
export function getDeviceNameForInstance(
  instance: DeviceNamingInstance,
  device?: string | null,
  maxDevices: number = UNLIMITED_DISK_DEVICES,
): string {
  const rootDeviceName = rootDeviceNameOf(instance);
  const mapping = instanceBlockMapping({
    rootDeviceName,
    volumeDeviceNames: volumeDeviceNames(instance.block_device_mapping, rootDeviceName),
  });
  return getNextDeviceName({
    usedNames: Object.values(mapping),
    rootDeviceName: mapping.root ?? null,
    device: device ?? null,
    maxDevices,
  });
}

/**
 * The device names of the volume mappings. A boot volume Stratus left unnamed is the root disk
 * (Nova names it at build), so it counts as the root, not as one more unnamed device.
 */
function volumeDeviceNames(
  bdms: readonly BlockDeviceMapping[],
  rootDeviceName: string,
): (string | null)[] {
  return bdms.map((b) => b.device_name ?? (b.boot_index === 0 ? rootDeviceName : null));
}
