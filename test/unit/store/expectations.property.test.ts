// Model-based property test of Nova's expected_task_state semantics on the state store twin:
// random sequences of writes with random expectations must succeed or fail exactly as the model
// says, raise the right conflict class, and bump the version once per effective write.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TaskState, VmState } from '../../../lib/compute/states.ts';
import {
  ErrorCode,
  UnexpectedDeletingTaskStateError,
  UnexpectedTaskStateError,
  isStratusError,
} from '../../../lib/errors.ts';
import { InMemoryStateStore } from '../../../lib/store/memory-state-store.ts';
import { buildInstance } from '../notifications/fixtures.ts';

const TASKS = [null, TaskState.SPAWNING, TaskState.DELETING, TaskState.POWERING_OFF] as const;
const VMS = [VmState.ACTIVE, VmState.BUILDING, VmState.STOPPED] as const;

const writeArb = fc.record({
  expectTask: fc.option(fc.subarray([...TASKS], { minLength: 1 }), { nil: undefined }),
  expectVm: fc.option(fc.subarray([...VMS], { minLength: 1 }), { nil: undefined }),
  setTask: fc.constantFrom(...TASKS),
  setVm: fc.constantFrom(...VMS),
});

describe('expected_task_state semantics (property)', () => {
  it('matches the model for any sequence of writes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(writeArb, { minLength: 1, maxLength: 25 }), async (writes) => {
        const store = new InMemoryStateStore();
        const start = buildInstance({ vm_state: VmState.ACTIVE, task_state: null, version: 1 });
        await store.createInstance(
          start,
          {
            subject: { kind: 'instance', id: start.instance_id },
            command_id: 'c',
            operation: 'build_and_run_instance',
            instance_id: start.instance_id,
            request_id: 'r',
            user_id: 'u',
            project_id: 'p',
            status: 'running',
            error_code: null,
            outcome: null,
            start_time: '',
            finish_time: null,
            events: [],
            reply_to: null,
            reply_sent: false,
            progress: {},
          },
          [],
        );
        const model = {
          task: start.task_state as (typeof TASKS)[number],
          vm: start.vm_state as VmState,
          version: 1,
        };
        for (const w of writes) {
          const taskOk =
            w.expectTask === undefined || (w.expectTask as readonly unknown[]).includes(model.task);
          const vmOk =
            w.expectVm === undefined || (w.expectVm as readonly unknown[]).includes(model.vm);
          try {
            await store.updateInstance({
              instanceId: start.instance_id,
              action: { subject: { kind: 'instance', id: start.instance_id }, commandId: 'c' },
              expect: { taskState: w.expectTask, vmState: w.expectVm },
              changes: { task_state: w.setTask, vm_state: w.setVm },
              now: new Date(),
            });
            expect(taskOk && vmOk).toBe(true);
            if (model.task !== w.setTask || model.vm !== w.setVm) model.version += 1;
            model.task = w.setTask;
            model.vm = w.setVm;
          } catch (e) {
            expect(taskOk && vmOk).toBe(false);
            if (!taskOk) {
              // A task mismatch wins over a vm mismatch, and "deleting" has its own class.
              expect(e).toBeInstanceOf(
                model.task === TaskState.DELETING
                  ? UnexpectedDeletingTaskStateError
                  : UnexpectedTaskStateError,
              );
            } else {
              expect(isStratusError(e) && e.code).toBe(ErrorCode.InstanceUpdateConflict);
            }
          }
          const stored = await store.getInstance(start.instance_id);
          expect(stored).toMatchObject({
            task_state: model.task,
            vm_state: model.vm,
            version: model.version,
          });
        }
      }),
      { numRuns: 200 },
    );
  });
});
