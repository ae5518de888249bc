// shelve_instance, shelve_offload_instance and unshelve_instance through SQS: Nova's task walks
// and events, the shelved image and system metadata, offload now (shelved_offload_time 0) or
// later, unshelve on a chosen zone or back on the host, forbidden states, locks, driver
// failures, and completion from lifecycle events in the fake driver's asynchronous mode.

import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type * as Registry from '../../lib/compute/operations/registry.ts';
import { PowerState, TaskState, VmState } from '../../lib/compute/states.ts';
import { DynamoDbImageStore } from '../../lib/images/dynamodb-image-store.ts';
import { imageIdForCommand } from '../../lib/images/instance-images.ts';
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

vi.mock('../../lib/compute/operations/registry.ts', async (importOriginal) => {
  const original = await importOriginal<typeof Registry>();
  const ops = await import('../../lib/compute/operations/shelve.ts');
  return {
    OPERATION_HANDLERS: {
      ...original.OPERATION_HANDLERS,
      shelve_instance: ops.shelveInstance,
      shelve_offload_instance: ops.shelveOffloadInstance,
      unshelve_instance: ops.unshelveInstance,
    },
  };
});

const SHELVE_OPS = ['shelve_instance', 'shelve_offload_instance', 'unshelve_instance'] as const;
const TWO_ZONES = JSON.stringify([
  { node: 'fake-node-1', vcpus: 16, memory_mb: 32768, local_gb: 500, availability_zone: 'nova' },
  { node: 'fake-node-2', vcpus: 16, memory_mb: 32768, local_gb: 500, availability_zone: 'az-2' },
]);

function helpers(stack: () => TestStack) {
  return {
    images: () => new DynamoDbImageStore(stack().doc, stack().config.tables.state),
    guest: (node: string, id: string) =>
      new DynamoDbFakeHypervisorStore({
        client: stack().doc,
        tableName: stack().config.tables.fakeHypervisor,
      }).get(node, id),
    fakeDriver: async () => (await import('../../lib/virt/fake/driver.ts')).FakeDriver,
  };
}

