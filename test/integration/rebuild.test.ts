// rebuild_instance through SQS: Nova's default rebuild (the fake driver has none: power off,
// destroy, spawn the new image), the mid-period exists that carries the OLD image, the
// REBUILDING → REBUILD_BLOCK_DEVICE_MAPPING → REBUILD_SPAWNING walk, a STOPPED instance stopped
// again, secrets kept to the driver, forbidden states, locks, and the failure rules (ERROR +
// rebuild.error; NotSupported puts the original vm_state back).

import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type * as Registry from '../../lib/compute/operations/registry.ts';
import { PowerState, VmState } from '../../lib/compute/states.ts';
import { DynamoDbImageStore } from '../../lib/images/dynamodb-image-store.ts';
import { imageIdForCommand } from '../../lib/images/instance-images.ts';
import type { SpawnRequest } from '../../lib/virt/driver.ts';
import {
  activeInstance,
  eventTrail,
  expectForbiddenStatesRejected,
  forceState,
  run,
} from '../support/operations.ts';
import { type ReceivedEvent, type TestStack, startTestStack } from '../support/stack.ts';

vi.mock('../../lib/compute/operations/registry.ts', async (importOriginal) => {
  const original = await importOriginal<typeof Registry>();
  const rebuild = await import('../../lib/compute/operations/rebuild.ts');
  const snapshot = await import('../../lib/compute/operations/snapshot.ts');
  return {
    OPERATION_HANDLERS: {
      ...original.OPERATION_HANDLERS,
      rebuild_instance: rebuild.rebuildInstance,
      snapshot_instance: snapshot.snapshotInstance,
    },
  };
});

const SECRET = 'hunter2-very-secret';

function summary(events: ReceivedEvent[], instanceId: string) {
  return events
    .filter((e) => e.resources.includes(instanceId))
    .map((e) => ({
      type: e['detail-type'].replace('compute.instance.', ''),
      payload: e.detail.payload,
    }));
}

