// attach_volume, detach_volume and swap_volume through SQS: Nova's device names, mappings on the
// instance, `volume.attach` / `volume.detach`, the API's states and lock, driver failures, the
// shelved-offloaded path without a host, and concurrent attaches that must not share a name.

import type { SQSRecord } from 'aws-lambda';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { VmState } from '../../lib/compute/states.ts';
import { fakeLambdaContext } from '../../lib/local/event-source.ts';
import { VOLUME_VM_STATES, SWAP_VOLUME_VM_STATES } from '../../lib/compute/operations/volumes.ts';
import { DynamoDbFakeHypervisorStore } from '../../lib/virt/fake/dynamodb-store.ts';
import {
  OWNER,
  activeInstance,
  eventTrail,
  expectForbiddenStatesRejected,
  forceState,
  run,
} from '../support/operations.ts';
import { type TestStack, buildCommand, startTestStack } from '../support/stack.ts';

const VOLUME_OPERATIONS = ['attach_volume', 'detach_volume', 'swap_volume'] as const;

for (const mode of ['sync', 'async'] as const) {
  describe(`volumes (${mode} driver)`, () => {
    let stack: TestStack;

    beforeAll(async () => {
      stack = await startTestStack({
        label: `volumes-${mode}`,
        options: {
          notify_on_state_change: 'vm_and_task_state',
          fake_async: mode === 'async' ? 'true' : 'false',
          admin_producers: '["000000000000"]',
        },
        operations: VOLUME_OPERATIONS,
      });
    });

    afterEach(() => vi.restoreAllMocks());

    async function guestVolumes(id: string): Promise<Record<string, string>> {
      const instance = await stack.store.getInstance(id);
      const fake = new DynamoDbFakeHypervisorStore({
        client: stack.doc,
        tableName: stack.config.tables.fakeHypervisor,
      });
      return (await fake.get(instance!.node!, id))!.volumes;
    }

    async function volumeEvents(id: string) {
      return (await stack.receiveEvents()).filter(
        (e) => e.resources.includes(id) && e['detail-type'].startsWith('compute.instance.volume'),
      );
    }

    it('attaches with Nova’s device names, detaches, and swaps, with their events', async () => {
      const id = await activeInstance(stack);
      await stack.receiveEvents();

      // No root device name recorded: Nova's default root /dev/sda, so volumes start at sdb.
      const first = await run(stack, 'attach_volume', id, { args: { volume_id: 'vol-1' } });
      expect(first).toMatchObject({
        status: 'succeeded',
        outcome: { result: { volume_id: 'vol-1', device: '/dev/sdb' } },
        events: [{ event: 'compute_attach_volume', result: 'Success' }],
      });
      const attachEvents = await volumeEvents(id);
      expect(attachEvents.map((e) => e['detail-type'])).toEqual(['compute.instance.volume.attach']);
      expect(attachEvents[0]!.detail.payload).toMatchObject({
        volume_id: 'vol-1',
        instance_id: id,
      });

      // A requested /dev/vdf is converted to the root's prefix.
      const second = await run(stack, 'attach_volume', id, {
        args: { volume_id: 'vol-2', device: '/dev/vdf' },
      });
      expect(second.outcome?.result).toEqual({ volume_id: 'vol-2', device: '/dev/sdf' });
      const third = await run(stack, 'attach_volume', id, { args: { volume_id: 'vol-3' } });
      expect(third.outcome?.result).toEqual({ volume_id: 'vol-3', device: '/dev/sdc' });

      let instance = await stack.store.getInstance(id);
      expect(instance).toMatchObject({ vm_state: VmState.ACTIVE, task_state: null });
      expect(instance?.block_device_mapping.map((b) => [b.volume_id, b.device_name])).toEqual([
        ['vol-1', '/dev/sdb'],
        ['vol-2', '/dev/sdf'],
        ['vol-3', '/dev/sdc'],
      ]);
      expect(await guestVolumes(id)).toMatchObject({
        '/dev/sdb': 'vol-1',
        '/dev/sdf': 'vol-2',
        '/dev/sdc': 'vol-3',
      });
      // Mappings are not Instance fields in Nova: no compute.instance.update for them.
      expect(await eventTrail(stack, id)).toEqual(['volume.attach', 'volume.attach']);

      const detach = await run(stack, 'detach_volume', id, { args: { volume_id: 'vol-1' } });
      expect(detach).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'compute_detach_volume', result: 'Success' }],
      });
      const detachEvents = await volumeEvents(id);
      expect(detachEvents.map((e) => e['detail-type'])).toEqual(['compute.instance.volume.detach']);
      expect(detachEvents[0]!.detail.payload).toMatchObject({ volume_id: 'vol-1' });
      expect(await guestVolumes(id)).not.toHaveProperty('/dev/sdb');

      // The freed name is the first free one again.
      const again = await run(stack, 'attach_volume', id, { args: { volume_id: 'vol-4' } });
      expect(again.outcome?.result).toEqual({ volume_id: 'vol-4', device: '/dev/sdb' });
      await stack.receiveEvents();

      const swap = await run(stack, 'swap_volume', id, {
        args: { old_volume_id: 'vol-2', new_volume_id: 'vol-5' },
      });
      expect(swap).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'compute_swap_volume', result: 'Success' }],
      });
      instance = await stack.store.getInstance(id);
      expect(
        instance?.block_device_mapping.find((b) => b.device_name === '/dev/sdf'),
      ).toMatchObject({ volume_id: 'vol-5' });
      expect((await guestVolumes(id))['/dev/sdf']).toBe('vol-5');
      // Nova sends no legacy notification for a swap.
      expect(await eventTrail(stack, id)).toEqual([]);
    });

    it('names volumes after a boot volume’s root device', async () => {
      const id = await activeInstance(stack, {
        block_device_mapping: [{ volume_id: 'boot', device_name: '/dev/vda', boot_index: 0 }],
      });
      const attach = await run(stack, 'attach_volume', id, { args: { volume_id: 'data' } });
      expect(attach.outcome?.result).toEqual({ volume_id: 'data', device: '/dev/vdb' });
      // The root volume cannot be detached (400), nothing changes.
      const before = await stack.store.getInstance(id);
      const root = await run(stack, 'detach_volume', id, { args: { volume_id: 'boot' } });
      expect(root).toMatchObject({ status: 'rejected', outcome: { error: { code: 400 } } });
      expect((await stack.store.getInstance(id))?.version).toBe(before?.version);
    });

    it('rejects names in use, bad paths, a volume attached twice and unknown volumes', async () => {
      const id = await activeInstance(stack);
      await run(stack, 'attach_volume', id, { args: { volume_id: 'vol-a', device: '/dev/vdc' } });
      const before = await stack.store.getInstance(id);

      const inUse = await run(stack, 'attach_volume', id, {
        args: { volume_id: 'vol-b', device: '/dev/xvdc' },
      });
      expect(inUse).toMatchObject({
        status: 'rejected',
        outcome: {
          error: { code: 409, message: 'The supplied device path (/dev/xvdc) is in use.' },
        },
      });
      const badPath = await run(stack, 'attach_volume', id, {
        args: { volume_id: 'vol-b', device: '/dev/123' },
      });
      expect(badPath).toMatchObject({
        status: 'rejected',
        outcome: {
          error: { code: 400, message: 'The supplied device path (/dev/123) is invalid.' },
        },
      });
      const twice = await run(stack, 'attach_volume', id, { args: { volume_id: 'vol-a' } });
      expect(twice).toMatchObject({ status: 'rejected', outcome: { error: { code: 400 } } });
      const unknown = await run(stack, 'detach_volume', id, { args: { volume_id: 'vol-x' } });
      expect(unknown).toMatchObject({ status: 'rejected', outcome: { error: { code: 404 } } });
      const swapUnknown = await run(stack, 'swap_volume', id, {
        args: { old_volume_id: 'vol-x', new_volume_id: 'vol-y' },
      });
      expect(swapUnknown).toMatchObject({ status: 'rejected', outcome: { error: { code: 404 } } });
      const swapOntoAttached = await run(stack, 'swap_volume', id, {
        args: { old_volume_id: 'vol-a', new_volume_id: 'vol-a' },
      });
      expect(swapOntoAttached).toMatchObject({
        status: 'rejected',
        outcome: { error: { code: 400 } },
      });

      expect((await stack.store.getInstance(id))?.version).toBe(before?.version);
    });

    it('rejects every vm_state Nova forbids and a running task, changing nothing', async () => {
      const id = await activeInstance(stack);
      await run(stack, 'attach_volume', id, { args: { volume_id: 'vol-s' } });
      await expectForbiddenStatesRejected(stack, 'attach_volume', id, VOLUME_VM_STATES, {
        args: { volume_id: 'vol-t' },
      });
      await expectForbiddenStatesRejected(stack, 'detach_volume', id, VOLUME_VM_STATES, {
        args: { volume_id: 'vol-s' },
      });
      await expectForbiddenStatesRejected(stack, 'swap_volume', id, SWAP_VOLUME_VM_STATES, {
        args: { old_volume_id: 'vol-s', new_volume_id: 'vol-t' },
      });
      const busy = await forceState(stack, id, {
        vm_state: VmState.ACTIVE,
        task_state: 'powering-off',
      });
      for (const [op, args] of [
        ['attach_volume', { volume_id: 'vol-t' }],
        ['detach_volume', { volume_id: 'vol-s' }],
        ['swap_volume', { old_volume_id: 'vol-s', new_volume_id: 'vol-t' }],
      ] as const) {
        const action = await run(stack, op, id, { args });
        expect(action, op).toMatchObject({
          status: 'rejected',
          error_code: 'InstanceInvalidState',
        });
      }
      expect((await stack.store.getInstance(id))?.version).toBe(busy.version);
    });

    it('rejects a locked instance for its owner and lets an admin through', async () => {
      const id = await activeInstance(stack);
      await forceState(stack, id, { locked: true, locked_by: 'admin' });
      const refused = await run(stack, 'attach_volume', id, { args: { volume_id: 'vol-l' } });
      expect(refused).toMatchObject({
        status: 'rejected',
        error_code: 'InstanceIsLocked',
        outcome: { error: { code: 409 } },
      });
      expect((await stack.store.getInstance(id))?.block_device_mapping).toEqual([]);
      const admin = await run(stack, 'attach_volume', id, {
        args: { volume_id: 'vol-l' },
        roles: ['admin'],
      });
      expect(admin.status).toBe('succeeded');
      const ownerDetach = await run(stack, 'detach_volume', id, { args: { volume_id: 'vol-l' } });
      expect(ownerDetach).toMatchObject({ status: 'rejected', error_code: 'InstanceIsLocked' });
      const adminDetach = await run(stack, 'detach_volume', id, {
        args: { volume_id: 'vol-l' },
        roles: ['admin'],
      });
      expect(adminDetach.status).toBe('succeeded');
    });

    it('removes the reserved mapping and records a fault when the driver fails to attach', async () => {
      const id = await activeInstance(stack);
      await stack.receiveEvents();
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      const { DriverError } = await import('../../lib/virt/errors.ts');
      vi.spyOn(FakeDriver.prototype, 'attachVolume').mockRejectedValueOnce(
        new DriverError('VolumeAttachFailed', 'the volume would not attach'),
      );
      const attach = await run(stack, 'attach_volume', id, { args: { volume_id: 'vol-f' } });
      expect(attach).toMatchObject({
        status: 'failed',
        events: [{ event: 'compute_attach_volume', result: 'Error' }],
        outcome: { error: { code: 500 } },
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        block_device_mapping: [],
      });
      expect((await stack.store.listFaults(id)).at(-1)).toMatchObject({
        code: 500,
        message: expect.stringContaining('the volume would not attach'),
      });
      expect(await volumeEvents(id)).toEqual([]);
      // The name it had reserved is free again.
      const retry = await run(stack, 'attach_volume', id, { args: { volume_id: 'vol-f' } });
      expect(retry.outcome?.result).toEqual({ volume_id: 'vol-f', device: '/dev/sdb' });
    });

    it('keeps the mapping and records a fault when detach or swap fails in the driver', async () => {
      const id = await activeInstance(stack);
      await run(stack, 'attach_volume', id, { args: { volume_id: 'vol-k' } });
      await stack.receiveEvents();
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      const { DriverError } = await import('../../lib/virt/errors.ts');
      vi.spyOn(FakeDriver.prototype, 'detachVolume').mockRejectedValueOnce(
        new DriverError('VolumeNotFound', 'gone missing'),
      );
      const detach = await run(stack, 'detach_volume', id, { args: { volume_id: 'vol-k' } });
      expect(detach).toMatchObject({
        status: 'failed',
        events: [{ event: 'compute_detach_volume', result: 'Error' }],
      });
      expect((await stack.store.getInstance(id))?.block_device_mapping).toMatchObject([
        { volume_id: 'vol-k', device_name: '/dev/sdb' },
      ]);
      expect(await volumeEvents(id)).toEqual([]);

      vi.spyOn(FakeDriver.prototype, 'swapVolume').mockRejectedValueOnce(
        new DriverError('VolumeNotFound', 'no new volume'),
      );
      const swap = await run(stack, 'swap_volume', id, {
        args: { old_volume_id: 'vol-k', new_volume_id: 'vol-n' },
      });
      expect(swap).toMatchObject({
        status: 'failed',
        events: [{ event: 'compute_swap_volume', result: 'Error' }],
      });
      expect((await stack.store.getInstance(id))?.block_device_mapping).toMatchObject([
        { volume_id: 'vol-k' },
      ]);
      const faults = await stack.store.listFaults(id);
      expect(faults.map((f) => f.message)).toEqual(
        expect.arrayContaining([
          expect.stringContaining('gone missing'),
          expect.stringContaining('no new volume'),
        ]),
      );
      expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.ACTIVE);
    });

    it('attaches to and detaches from a shelved-offloaded instance in the API alone', async () => {
      const id = await activeInstance(stack);
      await forceState(stack, id, { vm_state: VmState.SHELVED_OFFLOADED, host: null, node: null });
      await stack.receiveEvents();
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      const driverAttach = vi.spyOn(FakeDriver.prototype, 'attachVolume');
      const driverDetach = vi.spyOn(FakeDriver.prototype, 'detachVolume');

      const attach = await run(stack, 'attach_volume', id, { args: { volume_id: 'vol-o' } });
      expect(attach).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'api_attach_volume', result: 'Success' }],
        outcome: { result: { volume_id: 'vol-o', device: null } },
      });
      expect((await stack.store.getInstance(id))?.block_device_mapping).toMatchObject([
        { volume_id: 'vol-o', device_name: null },
      ]);
      const detach = await run(stack, 'detach_volume', id, { args: { volume_id: 'vol-o' } });
      expect(detach).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'api_detach_volume', result: 'Success' }],
      });
      expect((await stack.store.getInstance(id))?.block_device_mapping).toEqual([]);
      expect(driverAttach).not.toHaveBeenCalled();
      expect(driverDetach).not.toHaveBeenCalled();
      expect(await volumeEvents(id)).toEqual([]);
    });

    it('gives concurrent attaches to one instance distinct device names', async () => {
      const id = await activeInstance(stack);
      const commands = ['c1', 'c2', 'c3', 'c4'].map((v) =>
        buildCommand({
          operation: 'attach_volume',
          instance_id: id,
          args: { volume_id: `vol-${v}` },
          context: OWNER,
        }),
      );
      const handler = stack.handlers.attach_volume!;
      // Four Lambdas at once, one command each, all reading the same mappings.
      const responses = await Promise.all(
        commands.map((command, i) =>
          handler(
            { Records: [sqsRecord(JSON.stringify(command), `m-${i}`)] },
            fakeLambdaContext(`${stack.config.prefix}-attach_volume`, 60),
          ),
        ),
      );
      expect(responses.flatMap((r) => r?.batchItemFailures ?? [])).toEqual([]);
      const outcomes = await Promise.all(
        commands.map((c) => stack.store.findActionByCommand(c.command_id)),
      );
      expect(outcomes.map((a) => a?.status)).toEqual(Array(4).fill('succeeded'));
      const names = (await stack.store.getInstance(id))!.block_device_mapping.map(
        (b) => b.device_name,
      );
      expect(new Set(names).size).toBe(4);
      expect([...names].sort()).toEqual(['/dev/sdb', '/dev/sdc', '/dev/sdd', '/dev/sde']);
      expect(Object.keys(await guestVolumes(id)).sort()).toEqual([...names].sort());
    });
  });
}

function sqsRecord(body: string, messageId: string): SQSRecord {
  return {
    messageId,
    receiptHandle: messageId,
    body,
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: String(Date.now()),
      SenderId: '000000000000',
      ApproximateFirstReceiveTimestamp: String(Date.now()),
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:attach-volume',
    awsRegion: 'us-east-1',
  };
}
