// soft_delete_instance and restore_instance through SQS: Nova's states and events, the driver
// fallbacks (soft_delete → forced power off, restore → power on), soft delete taking any task,
// forbidden states, locks, failures, and instances without a host.

import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ALL_VM_STATES, PowerState, TaskState, VmState } from '../../lib/compute/states.ts';
import {
  activeInstance,
  eventTrail,
  expectForbiddenStatesRejected,
  forceState,
  run,
} from '../support/operations.ts';
import { type TestStack, startTestStack } from '../support/stack.ts';
import type * as Registry from '../../lib/compute/operations/registry.ts';

vi.mock('../../lib/compute/operations/registry.ts', async (importOriginal) => {
  const original = await importOriginal<typeof Registry>();
  const ops = await import('../../lib/compute/operations/soft-delete.ts');
  return {
    OPERATION_HANDLERS: {
      ...original.OPERATION_HANDLERS,
      soft_delete_instance: ops.softDeleteInstance,
      restore_instance: ops.restoreInstance,
    },
  };
});

for (const mode of ['sync', 'async'] as const) {
  describe(`soft delete and restore (${mode} driver)`, () => {
    let stack: TestStack;

    beforeAll(async () => {
      stack = await startTestStack({
        label: `soft-delete-${mode}`,
        options: {
          notify_on_state_change: 'vm_and_task_state',
          fake_async: mode === 'async' ? 'true' : 'false',
          admin_producers: '["000000000000"]',
        },
        operations: ['soft_delete_instance', 'restore_instance'],
      });
    });

    afterEach(() => vi.restoreAllMocks());

    async function fakeDriver() {
      return (await import('../../lib/virt/fake/driver.ts')).FakeDriver;
    }
    async function virtErrors() {
      return import('../../lib/virt/errors.ts');
    }

    it('soft-deletes and restores with Nova’s states and events', async () => {
      const id = await activeInstance(stack);
      await stack.receiveEvents();

      const del = await run(stack, 'soft_delete_instance', id);
      expect(del).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'compute_soft_delete_instance', result: 'Success' }],
      });
      const deleted = await stack.store.getInstance(id);
      expect(deleted).toMatchObject({
        vm_state: VmState.SOFT_DELETED,
        task_state: null,
        task_owner: null,
        power_state: PowerState.SHUTDOWN,
        deleted: false,
        progress: 0,
      });
      expect(deleted?.deleted_at).toEqual(expect.any(String));
      expect(await eventTrail(stack, id)).toEqual([
        'update:active/soft-deleting',
        'soft_delete.start',
        'update:soft-delete/-',
        'soft_delete.end',
      ]);

      const restore = await run(stack, 'restore_instance', id);
      expect(restore).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'compute_restore_instance', result: 'Success' }],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        power_state: PowerState.RUNNING,
        deleted_at: null,
      });
      expect(await eventTrail(stack, id)).toEqual([
        'update:soft-delete/restoring',
        'restore.start',
        'update:active/-',
        'restore.end',
      ]);
    });

    it('falls back to a forced power off and a power on when the driver has neither', async () => {
      const id = await activeInstance(stack);
      const FakeDriver = await fakeDriver();
      const { NotSupportedError } = await virtErrors();
      vi.spyOn(FakeDriver.prototype, 'softDelete').mockRejectedValue(
        new NotSupportedError('fake', 'soft_delete'),
      );
      vi.spyOn(FakeDriver.prototype, 'restore').mockRejectedValue(
        new NotSupportedError('fake', 'restore'),
      );
      const powerOff = vi.spyOn(FakeDriver.prototype, 'powerOff');
      const powerOn = vi.spyOn(FakeDriver.prototype, 'powerOn');

      expect((await run(stack, 'soft_delete_instance', id)).status).toBe('succeeded');
      expect(powerOff.mock.calls[0]?.[2]).toEqual({ timeout: 0, retryInterval: 0 });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.SOFT_DELETED,
        power_state: PowerState.SHUTDOWN,
      });

      expect((await run(stack, 'restore_instance', id)).status).toBe('succeeded');
      expect(powerOn).toHaveBeenCalledTimes(1);
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        power_state: PowerState.RUNNING,
      });
    });

    it('soft-deletes from any vm_state; only a delete in progress refuses it', async () => {
      for (const vm of ALL_VM_STATES.filter((v) => v !== VmState.DELETED)) {
        const id = await activeInstance(stack);
        await forceState(stack, id, { vm_state: vm });
        expect((await run(stack, 'soft_delete_instance', id)).status, vm).toBe('succeeded');
        expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.SOFT_DELETED);
      }
      const id = await activeInstance(stack);
      for (const task of [TaskState.DELETING, TaskState.SOFT_DELETING]) {
        const before = await forceState(stack, id, { task_state: task, task_owner: 'other' });
        const refused = await run(stack, 'soft_delete_instance', id);
        expect(refused, task).toMatchObject({
          status: 'rejected',
          error_code: 'InstanceInvalidState',
          outcome: { error: { code: 409 } },
        });
        expect((await stack.store.getInstance(id))?.version).toBe(before.version);
      }
    });

    it('refuses to soft-delete an instance that never launched', async () => {
      const id = await activeInstance(stack);
      const before = await forceState(stack, id, { launched_at: null });
      const refused = await run(stack, 'soft_delete_instance', id);
      expect(refused).toMatchObject({ status: 'rejected', outcome: { error: { code: 409 } } });
      expect((await stack.store.getInstance(id))?.version).toBe(before.version);
    });

    it('takes the task of a stuck operation and ends that operation', async () => {
      const id = await activeInstance(stack);
      vi.spyOn((await fakeDriver()).prototype, 'powerOff').mockResolvedValueOnce({
        status: 'pending',
        expect: 'stopped',
        deadlineSeconds: 300,
      });
      const stop = await run(stack, 'stop_instance', id);
      expect(stop.status).toBe('running');
      const del = await run(stack, 'soft_delete_instance', id);
      expect(del.status).toBe('succeeded');
      expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.SOFT_DELETED);
      expect(await stack.store.findActionByCommand(stop.command_id)).toMatchObject({
        status: 'failed',
        error_code: 'UnexpectedTaskState',
      });
    });

    it('restore: rejects every vm_state but SOFT_DELETED, changing nothing', async () => {
      const id = await activeInstance(stack);
      await expectForbiddenStatesRejected(stack, 'restore_instance', id, [VmState.SOFT_DELETED]);
    });

    it('rejects a locked instance for its owner and lets an admin through', async () => {
      const id = await activeInstance(stack);
      await forceState(stack, id, { locked: true, locked_by: 'admin' });
      for (const op of ['soft_delete_instance', 'restore_instance'] as const) {
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

    it('soft delete: a driver failure reverts the task, records a fault, still ends the event pair', async () => {
      const id = await activeInstance(stack);
      const { DriverError } = await virtErrors();
      vi.spyOn((await fakeDriver()).prototype, 'softDelete').mockRejectedValueOnce(
        new DriverError('HypervisorUnavailable', 'hypervisor offline'),
      );
      await stack.receiveEvents();
      const del = await run(stack, 'soft_delete_instance', id);
      expect(del).toMatchObject({
        status: 'failed',
        events: [{ event: 'compute_soft_delete_instance', result: 'Error' }],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        task_owner: null,
      });
      expect((await stack.store.listFaults(id)).at(-1)?.message).toContain('hypervisor offline');
      expect(await eventTrail(stack, id)).toEqual([
        'update:active/soft-deleting',
        'soft_delete.start',
        'soft_delete.end',
        'update:active/-',
      ]);
    });

    it('restore: a driver failure reverts the task (still SOFT_DELETED)', async () => {
      const id = await activeInstance(stack);
      await run(stack, 'soft_delete_instance', id);
      const { DriverError } = await virtErrors();
      vi.spyOn((await fakeDriver()).prototype, 'restore').mockRejectedValueOnce(
        new DriverError('InstancePowerOnFailure', 'no capacity'),
      );
      const restore = await run(stack, 'restore_instance', id);
      expect(restore).toMatchObject({
        status: 'failed',
        events: [{ event: 'compute_restore_instance', result: 'Error' }],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.SOFT_DELETED,
        task_state: null,
      });
      expect((await stack.store.listFaults(id)).at(-1)?.message).toContain('no capacity');
    });

    it('soft-deletes and restores an instance without a host in place, as Nova’s API does', async () => {
      const id = await activeInstance(stack);
      await forceState(stack, id, { host: null, node: null });
      await stack.receiveEvents();
      const softDelete = vi.spyOn((await fakeDriver()).prototype, 'softDelete');

      expect((await run(stack, 'soft_delete_instance', id)).status).toBe('succeeded');
      const deleted = await stack.store.getInstance(id);
      expect(deleted).toMatchObject({ vm_state: VmState.SOFT_DELETED, task_state: null });
      expect(deleted?.terminated_at).toEqual(expect.any(String));
      expect(softDelete).not.toHaveBeenCalled();
      expect(await eventTrail(stack, id)).toEqual([
        'update:active/soft-deleting',
        'delete.start',
        'update:soft-delete/-',
        'delete.end',
      ]);

      const restore = vi.spyOn((await fakeDriver()).prototype, 'restore');
      expect((await run(stack, 'restore_instance', id)).status).toBe('succeeded');
      expect(restore).not.toHaveBeenCalled();
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        deleted_at: null,
      });
      expect(await eventTrail(stack, id)).toEqual(['update:active/-']);
    });
  });
}
