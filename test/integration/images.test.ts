// snapshot_instance and backup_instance through SQS: Nova's task walk (IMAGE_SNAPSHOT_PENDING →
// IMAGE_SNAPSHOT → IMAGE_PENDING_UPLOAD → IMAGE_UPLOADING), the image created first and deleted
// on error, backup rotation, forbidden states, the lock that snapshots ignore, a driver failure,
// a delete that pre-empts a snapshot, and a crashed snapshot resuming where it stopped.

import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type * as Registry from '../../lib/compute/operations/registry.ts';
import { TaskState, VmState } from '../../lib/compute/states.ts';
import { DynamoDbImageStore } from '../../lib/images/dynamodb-image-store.ts';
import { imageIdForCommand } from '../../lib/images/instance-images.ts';
import type { UpdateTaskState } from '../../lib/virt/driver.ts';
import {
  activeInstance,
  eventTrail,
  expectForbiddenStatesRejected,
  forceState,
  run,
} from '../support/operations.ts';
import { type TestStack, startTestStack } from '../support/stack.ts';

vi.mock('../../lib/compute/operations/registry.ts', async (importOriginal) => {
  const original = await importOriginal<typeof Registry>();
  const ops = await import('../../lib/compute/operations/snapshot.ts');
  return {
    OPERATION_HANDLERS: {
      ...original.OPERATION_HANDLERS,
      snapshot_instance: ops.snapshotInstance,
      backup_instance: ops.backupInstance,
    },
  };
});

const SNAPSHOT_STATES = [VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED, VmState.SUSPENDED];