for (const mode of ['sync', 'async'] as const) {
  describe(`shelve, offload later, unshelve (${mode} driver)`, () => {
    let stack: TestStack;
    const h = helpers(() => stack);

    beforeAll(async () => {
      stack = await startTestStack({
        label: `shelve-later-${mode}`,
        options: {
          notify_on_state_change: 'vm_and_task_state',
          fake_async: mode === 'async' ? 'true' : 'false',
          admin_producers: '["000000000000"]',
          shelved_offload_time: '-1',
          fake_nodes: TWO_ZONES,
        },
        operations: SHELVE_OPS,
      });
    });

    afterEach(() => vi.restoreAllMocks());

    it('shelves, offloads and unshelves into a chosen zone, with Nova’s states and events', async () => {
      const id = await activeInstance(stack, {
        display_name: 'web',
        availability_zone: 'nova',
        networks: [{ network_id: 'private' }],
      });
      const built = (await stack.store.getInstance(id))!;
      await stack.receiveEvents();

      const shelve = await run(stack, 'shelve_instance', id);
      const imageId = imageIdForCommand(shelve.command_id);
      expect(shelve).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'compute_shelve_instance', result: 'Success' }],
      });
      const shelved = (await stack.store.getInstance(id))!;
      expect(shelved).toMatchObject({
        vm_state: VmState.SHELVED,
        task_state: null,
        task_owner: null,
        power_state: PowerState.SHUTDOWN,
        host: 'stratus',
        node: built.node,
        system_metadata: { shelved_image_id: imageId, shelved_host: 'stratus' },
      });
      expect(Date.parse(shelved.system_metadata.shelved_at!)).not.toBeNaN();
      expect(await h.images().get(imageId)).toMatchObject({
        name: 'web-shelved',
        status: 'active',
        properties: { image_type: 'snapshot', instance_uuid: id, base_image_ref: 'img' },
      });
      expect((await h.guest(built.node!, id))?.powerState).toBe(PowerState.SHUTDOWN);
      expect(await eventTrail(stack, id)).toEqual([
        'update:active/shelving',
        'exists',
        'shelve.start',
        'update:active/shelving_image_pending_upload',
        'update:active/shelving_image_uploading',
        'update:shelved/-',
        'shelve.end',
      ]);

      const offload = await run(stack, 'shelve_offload_instance', id);
      expect(offload).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'compute_shelve_offload_instance', result: 'Success' }],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.SHELVED_OFFLOADED,
        task_state: null,
        power_state: PowerState.SHUTDOWN,
        host: null,
        node: null,
        availability_zone: null,
      });
      expect(await h.guest(built.node!, id)).toBeNull();
      expect(await eventTrail(stack, id)).toEqual([
        'update:shelved/shelving_offloading',
        'shelve_offload.start',
        'update:shelved_offloaded/-',
        'shelve_offload.end',
      ]);

      const unshelve = await run(stack, 'unshelve_instance', id, {
        args: { availability_zone: 'az-2' },
      });
      expect(unshelve).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'compute_unshelve_instance', result: 'Success' }],
      });
      const back = (await stack.store.getInstance(id))!;
      expect(back).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        power_state: PowerState.RUNNING,
        host: 'stratus',
        node: 'fake-node-2',
        availability_zone: 'az-2',
        image_ref: 'img',
        ports: built.ports,
        system_metadata: {},
      });
      expect(back.launched_at! > built.launched_at!).toBe(true);
      expect((await h.guest('fake-node-2', id))?.powerState).toBe(PowerState.RUNNING);
      expect((await h.images().get(imageId))?.status).toBe('deleted');
      expect(await eventTrail(stack, id)).toEqual([
        'update:shelved_offloaded/unshelving',
        'unshelve.start',
        'update:shelved_offloaded/spawning',
        'update:active/-',
        'unshelve.end',
      ]);
    });

    it('unshelves a SHELVED instance by starting the guest that is still on its host', async () => {
      const id = await activeInstance(stack);
      const shelve = await run(stack, 'shelve_instance', id);
      const node = (await stack.store.getInstance(id))!.node!;
      await stack.receiveEvents();
      const unshelve = await run(stack, 'unshelve_instance', id);
      expect(unshelve).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'compute_start_instance', result: 'Success' }],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        power_state: PowerState.RUNNING,
        node,
        system_metadata: {},
      });
      expect((await h.images().get(imageIdForCommand(shelve.command_id)))?.status).toBe('deleted');
      expect(await eventTrail(stack, id)).toEqual([
        'update:shelved/unshelving',
        'update:shelved/powering-on',
        'power_on.start',
        'update:active/-',
        'power_on.end',
      ]);
    });

    it('rejects every vm_state Nova forbids, changing nothing', async () => {
      const id = await activeInstance(stack);
      await expectForbiddenStatesRejected(stack, 'shelve_instance', id, [
        VmState.ACTIVE,
        VmState.STOPPED,
        VmState.PAUSED,
        VmState.SUSPENDED,
      ]);
      await expectForbiddenStatesRejected(stack, 'shelve_offload_instance', id, [VmState.SHELVED]);
      await expectForbiddenStatesRejected(stack, 'unshelve_instance', id, [
        VmState.SHELVED,
        VmState.SHELVED_OFFLOADED,
      ]);
    });

    it('rejects a locked instance for its owner and lets an admin through', async () => {
      const id = await activeInstance(stack);
      await forceState(stack, id, { locked: true, locked_by: 'admin' });
      for (const op of SHELVE_OPS) {
        if (op === 'shelve_offload_instance') {
          await forceState(stack, id, { vm_state: VmState.SHELVED });
        }
        const refused = await run(stack, op, id);
        expect(refused, op).toMatchObject({
          status: 'rejected',
          error_code: 'InstanceIsLocked',
          outcome: { error: { code: 409 } },
        });
        const admin = await run(stack, op, id, { roles: ['admin'] });
        expect(admin.status, op).toBe('succeeded');
      }
      expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.ACTIVE);
    });

    it('checks the requested zone: only for an offloaded instance, and only a real one', async () => {
      const id = await activeInstance(stack);
      await run(stack, 'shelve_instance', id);
      const notOffloaded = await run(stack, 'unshelve_instance', id, {
        args: { availability_zone: 'az-2' },
      });
      expect(notOffloaded).toMatchObject({ status: 'rejected', outcome: { error: { code: 409 } } });
      await run(stack, 'shelve_offload_instance', id);
      const unknown = await run(stack, 'unshelve_instance', id, {
        args: { availability_zone: 'atlantis' },
      });
      expect(unknown).toMatchObject({ status: 'rejected', outcome: { error: { code: 400 } } });
      expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.SHELVED_OFFLOADED);
    });

    it('reverts a shelve whose snapshot fails: fault, task None, the unfinished image gone', async () => {
      const id = await activeInstance(stack);
      const { DriverError } = await import('../../lib/virt/errors.ts');
      vi.spyOn((await h.fakeDriver()).prototype, 'snapshot').mockRejectedValueOnce(
        new DriverError('HypervisorUnavailable', 'snapshot upload failed'),
      );
      const shelve = await run(stack, 'shelve_instance', id);
      expect(shelve).toMatchObject({
        status: 'failed',
        events: [{ event: 'compute_shelve_instance', result: 'Error' }],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        task_owner: null,
      });
      expect((await stack.store.listFaults(id)).at(-1)?.message).toContain(
        'snapshot upload failed',
      );
      expect((await h.images().get(imageIdForCommand(shelve.command_id)))?.status).toBe('deleted');
    });

    it('reverts an offload whose destroy fails: still SHELVED on its host, with a fault', async () => {
      const id = await activeInstance(stack);
      await run(stack, 'shelve_instance', id);
      const { DriverError } = await import('../../lib/virt/errors.ts');
      vi.spyOn((await h.fakeDriver()).prototype, 'destroy').mockRejectedValueOnce(
        new DriverError('HypervisorUnavailable', 'the guest would not go'),
      );
      const offload = await run(stack, 'shelve_offload_instance', id);
      expect(offload.status).toBe('failed');
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.SHELVED,
        task_state: null,
        host: 'stratus',
      });
      expect((await stack.store.listFaults(id)).at(-1)?.message).toContain('would not go');
    });

    it('leaves a failed unshelve SHELVED_OFFLOADED with no host, keeping the image for a retry', async () => {
      const id = await activeInstance(stack);
      const shelve = await run(stack, 'shelve_instance', id);
      await run(stack, 'shelve_offload_instance', id);
      const { DriverError } = await import('../../lib/virt/errors.ts');
      vi.spyOn((await h.fakeDriver()).prototype, 'spawn').mockRejectedValueOnce(
        new DriverError('ComputeResourcesUnavailable', 'no room on the node'),
      );
      const unshelve = await run(stack, 'unshelve_instance', id);
      expect(unshelve).toMatchObject({
        status: 'failed',
        events: [{ event: 'compute_unshelve_instance', result: 'Error' }],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.SHELVED_OFFLOADED,
        task_state: null,
        host: null,
        node: null,
        availability_zone: null,
      });
      expect((await stack.store.listFaults(id)).at(-1)?.message).toContain('no room');
      const imageId = imageIdForCommand(shelve.command_id);
      expect((await h.images().get(imageId))?.status).toBe('active');

      const retry = await run(stack, 'unshelve_instance', id);
      expect(retry.status).toBe('succeeded');
      expect((await h.images().get(imageId))?.status).toBe('deleted');
    });
  });

  describe(`shelve with immediate offload (${mode} driver)`, () => {
    let stack: TestStack;
    const h = helpers(() => stack);

    beforeAll(async () => {
      stack = await startTestStack({
        label: `shelve-now-${mode}`,
        options: {
          notify_on_state_change: 'vm_and_task_state',
          fake_async: mode === 'async' ? 'true' : 'false',
          admin_producers: '["000000000000"]',
          shelved_offload_time: '0',
        },
        operations: SHELVE_OPS,
      });
    });

    afterEach(() => vi.restoreAllMocks());

    it('offloads in the same command when shelved_offload_time is 0', async () => {
      const id = await activeInstance(stack);
      const node = (await stack.store.getInstance(id))!.node!;
      await stack.receiveEvents();
      const shelve = await run(stack, 'shelve_instance', id);
      expect(shelve).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'compute_shelve_instance', result: 'Success' }],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.SHELVED_OFFLOADED,
        task_state: null,
        task_owner: null,
        power_state: PowerState.SHUTDOWN,
        host: null,
        node: null,
        system_metadata: { shelved_image_id: imageIdForCommand(shelve.command_id) },
      });
      expect(await h.guest(node, id)).toBeNull();
      expect(await eventTrail(stack, id)).toEqual([
        'update:active/shelving',
        'exists',
        'shelve.start',
        'update:active/shelving_image_pending_upload',
        'update:active/shelving_image_uploading',
        'update:shelved/shelving_offloading',
        'shelve.end',
        'shelve_offload.start',
        'update:shelved_offloaded/-',
        'shelve_offload.end',
      ]);
      expect((await run(stack, 'unshelve_instance', id)).status).toBe('succeeded');
      expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.ACTIVE);
    });

    // Only the asynchronous driver makes the command wait.
    if (mode === 'async') {
      it('waits for the power-off and the destroy events, each completing its step', async () => {
        const id = await activeInstance(stack);
        const command = buildCommand({
          operation: 'shelve_instance',
          instance_id: id,
          args: {},
          context: OWNER,
        });
        await stack.send('shelve_instance', command);
        await stack.drain('shelve_instance');
        // The guest is stopping: the command waits for its event, the task still SHELVING.
        expect((await stack.store.getInstance(id))?.task_state).toBe(TaskState.SHELVING);
        expect(await stack.store.findActionByCommand(command.command_id)).toMatchObject({
          status: 'running',
          progress: { pending_expect: 'stopped', awaiting: 'shelve_powered_off' },
        });
        // Its event goes on: snapshot, SHELVED, offload, and a wait for the destroy's event,
        // which the same lifecycle queue then delivers.
        await stack.drain('lifecycle');
        expect(await stack.store.getInstance(id)).toMatchObject({
          vm_state: VmState.SHELVED_OFFLOADED,
          task_state: null,
        });
        expect(await stack.store.findActionByCommand(command.command_id)).toMatchObject({
          status: 'succeeded',
          progress: { shelve_powered_off: true, offload_destroyed: true },
        });
      });
    }

    it('powers a PAUSED guest off without a clean shutdown', async () => {
      const id = await activeInstance(stack);
      await forceState(stack, id, { vm_state: VmState.PAUSED, power_state: PowerState.PAUSED });
      const powerOff = vi.spyOn((await h.fakeDriver()).prototype, 'powerOff');
      expect((await run(stack, 'shelve_instance', id)).status).toBe('succeeded');
      expect(powerOff.mock.calls[0]?.[2]).toEqual({ timeout: 0, retryInterval: 0 });
    });

    it('offloads a volume-backed instance straight away: nothing to snapshot', async () => {
      const id = await activeInstance(stack, {
        block_device_mapping: [{ volume_id: 'vol-root', boot_index: 0 }],
      });
      await stack.receiveEvents();
      const shelve = await run(stack, 'shelve_instance', id);
      expect(shelve.status).toBe('succeeded');
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.SHELVED_OFFLOADED,
        task_state: null,
      });
      expect(await h.images().get(imageIdForCommand(shelve.command_id))).toBeNull();
      expect(await eventTrail(stack, id)).toEqual([
        'update:active/shelving',
        'shelve_offload.start',
        'update:shelved_offloaded/-',
        'shelve_offload.end',
      ]);
    });

    it('rejects a shelve while another task runs', async () => {
      const id = await activeInstance(stack);
      await forceState(stack, id, { task_state: TaskState.PAUSING, task_owner: 'other' });
      const refused = await run(stack, 'shelve_instance', id);
      expect(refused).toMatchObject({ status: 'rejected', outcome: { error: { code: 409 } } });
    });
  });
}
