// The ImageStore contract, run against every implementation: the in-memory twin here
// (image-store.test.ts) and DynamoDB Local (test/integration/images-store.test.ts).
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  ImageNotFoundError,
  type ImageStore,
  type NewImage,
} from '../../../lib/images/image-store.ts';

export function newImage(overrides: Partial<NewImage> = {}): NewImage {
  return {
    id: randomUUID(),
    name: 'snap',
    owner: 'project-1',
    min_ram: 0,
    min_disk: 1,
    properties: {
      instance_uuid: 'instance-1',
      image_type: 'snapshot',
      user_id: 'user-1',
      base_image_ref: 'img',
    },
    created_at: '2026-03-01T12:00:00.000Z',
    ...overrides,
  };
}

function backup(instance: string, type: string, at: string): NewImage {
  return newImage({
    created_at: at,
    properties: { instance_uuid: instance, image_type: 'backup', backup_type: type, user_id: 'u' },
  });
}

export function describeImageStore(name: string, makeStore: () => ImageStore): void {
  describe(`${name}: the ImageStore contract`, () => {
    it('creates an image queued, and a second create of the same id returns it unchanged', async () => {
      const store = makeStore();
      const image = newImage();
      const created = await store.create(image);
      expect(created).toMatchObject({ ...image, status: 'queued', deleted_at: null });
      await store.setStatus(image.id, 'active', new Date('2026-03-01T12:05:00.000Z'));
      const again = await store.create({ ...image, name: 'other' });
      expect(again).toMatchObject({ name: 'snap', status: 'active' });
      expect(await store.get(image.id)).toMatchObject({
        status: 'active',
        updated_at: '2026-03-01T12:05:00.000Z',
      });
    });

    it('returns null for an unknown image', async () => {
      expect(await makeStore().get(randomUUID())).toBeNull();
    });

    it("lists an instance's images newest first, filtered by type and backup type", async () => {
      const store = makeStore();
      const instance = randomUUID();
      const daily1 = backup(instance, 'daily', '2026-03-01T00:00:00.000Z');
      const weekly = backup(instance, 'weekly', '2026-03-02T00:00:00.000Z');
      const daily2 = backup(instance, 'daily', '2026-03-03T00:00:00.000Z');
      const snap = newImage({
        created_at: '2026-03-04T00:00:00.000Z',
        properties: { instance_uuid: instance, image_type: 'snapshot' },
      });
      const otherInstance = backup(randomUUID(), 'daily', '2026-03-05T00:00:00.000Z');
      for (const i of [daily1, weekly, daily2, snap, otherInstance]) await store.create(i);

      const ids = async (filter: Parameters<ImageStore['list']>[0]) =>
        (await store.list(filter)).map((i) => i.id);
      expect(await ids({ instance_uuid: instance })).toEqual([
        snap.id,
        daily2.id,
        weekly.id,
        daily1.id,
      ]);
      expect(await ids({ instance_uuid: instance, image_type: 'backup' })).toEqual([
        daily2.id,
        weekly.id,
        daily1.id,
      ]);
      expect(
        await ids({ instance_uuid: instance, image_type: 'backup', backup_type: 'daily' }),
      ).toEqual([daily2.id, daily1.id]);
    });

    it('deletes by marking the image deleted: readable, never listed, deleted once', async () => {
      const store = makeStore();
      const image = newImage({
        properties: { instance_uuid: randomUUID(), image_type: 'snapshot' },
      });
      await store.create(image);
      const at = new Date('2026-03-02T00:00:00.000Z');
      expect(await store.delete(image.id, at)).toBe(true);
      expect(await store.get(image.id)).toMatchObject({
        status: 'deleted',
        deleted_at: at.toISOString(),
      });
      expect(await store.list({ instance_uuid: image.properties.instance_uuid! })).toEqual([]);
      expect(await store.delete(image.id)).toBe(false);
      expect(await store.delete(randomUUID())).toBe(false);
    });

    it('never brings a deleted or unknown image back to life', async () => {
      const store = makeStore();
      const image = newImage();
      await store.create(image);
      await store.delete(image.id);
      await expect(store.setStatus(image.id, 'active')).rejects.toBeInstanceOf(ImageNotFoundError);
      await expect(store.setStatus(randomUUID(), 'active')).rejects.toBeInstanceOf(
        ImageNotFoundError,
      );
      expect((await store.get(image.id))?.status).toBe('deleted');
    });

    it('keeps an image without an instance readable by id', async () => {
      const store = makeStore();
      const image = newImage({ properties: { image_type: 'snapshot' } });
      await store.create(image);
      await store.setStatus(image.id, 'active');
      expect((await store.get(image.id))?.status).toBe('active');
      expect(await store.delete(image.id)).toBe(true);
    });
  });
}