for (const mode of ['sync', 'async'] as const) {
  describe(`snapshot and backup (${mode} driver)`, () => {
    let stack: TestStack;
    let images: DynamoDbImageStore;

    beforeAll(async () => {
      stack = await startTestStack({
        label: `images-${mode}`,
        options: {
          notify_on_state_change: 'vm_and_task_state',
          fake_async: mode === 'async' ? 'true' : 'false',
          admin_producers: '["000000000000"]',
        },
        operations: ['snapshot_instance', 'backup_instance', 'stop_instance'],
      });
      images = new DynamoDbImageStore(stack.doc, stack.config.tables.state);
    });

    afterEach(() => vi.restoreAllMocks());

    async function fakeDriver() {
      return (await import('../../lib/virt/fake/driver.ts')).FakeDriver;
    }

    it('snapshots an ACTIVE instance through Nova’s image task states', async () => {
      const id = await activeInstance(stack);
      await stack.receiveEvents();

      const snap = await run(stack, 'snapshot_instance', id, {
        args: { image_name: 'before-upgrade', metadata: { purpose: 'test' } },
      });
      const imageId = imageIdForCommand(snap.command_id);
      expect(snap).toMatchObject({
        status: 'succeeded',
        outcome: { result: { image_id: imageId } },
        events: [{ event: 'compute_snapshot_instance', result: 'Success' }],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        task_owner: null,
      });
      expect(await images.get(imageId)).toMatchObject({
        name: 'before-upgrade',
        status: 'active',
        owner: 'project-1',
        properties: {
          image_type: 'snapshot',
          instance_uuid: id,
          base_image_ref: 'img',
          user_id: 'user-1',
          purpose: 'test',
        },
      });
      expect(await eventTrail(stack, id)).toEqual([
        'update:active/image_snapshot_pending',
        'update:active/image_snapshot',
        'snapshot.start',
        'update:active/image_pending_upload',
        'update:active/image_uploading',
        'update:active/-',
        'snapshot.end',
      ]);
    });

    it('snapshots a STOPPED instance, which stays stopped', async () => {
      const id = await activeInstance(stack);
      expect((await run(stack, 'stop_instance', id)).status).toBe('succeeded');
      const snap = await run(stack, 'snapshot_instance', id, { args: { image_name: 'cold' } });
      expect(snap.status).toBe('succeeded');
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.STOPPED,
        task_state: null,
      });
    });

    it('rejects every vm_state Nova forbids, changing nothing and creating no image', async () => {
      const id = await activeInstance(stack);
      await expectForbiddenStatesRejected(stack, 'snapshot_instance', id, SNAPSHOT_STATES, {
        args: { image_name: 'x' },
      });
      await expectForbiddenStatesRejected(stack, 'backup_instance', id, SNAPSHOT_STATES, {
        args: { image_name: 'x', backup_type: 'daily', rotation: 1 },
      });
      expect(await images.list({ instance_uuid: id })).toEqual([]);
    });

    it('rejects a snapshot while another task runs', async () => {
      const id = await activeInstance(stack);
      const before = await forceState(stack, id, {
        task_state: TaskState.POWERING_OFF,
        task_owner: 'someone-else',
      });
      const snap = await run(stack, 'snapshot_instance', id, { args: { image_name: 'x' } });
      expect(snap).toMatchObject({ status: 'rejected', outcome: { error: { code: 409 } } });
      expect((await stack.store.getInstance(id))?.version).toBe(before.version);
    });

    it('ignores the lock: a locked instance is snapshotted and backed up for its owner', async () => {
      const id = await activeInstance(stack);
      await forceState(stack, id, { locked: true, locked_by: 'admin' });
      expect(
        (await run(stack, 'snapshot_instance', id, { args: { image_name: 's' } })).status,
      ).toBe('succeeded');
      const backup = await run(stack, 'backup_instance', id, {
        args: { image_name: 'b', backup_type: 'daily', rotation: 1 },
      });
      expect(backup.status).toBe('succeeded');
      expect(
        (await run(stack, 'snapshot_instance', id, { args: { image_name: 'a' }, roles: ['admin'] }))
          .status,
      ).toBe('succeeded');
    });

    it('reverts the task, records a fault and deletes the image when the driver fails', async () => {
      const id = await activeInstance(stack);
      const { DriverError } = await import('../../lib/virt/errors.ts');
      vi.spyOn((await fakeDriver()).prototype, 'snapshot').mockImplementationOnce(
        async (_ctx, _instance, _imageId, update: UpdateTaskState) => {
          await update(TaskState.IMAGE_PENDING_UPLOAD);
          throw new DriverError('HypervisorUnavailable', 'the disk could not be read');
        },
      );
      await stack.receiveEvents();
      const snap = await run(stack, 'snapshot_instance', id, { args: { image_name: 'broken' } });
      expect(snap).toMatchObject({
        status: 'failed',
        outcome: { error: { code: 500 } },
        events: [{ event: 'compute_snapshot_instance', result: 'Error' }],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        task_owner: null,
      });
      expect((await stack.store.listFaults(id)).at(-1)).toMatchObject({
        message: expect.stringContaining('the disk could not be read'),
      });
      expect((await images.get(imageIdForCommand(snap.command_id)))?.status).toBe('deleted');
      expect(await eventTrail(stack, id)).toEqual([
        'update:active/image_snapshot_pending',
        'update:active/image_snapshot',
        'snapshot.start',
        'update:active/image_pending_upload',
        'update:active/-',
      ]);
    });

    it('ends quietly and drops the unfinished image when a delete takes the task', async () => {
      const id = await activeInstance(stack);
      vi.spyOn((await fakeDriver()).prototype, 'snapshot').mockImplementationOnce(
        async (_ctx, _instance, _imageId, update: UpdateTaskState) => {
          await update(TaskState.IMAGE_PENDING_UPLOAD);
          // A delete takes the task while the image uploads.
          await forceState(stack, id, { task_state: TaskState.DELETING, task_owner: 'delete' });
          await update(TaskState.IMAGE_UPLOADING, TaskState.IMAGE_PENDING_UPLOAD);
          return { status: 'done' };
        },
      );
      const faultsBefore = (await stack.store.listFaults(id)).length;
      const snap = await run(stack, 'snapshot_instance', id, { args: { image_name: 'gone' } });
      expect(snap).toMatchObject({ status: 'failed', error_code: 'UnexpectedDeletingTaskState' });
      expect((await stack.store.getInstance(id))?.task_state).toBe(TaskState.DELETING);
      expect(await stack.store.listFaults(id)).toHaveLength(faultsBefore);
      expect((await images.get(imageIdForCommand(snap.command_id)))?.status).toBe('deleted');
    });

    it('resumes a snapshot that crashed mid-upload, replaying the steps it had taken', async () => {
      const id = await activeInstance(stack);
      const throttled = Object.assign(new Error('slow down'), { name: 'ThrottlingException' });
      const snapshot = vi
        .spyOn((await fakeDriver()).prototype, 'snapshot')
        .mockImplementationOnce(async (_ctx, _instance, _imageId, update: UpdateTaskState) => {
          await update(TaskState.IMAGE_PENDING_UPLOAD);
          throw throttled; // an infrastructure fault: SQS redelivers the command
        });
      await stack.receiveEvents();
      const first = await run(stack, 'snapshot_instance', id, { args: { image_name: 'retry' } });
      expect(first.status).toBe('running');
      expect((await stack.store.getInstance(id))?.task_state).toBe(TaskState.IMAGE_PENDING_UPLOAD);
      await new Promise((r) => setTimeout(r, 2100)); // the visibility timeout
      await stack.drain('snapshot_instance');
      expect(snapshot).toHaveBeenCalledTimes(2);
      expect(await stack.store.findActionByCommand(first.command_id)).toMatchObject({
        status: 'succeeded',
      });
      expect((await images.get(imageIdForCommand(first.command_id)))?.status).toBe('active');
      // Each step and each notification happened once.
      expect(await eventTrail(stack, id)).toEqual([
        'update:active/image_snapshot_pending',
        'update:active/image_snapshot',
        'snapshot.start',
        'update:active/image_pending_upload',
        'update:active/image_uploading',
        'update:active/-',
        'snapshot.end',
      ]);
    });

    it('rotates backups: the oldest beyond `rotation` go, other types stay', async () => {
      const id = await activeInstance(stack);
      const backup = async (type: string, rotation: number) => {
        const action = await run(stack, 'backup_instance', id, {
          args: { image_name: `${type}-backup`, backup_type: type, rotation },
        });
        expect(action.status).toBe('succeeded');
        return action;
      };
      const weekly = await backup('weekly', 5);
      const d1 = await backup('daily', 2);
      const d2 = await backup('daily', 2);
      await stack.receiveEvents();
      const d3 = await backup('daily', 2);
      const live = async (type: string) =>
        (await images.list({ instance_uuid: id, image_type: 'backup', backup_type: type })).map(
          (i) => i.id,
        );
      const idOf = (a: { command_id: string }) => imageIdForCommand(a.command_id);
      expect(await live('daily')).toEqual([idOf(d3), idOf(d2)]);
      expect((await images.get(idOf(d1)))?.status).toBe('deleted');
      expect(await live('weekly')).toEqual([idOf(weekly)]);
      expect(d3.outcome?.result).toEqual({ image_id: idOf(d3), rotated_image_ids: [idOf(d1)] });
      expect(await images.get(idOf(d3))).toMatchObject({
        properties: { image_type: 'backup', backup_type: 'daily', instance_uuid: id },
      });
      expect(await eventTrail(stack, id)).toEqual([
        'update:active/image_backup',
        'snapshot.start',
        'update:active/image_pending_upload',
        'update:active/image_uploading',
        'update:active/-',
        'snapshot.end',
      ]);

      // rotation 0: every daily backup goes, the new one included.
      const d4 = await backup('daily', 0);
      expect(await live('daily')).toEqual([]);
      expect((await images.get(idOf(d4)))?.status).toBe('deleted');
      expect(await live('weekly')).toEqual([idOf(weekly)]);
    });

    it('refuses to back up (400) or snapshot (501) a volume-backed instance', async () => {
      const id = await activeInstance(stack, {
        block_device_mapping: [{ volume_id: 'vol-root', boot_index: 0 }],
      });
      const backup = await run(stack, 'backup_instance', id, {
        args: { image_name: 'b', backup_type: 'daily', rotation: 1 },
      });
      expect(backup).toMatchObject({ status: 'rejected', outcome: { error: { code: 400 } } });
      const before = (await stack.store.getInstance(id))!;
      const snap = await run(stack, 'snapshot_instance', id, { args: { image_name: 's' } });
      expect(snap).toMatchObject({
        status: 'rejected',
        error_code: 'NotSupported',
        outcome: { error: { code: 501 } },
      });
      expect((await stack.store.getInstance(id))?.version).toBe(before.version);
      expect(await images.list({ instance_uuid: id })).toEqual([]);
    });
  });
}
