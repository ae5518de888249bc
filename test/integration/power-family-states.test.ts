// pause, unpause, suspend and resume through SQS: Nova's states and events, forbidden states,
// locks, and Nova's failure rules (revert for pause/unpause; for suspend/resume NotSupported
// restores the old vm_state and anything else is ERROR), with the fake driver in both modes.

import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { InstanceChanges } from '../../lib/compute/instance.ts';
import { PowerState, TaskState, VmState } from '../../lib/compute/states.ts';
import type { Operation } from '../../lib/topology.ts';
import {
  activeInstance,
  eventTrail,
  expectForbiddenStatesRejected,
  forceState,
  run,
} from '../support/operations.ts';
import { type TestStack, startTestStack } from '../support/stack.ts';
import type * as Registry from '../../lib/compute/operations/registry.ts';

// Until these operations are in OPERATION_HANDLERS, the lifecycle function would not find them.
vi.mock('../../lib/compute/operations/registry.ts', async (importOriginal) => {
  const original = await importOriginal<typeof Registry>();
  const ops = await import('../../lib/compute/operations/power-states.ts');
  return {
    OPERATION_HANDLERS: {
      ...original.OPERATION_HANDLERS,
      pause_instance: ops.pauseInstance,
      unpause_instance: ops.unpauseInstance,
      suspend_instance: ops.suspendInstance,
      resume_instance: ops.resumeInstance,
    },
  };
});

const OPERATIONS: Operation[] = [
  'pause_instance',
  'unpause_instance',
  'suspend_instance',
  'resume_instance',
];

/** The state each operation starts from. */
const FROM: Record<string, InstanceChanges> = {
  pause_instance: { vm_state: VmState.ACTIVE },
  unpause_instance: { vm_state: VmState.PAUSED },
  suspend_instance: { vm_state: VmState.ACTIVE },
  resume_instance: { vm_state: VmState.SUSPENDED },
};