for (const mode of ['sync', 'async'] as const) {
  describe(`rebuild (${mode} driver)`, () => {
    let stack: TestStack;

    beforeAll(async () => {
      stack = await startTestStack({
        label: `rebuild-${mode}`,
        options: {
          notify_on_state_change: 'vm_and_task_state',
          fake_async: mode === 'async' ? 'true' : 'false',
          admin_producers: '["000000000000"]',
        },
        operations: ['rebuild_instance', 'stop_instance', 'snapshot_instance'],
      });
    });

    afterEach(() => vi.restoreAllMocks());

    async function fakeDriver() {
      return (await import('../../lib/virt/fake/driver.ts')).FakeDriver;
    }

    it('rebuilds an ACTIVE instance from a new image, the exists first with the old one', async () => {
      const id = await activeInstance(stack, { networks: [{ network_id: 'private' }] });
      const built = (await stack.store.getInstance(id))!;
      const FakeDriver = await fakeDriver();
      const powerOff = vi.spyOn(FakeDriver.prototype, 'powerOff');
      const destroy = vi.spyOn(FakeDriver.prototype, 'destroy');
      const spawn = vi.spyOn(FakeDriver.prototype, 'spawn');
      await stack.receiveEvents();

      const rebuild = await run(stack, 'rebuild_instance', id, {
        args: {
          image_ref: 'img-2',
          admin_password: SECRET,
          injected_files: [{ path: '/etc/motd', contents: Buffer.from(SECRET).toString('base64') }],
          display_name: 'renamed',
          metadata: { role: 'db' },
        },
      });
      expect(rebuild).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'compute_rebuild_instance', result: 'Success' }],
      });
      const after = (await stack.store.getInstance(id))!;
      expect(after).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        task_owner: null,
        power_state: PowerState.RUNNING,
        image_ref: 'img-2',
        display_name: 'renamed',
        metadata: { role: 'db' },
        node: built.node,
        ports: built.ports,
      });
      expect(after.launched_at! > built.launched_at!).toBe(true);

      // Nova's default rebuild: the old guest off and gone, the new one spawned with the secrets.
      expect(powerOff).toHaveBeenCalledTimes(1);
      expect(destroy).toHaveBeenCalledTimes(1);
      expect(spawn).toHaveBeenCalledTimes(1);
      const request = spawn.mock.calls[0]![2] as SpawnRequest;
      expect(request).toMatchObject({ imageRef: 'img-2', adminPassword: SECRET, powerOn: true });
      expect(request.injectedFiles).toHaveLength(1);

      const events = summary(await stack.receiveEvents(), id);
      expect(
        events.map((e) =>
          e.type === 'update'
            ? `update:${String(e.payload.state)}/${String(e.payload.new_task_state ?? '-')}`
            : e.type,
        ),
      ).toEqual([
        'update:active/rebuilding',
        'exists',
        'rebuild.start',
        'update:active/rebuild_block_device_mapping',
        'update:active/rebuild_spawning',
        'update:active/-',
        'rebuild.end',
      ]);
      const exists = events.find((e) => e.type === 'exists')!.payload;
      expect(exists).toMatchObject({
        image_ref_url: 'img',
        audit_period_ending: expect.any(String),
      });
      expect(events.find((e) => e.type === 'rebuild.start')!.payload).toMatchObject({
        image_ref_url: 'img-2',
        image_name: 'img-2',
      });
      expect(events.find((e) => e.type === 'rebuild.end')!.payload).toMatchObject({
        image_name: 'img-2',
        fixed_ips: [expect.objectContaining({ label: 'private' })],
      });

      // The secrets reached the driver and nothing else.
      expect(JSON.stringify(events)).not.toContain(SECRET);
      expect(JSON.stringify(await stack.store.listActions(id))).not.toContain(SECRET);
      expect(JSON.stringify(after)).not.toContain(SECRET);
    });

    it('rebuilds a STOPPED instance and stops it again, as Nova’s stop_instance', async () => {
      const id = await activeInstance(stack);
      expect((await run(stack, 'stop_instance', id)).status).toBe('succeeded');
      const powerOff = vi.spyOn((await fakeDriver()).prototype, 'powerOff');
      await stack.receiveEvents();
      const rebuild = await run(stack, 'rebuild_instance', id, { args: { image_ref: 'img-2' } });
      expect(rebuild.status).toBe('succeeded');
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.STOPPED,
        task_state: null,
        task_owner: null,
        power_state: PowerState.SHUTDOWN,
        image_ref: 'img-2',
      });
      // The old guest cleanly, the rebuilt one forced (stop_instance(clean_shutdown=False)).
      expect(powerOff.mock.calls.map((c) => c[2])).toEqual([
        { timeout: 60, retryInterval: 10 },
        { timeout: 0, retryInterval: 0 },
      ]);
      expect(await eventTrail(stack, id)).toEqual([
        'update:stopped/rebuilding',
        'exists',
        'rebuild.start',
        'update:stopped/rebuild_block_device_mapping',
        'update:stopped/rebuild_spawning',
        'update:active/powering-off',
        'power_off.start',
        'update:stopped/-',
        'power_off.end',
        'rebuild.end',
      ]);
    });

    it('recovers an ERROR instance whose guest is gone', async () => {
      const id = await activeInstance(stack);
      const { node } = (await stack.store.getInstance(id))!;
      const FakeDriver = await fakeDriver();
      await forceState(stack, id, { vm_state: VmState.ERROR });
      // The hypervisor lost the guest: power off and destroy find nothing, spawn brings it back.
      vi.spyOn(FakeDriver.prototype, 'powerOff').mockRejectedValueOnce(
        new (await import('../../lib/errors.ts')).InstanceNotFoundError(id),
      );
      const rebuild = await run(stack, 'rebuild_instance', id, { args: { image_ref: 'img' } });
      expect(rebuild.status).toBe('succeeded');
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        power_state: PowerState.RUNNING,
        node,
      });
    });

    it('rebuilds from a snapshot Stratus made, taking its name and metadata', async () => {
      const id = await activeInstance(stack);
      const snap = await run(stack, 'snapshot_instance', id, { args: { image_name: 'golden' } });
      const imageId = imageIdForCommand(snap.command_id);
      await stack.receiveEvents();
      const rebuild = await run(stack, 'rebuild_instance', id, { args: { image_ref: imageId } });
      expect(rebuild.status).toBe('succeeded');
      expect(await stack.store.getInstance(id)).toMatchObject({
        image_ref: imageId,
        image_meta: { base_image_ref: 'img', image_type: 'snapshot', instance_uuid: id },
      });
      const start = summary(await stack.receiveEvents(), id).find(
        (e) => e.type === 'rebuild.start',
      );
      expect(start?.payload.image_name).toBe('golden');

      const images = new DynamoDbImageStore(stack.doc, stack.config.tables.state);
      await images.delete(imageId);
      const refused = await run(stack, 'rebuild_instance', id, { args: { image_ref: imageId } });
      expect(refused).toMatchObject({ status: 'rejected', outcome: { error: { code: 400 } } });
    });

    it('rejects every vm_state Nova forbids, changing nothing', async () => {
      const id = await activeInstance(stack);
      await expectForbiddenStatesRejected(
        stack,
        'rebuild_instance',
        id,
        [VmState.ACTIVE, VmState.STOPPED, VmState.ERROR],
        { args: { image_ref: 'img-2' } },
      );
    });

    it('rejects a locked instance for its owner and lets an admin through', async () => {
      const id = await activeInstance(stack);
      await forceState(stack, id, { locked: true, locked_by: 'admin' });
      const refused = await run(stack, 'rebuild_instance', id, { args: { image_ref: 'img-2' } });
      expect(refused).toMatchObject({
        status: 'rejected',
        error_code: 'InstanceIsLocked',
        outcome: { error: { code: 409 } },
      });
      expect((await stack.store.getInstance(id))?.image_ref).toBe('img');
      const admin = await run(stack, 'rebuild_instance', id, {
        args: { image_ref: 'img-2' },
        roles: ['admin'],
      });
      expect(admin.status).toBe('succeeded');
      expect((await stack.store.getInstance(id))?.image_ref).toBe('img-2');
    });

    it('errors the instance out when the spawn fails: ERROR, fault, rebuild.error', async () => {
      const id = await activeInstance(stack);
      const { DriverError } = await import('../../lib/virt/errors.ts');
      vi.spyOn((await fakeDriver()).prototype, 'spawn').mockRejectedValueOnce(
        new DriverError('HypervisorUnavailable', 'the new disk would not boot'),
      );
      await stack.receiveEvents();
      const rebuild = await run(stack, 'rebuild_instance', id, { args: { image_ref: 'img-2' } });
      expect(rebuild).toMatchObject({
        status: 'failed',
        outcome: { error: { code: 500 } },
        events: [{ event: 'compute_rebuild_instance', result: 'Error' }],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ERROR,
        task_state: null,
        task_owner: null,
      });
      expect((await stack.store.listFaults(id)).at(-1)?.message).toContain('would not boot');
      const trail = await eventTrail(stack, id);
      expect(trail.slice(-3)).toEqual([
        'update:active/rebuild_spawning',
        'update:error/-',
        'rebuild.error',
      ]);
    });

    it('puts the original vm_state back when the driver cannot do it (501)', async () => {
      const id = await activeInstance(stack);
      const { NotSupportedError } = await import('../../lib/virt/errors.ts');
      vi.spyOn((await fakeDriver()).prototype, 'spawn').mockRejectedValueOnce(
        new NotSupportedError('fake', 'spawn'),
      );
      const rebuild = await run(stack, 'rebuild_instance', id, { args: { image_ref: 'img-2' } });
      expect(rebuild).toMatchObject({ status: 'failed', outcome: { error: { code: 501 } } });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
      });
      expect(await stack.store.listFaults(id)).toHaveLength(1);
    });

    it('fails preserve_ephemeral with the default rebuild, as Nova does', async () => {
      const id = await activeInstance(stack);
      const destroy = vi.spyOn((await fakeDriver()).prototype, 'destroy');
      const rebuild = await run(stack, 'rebuild_instance', id, {
        args: { image_ref: 'img-2', preserve_ephemeral: true },
      });
      expect(rebuild).toMatchObject({ status: 'failed', outcome: { error: { code: 400 } } });
      expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.ERROR);
      expect(destroy).not.toHaveBeenCalled();
    });
  });
}
