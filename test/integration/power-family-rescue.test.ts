// rescue and unrescue through SQS: Nova's states, notifications (rescue_image_name, fixed_ips,
// the mid-period exists of the incarnation that ends), the rescue password kept secret,
// forbidden states, locks, and the failure rules (rescue: ERROR + InstanceNotRescuable;
// unrescue: NotSupported → ACTIVE, other errors → ERROR).

import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { PowerState, VmState } from '../../lib/compute/states.ts';
import {
  activeInstance,
  expectForbiddenStatesRejected,
  forceState,
  run,
} from '../support/operations.ts';
import { type TestStack, startTestStack } from '../support/stack.ts';
import type * as Registry from '../../lib/compute/operations/registry.ts';

vi.mock('../../lib/compute/operations/registry.ts', async (importOriginal) => {
  const original = await importOriginal<typeof Registry>();
  const ops = await import('../../lib/compute/operations/rescue.ts');
  return {
    OPERATION_HANDLERS: {
      ...original.OPERATION_HANDLERS,
      rescue_instance: ops.rescueInstance,
      unrescue_instance: ops.unrescueInstance,
    },
  };
});

/** `YYYY-MM-DD hh:mm:ss.ssssss`, the legacy payload format of launched_at. */
function legacy(iso: string): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}000`;
}

for (const mode of ['sync', 'async'] as const) {
  describe(`rescue and unrescue (${mode} driver)`, () => {
    let stack: TestStack;

    beforeAll(async () => {
      stack = await startTestStack({
        label: `rescue-${mode}`,
        options: {
          notify_on_state_change: 'vm_and_task_state',
          fake_async: mode === 'async' ? 'true' : 'false',
          admin_producers: '["000000000000"]',
        },
        operations: ['rescue_instance', 'unrescue_instance'],
      });
    });

    afterEach(() => vi.restoreAllMocks());

    async function fakeDriver() {
      return (await import('../../lib/virt/fake/driver.ts')).FakeDriver;
    }
    async function virtErrors() {
      return import('../../lib/virt/errors.ts');
    }

    it('rescues and unrescues with Nova’s states and notifications', async () => {
      const id = await activeInstance(stack, { networks: [{ network_id: 'private' }] });
      const before = (await stack.store.getInstance(id))!;
      await stack.receiveEvents();
      const FakeDriver = await fakeDriver();
      const powerOff = vi.spyOn(FakeDriver.prototype, 'powerOff');
      const rescueCall = vi.spyOn(FakeDriver.prototype, 'rescue');

      const rescue = await run(stack, 'rescue_instance', id, {
        args: { rescue_image_ref: 'rescue-img' },
      });
      expect(rescue).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'compute_rescue_instance', result: 'Success' }],
      });
      const rescued = (await stack.store.getInstance(id))!;
      expect(rescued).toMatchObject({
        vm_state: VmState.RESCUED,
        task_state: null,
        task_owner: null,
        power_state: PowerState.RUNNING,
      });
      expect(rescued.launched_at).not.toBe(before.launched_at);
      // Powered off (cleanly) first, then rescued.
      expect(powerOff.mock.calls[0]?.[2]).toEqual({ timeout: 60, retryInterval: 10 });
      expect(powerOff.mock.invocationCallOrder[0]).toBeLessThan(
        rescueCall.mock.invocationCallOrder[0]!,
      );
      expect(rescueCall.mock.calls[0]?.[2]).toMatchObject({
        rescueImageRef: 'rescue-img',
        rescuePassword: null,
      });

      const events = (await stack.receiveEvents()).filter((e) => e.resources.includes(id));
      expect(events.map((e) => e['detail-type'].replace('compute.instance.', ''))).toEqual([
        'update',
        'rescue.start',
        'exists',
        'update',
        'rescue.end',
      ]);
      const byType = (t: string) => events.find((e) => e['detail-type'] === t)!.detail.payload;
      for (const t of ['compute.instance.rescue.start', 'compute.instance.rescue.end']) {
        expect(byType(t)).toMatchObject({ rescue_image_name: 'rescue-img' });
        expect(byType(t).fixed_ips).toEqual([
          expect.objectContaining({ address: expect.any(String), type: 'fixed' }),
        ]);
      }
      // The exists closes the incarnation that ends here: the old launched_at.
      expect(byType('compute.instance.exists')).toMatchObject({
        launched_at: legacy(before.launched_at!),
        state: VmState.ACTIVE,
        audit_period_beginning: expect.any(String),
        audit_period_ending: expect.any(String),
      });
      expect(byType('compute.instance.rescue.end')).toMatchObject({
        state: VmState.RESCUED,
        launched_at: legacy(rescued.launched_at!),
      });

      const unrescue = await run(stack, 'unrescue_instance', id);
      expect(unrescue.status).toBe('succeeded');
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        power_state: PowerState.RUNNING,
      });
      const after = (await stack.receiveEvents()).filter((e) => e.resources.includes(id));
      expect(after.map((e) => e['detail-type'].replace('compute.instance.', ''))).toEqual([
        'update',
        'unrescue.start',
        'update',
        'unrescue.end',
      ]);
      expect(after[1]?.detail.payload.fixed_ips).toHaveLength(1);
    });

    it('hands the rescue password to the driver and to nothing else', async () => {
      const id = await activeInstance(stack);
      const secret = `Rescue-${Math.random().toString(36).slice(2)}-Secret`;
      const rescueCall = vi.spyOn((await fakeDriver()).prototype, 'rescue');
      const rescue = await run(stack, 'rescue_instance', id, {
        args: { rescue_password: secret },
      });
      expect(rescue.status).toBe('succeeded');
      expect(rescueCall.mock.calls[0]?.[2]).toMatchObject({ rescuePassword: secret });
      const stored = JSON.stringify([
        await stack.store.getInstance(id),
        await stack.store.listActions(id),
        await stack.store.listFaults(id),
        await stack.receiveEvents(),
      ]);
      expect(stored).not.toContain(secret);
    });

    it('defaults the rescue image to the instance’s own', async () => {
      const id = await activeInstance(stack, { image_ref: 'img-own' });
      await stack.receiveEvents();
      expect((await run(stack, 'rescue_instance', id)).status).toBe('succeeded');
      const start = (await stack.receiveEvents()).find(
        (e) => e['detail-type'] === 'compute.instance.rescue.start',
      );
      expect(start?.detail.payload.rescue_image_name).toBe('img-own');
    });

    it('rescues STOPPED and ERROR instances too', async () => {
      for (const vm of [VmState.STOPPED, VmState.ERROR]) {
        const id = await activeInstance(stack);
        await forceState(stack, id, { vm_state: vm });
        expect((await run(stack, 'rescue_instance', id)).status, vm).toBe('succeeded');
        expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.RESCUED);
      }
    });

    it('rejects every vm_state Nova forbids, changing nothing', async () => {
      const id = await activeInstance(stack);
      await expectForbiddenStatesRejected(stack, 'rescue_instance', id, [
        VmState.ACTIVE,
        VmState.STOPPED,
        VmState.ERROR,
      ]);
      await expectForbiddenStatesRejected(stack, 'unrescue_instance', id, [VmState.RESCUED]);
    });

    it('rejects a locked instance for its owner and lets an admin through', async () => {
      const id = await activeInstance(stack);
      await forceState(stack, id, { locked: true, locked_by: 'admin' });
      for (const op of ['rescue_instance', 'unrescue_instance'] as const) {
        const before = (await stack.store.getInstance(id))!;
        const refused = await run(stack, op, id);
        expect(refused, op).toMatchObject({
          status: 'rejected',
          error_code: 'InstanceIsLocked',
          outcome: { error: { code: 409 } },
        });
        expect((await stack.store.getInstance(id))?.version).toBe(before.version);
        expect((await run(stack, op, id, { roles: ['admin'] })).status, op).toBe('succeeded');
      }
      expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.ACTIVE);
    });

    it('errors the instance out when the driver cannot rescue it', async () => {
      const id = await activeInstance(stack);
      const { DriverError } = await virtErrors();
      vi.spyOn((await fakeDriver()).prototype, 'rescue').mockRejectedValueOnce(
        new DriverError('HypervisorUnavailable', 'rescue disk missing'),
      );
      const rescue = await run(stack, 'rescue_instance', id);
      expect(rescue).toMatchObject({
        status: 'failed',
        events: [{ event: 'compute_rescue_instance', result: 'Error' }],
        outcome: {
          error: {
            code: 500,
            message: `Instance ${id} cannot be rescued: Driver Error: rescue disk missing`,
          },
        },
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ERROR,
        task_state: null,
        task_owner: null,
      });
      expect((await stack.store.listFaults(id)).at(-1)?.message).toContain('cannot be rescued');
    });

    it('a failed power off before the rescue is an ERROR too', async () => {
      const id = await activeInstance(stack);
      const { DriverError } = await virtErrors();
      vi.spyOn((await fakeDriver()).prototype, 'powerOff').mockRejectedValueOnce(
        new DriverError('InstancePowerOffFailure', 'stuck'),
      );
      expect((await run(stack, 'rescue_instance', id)).status).toBe('failed');
      expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.ERROR);
    });

    it('a driver without rescue is answered 501 (and the instance is ERROR, as Nova)', async () => {
      const id = await activeInstance(stack);
      const { NotSupportedError } = await virtErrors();
      vi.spyOn((await fakeDriver()).prototype, 'rescue').mockRejectedValueOnce(
        new NotSupportedError('fake', 'rescue'),
      );
      const rescue = await run(stack, 'rescue_instance', id);
      expect(rescue).toMatchObject({ status: 'failed', outcome: { error: { code: 501 } } });
      expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.ERROR);
    });

    it('unrescue: NotSupported → ACTIVE (501); any other error → ERROR', async () => {
      const id = await activeInstance(stack);
      await run(stack, 'rescue_instance', id);
      const { DriverError, NotSupportedError } = await virtErrors();
      const unrescue = vi.spyOn((await fakeDriver()).prototype, 'unrescue');
      unrescue.mockRejectedValueOnce(new NotSupportedError('fake', 'unrescue'));
      const unsupported = await run(stack, 'unrescue_instance', id);
      expect(unsupported).toMatchObject({ status: 'failed', outcome: { error: { code: 501 } } });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
      });

      await forceState(stack, id, { vm_state: VmState.RESCUED });
      unrescue.mockRejectedValueOnce(new DriverError('InstanceUnRescueFailure', 'no'));
      expect((await run(stack, 'unrescue_instance', id)).status).toBe('failed');
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ERROR,
        task_state: null,
      });
      expect(await stack.store.listFaults(id)).toHaveLength(2);
    });

    it('finishes a rescue the platform reports later, naming the rescue image', async () => {
      const id = await activeInstance(stack);
      const FakeDriver = await fakeDriver();
      const original = FakeDriver.prototype.rescue;
      // A platform that answers `pending` and reports the guest's start as an event.
      vi.spyOn(FakeDriver.prototype, 'rescue').mockImplementationOnce(async function (
        this: InstanceType<typeof FakeDriver>,
        ctx,
        instance,
        request,
      ) {
        await original.call(this, ctx, instance, request);
        await this.emitEvent({
          instanceId: instance.instance_id,
          transition: 'started',
          node: instance.node!,
          occurredAt: new Date().toISOString(),
          source: 'fake',
          sequence: Date.now() * 1000,
        });
        return { status: 'pending', expect: 'started', deadlineSeconds: 300 };
      });
      await stack.receiveEvents();
      const rescue = await run(stack, 'rescue_instance', id, {
        args: { rescue_image_ref: 'later-img' },
      });
      expect(rescue.status).toBe('succeeded');
      expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.RESCUED);
      const events = (await stack.receiveEvents()).filter((e) => e.resources.includes(id));
      expect(events.map((e) => e['detail-type'].replace('compute.instance.', ''))).toEqual([
        'update',
        'rescue.start',
        'exists',
        'update',
        'rescue.end',
      ]);
      expect(events.at(-1)?.detail.payload.rescue_image_name).toBe('later-img');
    });
  });
}
