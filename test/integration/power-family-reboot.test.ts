// reboot_instance through SQS: SOFT and HARD with Nova's task_state steps and events, the
// states each accepts, a hard reboot taking the task of a stuck soft reboot, locks, and Nova's
// failure rule (guest still running → fault + reboot.error, ACTIVE; otherwise ERROR).

import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ALLOW_HARD_REBOOT, PowerState, TaskState, VmState } from '../../lib/compute/states.ts';
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
  const { rebootInstance } = await import('../../lib/compute/operations/reboot.ts');
  const states = await import('../../lib/compute/operations/power-states.ts');
  return {
    OPERATION_HANDLERS: {
      ...original.OPERATION_HANDLERS,
      reboot_instance: rebootInstance,
      pause_instance: states.pauseInstance,
    },
  };
});

const SOFT = { args: { reboot_type: 'SOFT' } };
const HARD = { args: { reboot_type: 'HARD' } };

for (const mode of ['sync', 'async'] as const) {
  describe(`reboot (${mode} driver)`, () => {
    let stack: TestStack;

    beforeAll(async () => {
      stack = await startTestStack({
        label: `reboot-${mode}`,
        options: {
          notify_on_state_change: 'vm_and_task_state',
          fake_async: mode === 'async' ? 'true' : 'false',
          admin_producers: '["000000000000"]',
        },
        operations: ['reboot_instance', 'pause_instance'],
      });
    });

    afterEach(() => vi.restoreAllMocks());

    async function fakeDriver() {
      return (await import('../../lib/virt/fake/driver.ts')).FakeDriver;
    }
    async function driverError(name: string, message: string) {
      return new (await import('../../lib/virt/errors.ts')).DriverError(name, message);
    }

    it('soft-reboots an ACTIVE instance through Nova’s task states', async () => {
      const id = await activeInstance(stack);
      await stack.receiveEvents();
      const reboot = await run(stack, 'reboot_instance', id, SOFT);
      expect(reboot).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'compute_reboot_instance', result: 'Success' }],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        task_owner: null,
        power_state: PowerState.RUNNING,
      });
      expect(await eventTrail(stack, id)).toEqual([
        'update:active/rebooting',
        'reboot.start',
        'update:active/reboot_pending',
        'update:active/reboot_started',
        'update:active/-',
        'reboot.end',
      ]);
    });

    it('hard-reboots a STOPPED instance back to ACTIVE and RUNNING', async () => {
      const id = await activeInstance(stack);
      await run(stack, 'stop_instance', id);
      expect((await stack.store.getInstance(id))?.power_state).toBe(PowerState.SHUTDOWN);
      await stack.receiveEvents();
      const spy = vi.spyOn((await fakeDriver()).prototype, 'reboot');
      const reboot = await run(stack, 'reboot_instance', id, HARD);
      expect(reboot.status).toBe('succeeded');
      expect(spy.mock.calls[0]?.[2]).toBe('HARD');
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        power_state: PowerState.RUNNING,
      });
      expect(await eventTrail(stack, id)).toEqual([
        'update:stopped/rebooting_hard',
        'reboot.start',
        'update:stopped/reboot_pending_hard',
        'update:stopped/reboot_started_hard',
        'update:active/-',
        'reboot.end',
      ]);
    });

    it('rejects every vm_state Nova forbids, for each reboot type', async () => {
      const id = await activeInstance(stack);
      await expectForbiddenStatesRejected(stack, 'reboot_instance', id, [VmState.ACTIVE], SOFT);
      await expectForbiddenStatesRejected(stack, 'reboot_instance', id, ALLOW_HARD_REBOOT, HARD);
    });

    it('rejects a soft reboot while any task runs, and a hard one outside ALLOW_REBOOT', async () => {
      const id = await activeInstance(stack);
      for (const [task, o] of [
        [TaskState.REBOOTING, SOFT],
        [TaskState.PAUSING, SOFT],
        [TaskState.POWERING_OFF, HARD],
        [TaskState.DELETING, HARD],
      ] as const) {
        const before = await forceState(stack, id, { task_state: task, task_owner: 'other' });
        const action = await run(stack, 'reboot_instance', id, o);
        expect(action, `${o.args.reboot_type} during ${task}`).toMatchObject({
          status: 'rejected',
          outcome: { error: { code: 409 } },
        });
        expect((await stack.store.getInstance(id))?.version).toBe(before.version);
      }
    });

    it('lets a hard reboot take the task of a stuck soft reboot, ending the soft one', async () => {
      const id = await activeInstance(stack);
      // The soft reboot is accepted by the platform but its event never comes.
      vi.spyOn((await fakeDriver()).prototype, 'reboot').mockResolvedValueOnce({
        status: 'pending',
        expect: 'started',
        deadlineSeconds: 300,
      });
      const soft = await run(stack, 'reboot_instance', id, SOFT);
      expect(soft.status).toBe('running');
      expect((await stack.store.getInstance(id))?.task_state).toBe(TaskState.REBOOT_STARTED);

      const hard = await run(stack, 'reboot_instance', id, HARD);
      expect(hard.status).toBe('succeeded');
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        task_owner: null,
      });
      expect(await stack.store.findActionByCommand(soft.command_id)).toMatchObject({
        status: 'failed',
        error_code: 'UnexpectedTaskState',
        outcome: { error: { code: 409 } },
      });
    });

    it('lets a hard reboot take the task of a stuck pause', async () => {
      const id = await activeInstance(stack);
      vi.spyOn((await fakeDriver()).prototype, 'pause').mockResolvedValueOnce({
        status: 'pending',
        expect: 'paused',
        deadlineSeconds: 300,
      });
      const pause = await run(stack, 'pause_instance', id);
      expect(pause.status).toBe('running');
      expect((await run(stack, 'reboot_instance', id, HARD)).status).toBe('succeeded');
      expect((await stack.store.findActionByCommand(pause.command_id))?.status).toBe('failed');
      expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.ACTIVE);
    });

    it('rejects a locked instance for its owner and lets an admin through', async () => {
      const id = await activeInstance(stack);
      const before = await forceState(stack, id, { locked: true, locked_by: 'owner' });
      for (const o of [SOFT, HARD]) {
        const refused = await run(stack, 'reboot_instance', id, o);
        expect(refused).toMatchObject({
          status: 'rejected',
          error_code: 'InstanceIsLocked',
          outcome: { error: { code: 409 } },
        });
      }
      expect((await stack.store.getInstance(id))?.version).toBe(before.version);
      const admin = await run(stack, 'reboot_instance', id, { ...SOFT, roles: ['admin'] });
      expect(admin.status).toBe('succeeded');
    });

    it('a failed reboot of a guest that still runs: fault, reboot.error, ACTIVE', async () => {
      const id = await activeInstance(stack);
      await stack.receiveEvents();
      vi.spyOn((await fakeDriver()).prototype, 'reboot').mockRejectedValueOnce(
        await driverError('InstanceRebootFailure', 'the guest ignored the ACPI request'),
      );
      const reboot = await run(stack, 'reboot_instance', id, SOFT);
      expect(reboot).toMatchObject({
        status: 'failed',
        events: [{ event: 'compute_reboot_instance', result: 'Error' }],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        task_owner: null,
        power_state: PowerState.RUNNING,
      });
      expect((await stack.store.listFaults(id)).at(-1)).toMatchObject({
        message: expect.stringContaining('ignored the ACPI request'),
      });
      const events = await stack.receiveEvents();
      expect(events.filter((e) => e.resources.includes(id)).map((e) => e['detail-type'])).toEqual([
        'compute.instance.update',
        'compute.instance.reboot.start',
        'compute.instance.update',
        'compute.instance.update',
        'compute.instance.reboot.error',
        'compute.instance.update',
        'compute.instance.reboot.end',
      ]);
      const error = events.find((e) => e['detail-type'] === 'compute.instance.reboot.error');
      expect(error?.detail).toMatchObject({
        priority: 'ERROR',
        payload: {
          state_description: TaskState.REBOOT_STARTED,
          message: expect.stringContaining('ignored the ACPI request'),
          code: 500,
        },
      });
    });

    it('a failed reboot of a guest that does not run: ERROR, no reboot.error', async () => {
      const id = await activeInstance(stack);
      await forceState(stack, id, { vm_state: VmState.STOPPED, power_state: PowerState.SHUTDOWN });
      const FakeDriver = await fakeDriver();
      vi.spyOn(FakeDriver.prototype, 'getInfo').mockResolvedValue({ state: PowerState.SHUTDOWN });
      vi.spyOn(FakeDriver.prototype, 'reboot').mockRejectedValueOnce(
        await driverError('InstanceRebootFailure', 'no bootable disk'),
      );
      await stack.receiveEvents();
      const reboot = await run(stack, 'reboot_instance', id, HARD);
      expect(reboot).toMatchObject({ status: 'failed', outcome: { error: { code: 500 } } });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ERROR,
        task_state: null,
        task_owner: null,
      });
      expect((await stack.store.listFaults(id)).at(-1)?.message).toContain('no bootable disk');
      expect(await eventTrail(stack, id)).toEqual([
        'update:stopped/rebooting_hard',
        'reboot.start',
        'update:stopped/reboot_pending_hard',
        'update:stopped/reboot_started_hard',
        'update:error/-',
      ]);
    });

    it('a hard reboot is the way out of ERROR', async () => {
      const id = await activeInstance(stack);
      await forceState(stack, id, { vm_state: VmState.ERROR });
      expect((await run(stack, 'reboot_instance', id, HARD)).status).toBe('succeeded');
      expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.ACTIVE);
    });
  });
}