for (const mode of ['sync', 'async'] as const) {
  describe(`pause, unpause, suspend, resume (${mode} driver)`, () => {
    let stack: TestStack;

    beforeAll(async () => {
      stack = await startTestStack({
        label: `power-states-${mode}`,
        options: {
          notify_on_state_change: 'vm_and_task_state',
          fake_async: mode === 'async' ? 'true' : 'false',
          admin_producers: '["000000000000"]',
        },
        operations: OPERATIONS,
      });
    });

    afterEach(() => vi.restoreAllMocks());

    // Imported after the stack started: the handlers' module instances (their error classes
    // are the ones `instanceof` checks against).
    async function fakeDriver() {
      return (await import('../../lib/virt/fake/driver.ts')).FakeDriver;
    }
    async function driverError(name: string, message: string) {
      return new (await import('../../lib/virt/errors.ts')).DriverError(name, message);
    }
    async function notSupported(method: string) {
      return new (await import('../../lib/virt/errors.ts')).NotSupportedError('fake', method);
    }

    it('pauses and unpauses, with the guest really paused in between', async () => {
      const id = await activeInstance(stack);
      await stack.receiveEvents();

      const pause = await run(stack, 'pause_instance', id);
      expect(pause).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'compute_pause_instance', result: 'Success' }],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.PAUSED,
        task_state: null,
        task_owner: null,
        power_state: PowerState.PAUSED,
      });
      expect(await eventTrail(stack, id)).toEqual([
        'update:active/pausing',
        'pause.start',
        'update:paused/-',
        'pause.end',
      ]);

      const unpause = await run(stack, 'unpause_instance', id);
      expect(unpause.status).toBe('succeeded');
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        power_state: PowerState.RUNNING,
      });
      expect(await eventTrail(stack, id)).toEqual([
        'update:paused/unpausing',
        'unpause.start',
        'update:active/-',
        'unpause.end',
      ]);
    });

    it('suspends, keeping the old vm_state in system_metadata, and resumes to it', async () => {
      const id = await activeInstance(stack);
      await stack.receiveEvents();

      const suspend = await run(stack, 'suspend_instance', id);
      expect(suspend).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'compute_suspend_instance', result: 'Success' }],
      });
      const suspended = await stack.store.getInstance(id);
      expect(suspended).toMatchObject({
        vm_state: VmState.SUSPENDED,
        task_state: null,
        task_owner: null,
        power_state: PowerState.SUSPENDED,
        system_metadata: { old_vm_state: VmState.ACTIVE },
      });
      expect(await eventTrail(stack, id)).toEqual([
        'update:active/suspending',
        'suspend.start',
        'update:suspended/-',
        'suspend.end',
      ]);

      const resume = await run(stack, 'resume_instance', id);
      expect(resume.status).toBe('succeeded');
      const resumed = await stack.store.getInstance(id);
      expect(resumed).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        power_state: PowerState.RUNNING,
      });
      expect(resumed?.system_metadata).not.toHaveProperty('old_vm_state');
      expect(await eventTrail(stack, id)).toEqual([
        'update:suspended/resuming',
        'resume.start',
        'update:active/-',
        'resume.end',
      ]);
    });

    it('resumes to ACTIVE when no old vm_state was kept (Nova’s default)', async () => {
      const id = await activeInstance(stack);
      await run(stack, 'suspend_instance', id);
      const { old_vm_state: _old, ...rest } = (await stack.store.getInstance(id))!.system_metadata;
      await forceState(stack, id, { system_metadata: rest });
      expect((await run(stack, 'resume_instance', id)).status).toBe('succeeded');
      expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.ACTIVE);
    });

    it('rejects every vm_state Nova forbids, changing nothing', async () => {
      const id = await activeInstance(stack);
      await expectForbiddenStatesRejected(stack, 'pause_instance', id, [VmState.ACTIVE]);
      await expectForbiddenStatesRejected(stack, 'unpause_instance', id, [VmState.PAUSED]);
      await expectForbiddenStatesRejected(stack, 'suspend_instance', id, [VmState.ACTIVE]);
      await expectForbiddenStatesRejected(stack, 'resume_instance', id, [VmState.SUSPENDED]);
    });

    it('rejects an instance with a task running, changing nothing', async () => {
      const id = await activeInstance(stack);
      const before = await forceState(stack, id, {
        task_state: TaskState.POWERING_OFF,
        task_owner: 'someone-else',
      });
      const action = await run(stack, 'pause_instance', id);
      expect(action).toMatchObject({ status: 'rejected', outcome: { error: { code: 409 } } });
      expect((await stack.store.getInstance(id))?.version).toBe(before.version);
    });

    it('rejects a locked instance for its owner and lets an admin through', async () => {
      const id = await activeInstance(stack);
      for (const op of OPERATIONS) {
        // The guest follows the record: pause/suspend it for real before unpause/resume.
        if (op === 'unpause_instance') await run(stack, 'pause_instance', id);
        if (op === 'resume_instance') await run(stack, 'suspend_instance', id);
        expect((await stack.store.getInstance(id))?.vm_state).toBe(FROM[op]!.vm_state);
        const before = await forceState(stack, id, { locked: true, locked_by: 'admin' });
        const refused = await run(stack, op, id);
        expect(refused, op).toMatchObject({
          status: 'rejected',
          error_code: 'InstanceIsLocked',
          outcome: { error: { code: 409 } },
        });
        expect((await stack.store.getInstance(id))?.version).toBe(before.version);
        const admin = await run(stack, op, id, { roles: ['admin'] });
        expect(admin.status, op).toBe('succeeded');
        await forceState(stack, id, { locked: false, locked_by: null });
      }
    });

    it('pause: a driver failure reverts the task with a fault (vm_state unchanged)', async () => {
      const id = await activeInstance(stack);
      vi.spyOn((await fakeDriver()).prototype, 'pause').mockRejectedValueOnce(
        await driverError('InstanceInvalidState', 'the hypervisor refused to pause'),
      );
      const pause = await run(stack, 'pause_instance', id);
      expect(pause).toMatchObject({
        status: 'failed',
        events: [{ event: 'compute_pause_instance', result: 'Error' }],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        task_owner: null,
        power_state: PowerState.RUNNING,
      });
      expect((await stack.store.listFaults(id)).at(-1)).toMatchObject({
        message: expect.stringContaining('refused to pause'),
      });
    });

    it('unpause: a driver failure reverts the task (still PAUSED)', async () => {
      const id = await activeInstance(stack);
      await run(stack, 'pause_instance', id);
      vi.spyOn((await fakeDriver()).prototype, 'unpause').mockRejectedValueOnce(
        await driverError('HypervisorUnavailable', 'gone'),
      );
      expect((await run(stack, 'unpause_instance', id)).status).toBe('failed');
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.PAUSED,
        task_state: null,
      });
      expect(await stack.store.listFaults(id)).toHaveLength(1);
    });

    it('suspend: NotSupported keeps the instance ACTIVE (501); any other error is ERROR', async () => {
      const id = await activeInstance(stack);
      const suspend = vi.spyOn((await fakeDriver()).prototype, 'suspend');
      suspend.mockRejectedValueOnce(await notSupported('suspend'));
      const unsupported = await run(stack, 'suspend_instance', id);
      expect(unsupported).toMatchObject({
        status: 'failed',
        error_code: 'NotSupported',
        outcome: { error: { code: 501 } },
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        task_owner: null,
      });

      suspend.mockRejectedValueOnce(await driverError('InstanceSuspendFailure', 'no disk space'));
      const failed = await run(stack, 'suspend_instance', id);
      expect(failed).toMatchObject({
        status: 'failed',
        events: [{ event: 'compute_suspend_instance', result: 'Error' }],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ERROR,
        task_state: null,
        task_owner: null,
      });
      const faults = await stack.store.listFaults(id);
      expect(faults.map((f) => f.code)).toEqual([501, 500]);
      expect(faults[1]?.message).toContain('no disk space');
    });

    it('resume: NotSupported leaves the instance SUSPENDED (501); any other error is ERROR', async () => {
      const id = await activeInstance(stack);
      await run(stack, 'suspend_instance', id);
      const resume = vi.spyOn((await fakeDriver()).prototype, 'resume');
      resume.mockRejectedValueOnce(await notSupported('resume'));
      const unsupported = await run(stack, 'resume_instance', id);
      expect(unsupported).toMatchObject({ status: 'failed', outcome: { error: { code: 501 } } });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.SUSPENDED,
        task_state: null,
      });

      resume.mockRejectedValueOnce(await driverError('InstanceResumeFailure', 'corrupt image'));
      expect((await run(stack, 'resume_instance', id)).status).toBe('failed');
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ERROR,
        task_state: null,
      });
    });
  });
}
