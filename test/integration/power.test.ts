// stop_instance and start_instance through SQS: Nova's states and events, forbidden states,
// locks, driver failures, and completion from lifecycle events in the fake driver's async mode.

import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { PowerState, TaskState, VmState } from '../../lib/compute/states.ts';
import { DriverError } from '../../lib/virt/errors.ts';
import {
  activeInstance,
  eventTrail,
  expectForbiddenStatesRejected,
  forceState,
  run,
} from '../support/operations.ts';
import { type TestStack, startTestStack } from '../support/stack.ts';

for (const mode of ['sync', 'async'] as const) {
  describe(`stop and start (${mode} driver)`, () => {
    let stack: TestStack;

    beforeAll(async () => {
      stack = await startTestStack({
        label: `power-${mode}`,
        options: {
          notify_on_state_change: 'vm_and_task_state',
          fake_async: mode === 'async' ? 'true' : 'false',
          admin_producers: '["000000000000"]',
        },
      });
    });

    afterEach(() => vi.restoreAllMocks());

    it('stops an ACTIVE instance and starts it again, with Nova’s states and events', async () => {
      const id = await activeInstance(stack);
      await stack.receiveEvents();

      const stop = await run(stack, 'stop_instance', id);
      expect(stop).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'compute_stop_instance', result: 'Success' }],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.STOPPED,
        task_state: null,
        task_owner: null,
        power_state: PowerState.SHUTDOWN,
      });
      expect(await eventTrail(stack, id)).toEqual([
        'update:active/powering-off',
        'power_off.start',
        'update:stopped/-',
        'power_off.end',
      ]);

      const start = await run(stack, 'start_instance', id);
      expect(start.status).toBe('succeeded');
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        power_state: PowerState.RUNNING,
      });
      expect(await eventTrail(stack, id)).toEqual([
        'update:stopped/powering-on',
        'power_on.start',
        'update:active/-',
        'power_on.end',
      ]);
    });

    it('rejects every vm_state Nova forbids, changing nothing', async () => {
      const id = await activeInstance(stack);
      await expectForbiddenStatesRejected(stack, 'stop_instance', id, [
        VmState.ACTIVE,
        VmState.ERROR,
      ]);
      await expectForbiddenStatesRejected(stack, 'start_instance', id, [VmState.STOPPED]);
    });

    it('rejects a locked instance for its owner and lets an admin through', async () => {
      const id = await activeInstance(stack);
      await forceState(stack, id, { locked: true, locked_by: 'admin' });
      const refused = await run(stack, 'stop_instance', id);
      expect(refused).toMatchObject({
        status: 'rejected',
        error_code: 'InstanceIsLocked',
        outcome: { error: { code: 409 } },
      });
      expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.ACTIVE);
      const admin = await run(stack, 'stop_instance', id, { roles: ['admin'] });
      expect(admin.status).toBe('succeeded');
      expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.STOPPED);
    });

    it('reverts the task and records a fault when the driver fails (vm_state unchanged)', async () => {
      const id = await activeInstance(stack);
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      vi.spyOn(FakeDriver.prototype, 'powerOff').mockRejectedValueOnce(
        new DriverError('InstancePowerOffFailure', 'the guest did not stop'),
      );
      const stop = await run(stack, 'stop_instance', id);
      expect(stop).toMatchObject({
        status: 'failed',
        events: [{ event: 'compute_stop_instance', result: 'Error' }],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        task_owner: null,
      });
      const faults = await stack.store.listFaults(id);
      expect(faults.at(-1)).toMatchObject({
        message: expect.stringContaining('the guest did not stop'),
      });
    });

    it('lets a delete pre-empt a stop waiting on its event, ending the stop once', async () => {
      const id = await activeInstance(stack);
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      // Hold the stop in POWERING_OFF: the driver accepts but the event never comes.
      vi.spyOn(FakeDriver.prototype, 'powerOff').mockResolvedValueOnce({
        status: 'pending',
        expect: 'stopped',
        deadlineSeconds: 300,
      });
      const stop = await run(stack, 'stop_instance', id);
      expect(stop.status).toBe('running');
      expect((await stack.store.getInstance(id))?.task_state).toBe(TaskState.POWERING_OFF);
      const del = await run(stack, 'terminate_instance', id);
      expect(del.status).toBe('succeeded');
      expect(await stack.store.findActionByCommand(stop.command_id)).toMatchObject({
        status: 'failed',
        error_code: 'UnexpectedDeletingTaskState',
      });
    });
  });
}
