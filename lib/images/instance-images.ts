// The images Nova makes from instances (nova/compute/utils.py create_image and
// initialize_instance_snapshot_metadata; nova/compute/manager.py _rotate_backups;
// remove_shelved_keys_from_system_metadata), as pure functions.

import type { Instance } from '../compute/instance.ts';
import { uuidv5 } from '../notifications/message-id.ts';
import { type Image, type ImageType, type NewImage } from './image-store.ts';

/** uuid5(DNS, 'images.stratus.compute'): the namespace of image ids. */
const IMAGE_NAMESPACE = uuidv5('images.stratus.compute', '6ba7b810-9dad-11d1-80b4-00c04fd430c8');

/**
 * The image a command creates. Derived from the command id, so a redelivered command finds the
 * image it created before instead of creating a second one.
 */
export function imageIdForCommand(commandId: string): string {
  return uuidv5(`image:${commandId}`, IMAGE_NAMESPACE);
}

/** Image properties an instance's image passes on that must not be inherited by a snapshot. */
const NON_INHERITABLE = new Set(['image_type', 'backup_type', 'instance_uuid', 'user_id']);

export interface InstanceImageRequest {
  id: string;
  name: string;
  imageType: ImageType;
  userId: string;
  /** Properties added last (backup_type, the snapshot's user metadata). */
  extraProperties?: Record<string, string>;
  now: Date;
}

/**
 * Nova's create_image: the instance's image properties, `base_image_ref` (the image the
 * instance's lineage started from), `instance_uuid`, `user_id`, `image_type`, then extras.
 */
export function instanceImage(instance: Instance, request: InstanceImageRequest): NewImage {
  const inherited = Object.fromEntries(
    Object.entries(instance.image_meta).filter(([k]) => !NON_INHERITABLE.has(k)),
  );
  const minRam = Number(instance.image_meta.min_ram ?? 0);
  return {
    id: request.id,
    name: request.name,
    owner: instance.project_id,
    min_ram: Number.isFinite(minRam) ? minRam : 0,
    min_disk: instance.flavor.root_gb,
    properties: {
      ...inherited,
      base_image_ref: instance.image_meta.base_image_ref ?? instance.image_ref,
      instance_uuid: instance.instance_id,
      user_id: request.userId,
      image_type: request.imageType,
      ...request.extraProperties,
    },
    created_at: request.now.toISOString(),
  };
}

/**
 * The `image_*` system metadata an instance takes from the image it (re)boots from: the image's
 * properties, or nothing for an image Stratus does not know (it has no catalog of base images).
 */
export function imageMetaFrom(image: Image | null): Record<string, string> {
  if (!image) return {};
  return { ...image.properties, min_ram: String(image.min_ram), min_disk: String(image.min_disk) };
}

/**
 * _rotate_backups: given the instance's backups of one type newest first, those to delete so
 * that at most `rotation` remain. `rotation` 0 deletes every one, the new backup included.
 */
export function backupsBeyondRotation(newestFirst: readonly Image[], rotation: number): Image[] {
  return newestFirst.length > rotation ? newestFirst.slice(rotation) : [];
}

/**
 * Nova's is_volume_backed_instance: no image, or a root block device (boot_index 0) that is a
 * volume (every Stratus block device mapping is a volume).
 */
export function isVolumeBacked(instance: Instance): boolean {
  return !instance.image_ref || instance.block_device_mapping.some((b) => b.boot_index === 0);
}

/** The system metadata shelving leaves behind and unshelving removes. */
export const SHELVED_KEYS = ['shelved_at', 'shelved_image_id', 'shelved_host'] as const;

export function withoutShelvedKeys(systemMetadata: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(systemMetadata).filter(
      ([k]) => !(SHELVED_KEYS as readonly string[]).includes(k),
    ),
  );
}
