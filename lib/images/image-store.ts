// The image service port. Nova keeps snapshots, backups and shelved images in Glance; Stratus
// keeps their records itself (the bytes belong to the driver: an AMI, the fake's nothing).
//
// An image is created `queued` before the driver uploads anything (Nova's API creates the Glance
// image first, so a failed snapshot can delete it: `delete_image_on_error`), becomes `active`
// when the upload is done, and `deleted` when rotated out, unshelved, or abandoned. A deleted
// image stays readable (Glance keeps the row) but never appears in a listing.

export const ImageStatus = {
  QUEUED: 'queued',
  ACTIVE: 'active',
  DELETED: 'deleted',
} as const;
export type ImageStatus = (typeof ImageStatus)[keyof typeof ImageStatus];

/** Nova's `image_type` property of the images it creates. */
export const ImageType = {
  SNAPSHOT: 'snapshot',
  BACKUP: 'backup',
} as const;
export type ImageType = (typeof ImageType)[keyof typeof ImageType];

export interface Image {
  id: string;
  name: string;
  status: ImageStatus;
  /** The project that owns the image (Glance `owner`). */
  owner: string;
  min_ram: number;
  min_disk: number;
  /**
   * Glance properties: Nova's own (`image_type`, `instance_uuid`, `user_id`, `base_image_ref`,
   * `backup_type` for backups), those inherited from the instance's image, and user metadata.
   */
  properties: Record<string, string>;
  /** ISO-8601 UTC. */
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
}

/** What a caller supplies to create an image; it starts `queued`. */
export type NewImage = Omit<Image, 'status' | 'updated_at' | 'deleted_at'>;

/** Nova's image listing filters (`property-instance_uuid`, `property-image_type`, …). */
export interface ImageFilter {
  instance_uuid: string;
  image_type?: ImageType;
  backup_type?: string;
}

export interface ImageStore {
  /** Creates the image `queued`; idempotent on `id` (the stored image is returned as it is). */
  create(image: NewImage): Promise<Image>;
  get(id: string): Promise<Image | null>;
  /** Live (not deleted) images of an instance matching the filter, newest `created_at` first. */
  list(filter: ImageFilter): Promise<Image[]>;
  /** Marks the image deleted; false when it is unknown or already deleted (nothing to do). */
  delete(id: string, now?: Date): Promise<boolean>;
  /** queued → active. A deleted or unknown image cannot change: ImageNotFoundError. */
  setStatus(id: string, status: Exclude<ImageStatus, 'deleted'>, now?: Date): Promise<Image>;
}

/** Glance's ImageNotFound. */
export class ImageNotFoundError extends Error {
  readonly imageId: string;

  constructor(imageId: string) {
    super(`Image ${imageId} could not be found.`);
    this.name = 'ImageNotFound';
    this.imageId = imageId;
  }
}

/** Newest first, as Glance's `sort_key=created_at, sort_dir=desc`; ties broken by id. */
export function newestFirst(a: Image, b: Image): number {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

export function matchesFilter(image: Image, filter: ImageFilter): boolean {
  const p = image.properties;
  return (
    image.status !== ImageStatus.DELETED &&
    p.instance_uuid === filter.instance_uuid &&
    (filter.image_type === undefined || p.image_type === filter.image_type) &&
    (filter.backup_type === undefined || p.backup_type === filter.backup_type)
  );
}

const clone = <T>(v: T): T => structuredClone(v);

/** The in-memory twin of DynamoDbImageStore (same semantics, no I/O). */
export class InMemoryImageStore implements ImageStore {
  private readonly images = new Map<string, Image>();

  async create(image: NewImage): Promise<Image> {
    const existing = this.images.get(image.id);
    if (existing) return clone(existing);
    const stored: Image = {
      ...clone(image),
      status: ImageStatus.QUEUED,
      updated_at: image.created_at,
      deleted_at: null,
    };
    this.images.set(image.id, stored);
    return clone(stored);
  }

  async get(id: string): Promise<Image | null> {
    const image = this.images.get(id);
    return image ? clone(image) : null;
  }

  async list(filter: ImageFilter): Promise<Image[]> {
    return [...this.images.values()]
      .filter((i) => matchesFilter(i, filter))
      .sort(newestFirst)
      .map(clone);
  }

  async delete(id: string, now: Date = new Date()): Promise<boolean> {
    const image = this.images.get(id);
    if (!image || image.status === ImageStatus.DELETED) return false;
    const at = now.toISOString();
    this.images.set(id, { ...image, status: ImageStatus.DELETED, updated_at: at, deleted_at: at });
    return true;
  }

  async setStatus(
    id: string,
    status: Exclude<ImageStatus, 'deleted'>,
    now: Date = new Date(),
  ): Promise<Image> {
    const image = this.images.get(id);
    if (!image || image.status === ImageStatus.DELETED) throw new ImageNotFoundError(id);
    const next = { ...image, status, updated_at: now.toISOString() };
    this.images.set(id, next);
    return clone(next);
  }
}
