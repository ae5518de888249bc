// The periodic tasks that act through the compute API (rescue_timeout, resize_confirm_window,
// reclaim_instance_interval, shelved_offload_time) and power-state sync, through the emulators:
// each test puts an instance in the state, moves the clock past the option and runs the task.

import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { PERIODIC_USER, type RegisteredHandler } from '../../lib/compute/periodic/commands.ts';
import { type PeriodicDeps, composePeriodicDeps } from '../../lib/compute/periodic/index.ts';
import { syncPowerStates } from '../../lib/compute/periodic/power-sync.ts';
import { resumePeriodicCommands } from '../../lib/compute/periodic/resume.ts';
import {
  pollRescuedInstances,
  pollShelvedInstances,
  pollUnconfirmedResizes,
  reclaimQueuedDeletes,
} from '../../lib/compute/periodic/timed-commands.ts';
import { unrescueInstance } from '../../lib/compute/operations/rescue.ts';
import { OPERATION_HANDLERS } from '../../lib/compute/operations/registry.ts';
import { taskOperation } from '../../lib/compute/operations/task-operation.ts';
import { PowerState, TaskState, VmState } from '../../lib/compute/states.ts';
import type { Operation } from '../../lib/topology.ts';
import type { FakeDriver } from '../../lib/virt/fake/driver.ts';
import { activeInstance, eventTrail, forceState, run } from '../support/operations.ts';
import { type TestStack, startTestStack } from '../support/stack.ts';
import { fakeLambdaContext } from '../../lib/local/event-source.ts';
import { scheduleKey } from '../../lib/compute/periodic/schedule.ts';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { PERIODIC_TASKS_FUNCTION } from '../../lib/compute/periodic/settings.ts';

const silent = { info: () => {}, warn: () => {}, error: () => {} };
const driverOf = (deps: PeriodicDeps) => deps.driver as FakeDriver;
const after = (iso: string, seconds: number) => new Date(Date.parse(iso) + seconds * 1000);

/**
 * Stand-ins for operations whose real handlers need state these tests do not build (a
 * finished migration, a shelved image): they take the task and finish in the operation's
 * final vm_state, which is what the periodic task is responsible for causing.
 */
function standIn(operation: Operation, from: VmState, task: TaskState, to: VmState) {
  return taskOperation({
    operation,
    vmStates: [from],
    taskState: task,
    actionEvent: `compute_${operation}`,
    run: async () => {},
    final: () => ({ vm_state: to }),
    onFailure: 'revert',
  }) as unknown as RegisteredHandler;
}

const STAND_INS: Partial<Record<Operation, RegisteredHandler>> = {
  unrescue_instance: unrescueInstance as unknown as RegisteredHandler,
  confirm_resize: standIn(
    'confirm_resize',
    VmState.RESIZED,
    TaskState.RESIZE_CONFIRMING,
    VmState.ACTIVE,
  ),
  shelve_offload_instance: standIn(
    'shelve_offload_instance',
    VmState.SHELVED,
    TaskState.SHELVING_OFFLOADING,
    VmState.SHELVED_OFFLOADED,
  ),
};

describe('periodic tasks (fake driver, synchronous mode)', () => {
  let stack: TestStack;
  let base: PeriodicDeps;
  const at = (now: Date): PeriodicDeps => ({ ...base, clock: () => now });
  const registered = new Map<Operation, RegisteredHandler | undefined>();

  beforeAll(async () => {
    stack = await startTestStack({
      label: 'periodic-sync',
      options: {
        notify_on_state_change: 'vm_and_task_state',
        rescue_timeout: '600',
        resize_confirm_window: '3600',
        reclaim_instance_interval: '86400',
        shelved_offload_time: '7200',
        sync_power_state_interval: '600',
      },
    });
    base = composePeriodicDeps(stack.config, silent);
    for (const [op, handler] of Object.entries(STAND_INS) as [Operation, RegisteredHandler][]) {
      registered.set(op, OPERATION_HANDLERS[op]);
      if (op === 'unrescue_instance' && OPERATION_HANDLERS[op]) continue; // the real one is in
      OPERATION_HANDLERS[op] = handler;
    }
  });

  afterAll(() => {
    for (const [op, handler] of registered) {
      if (handler) OPERATION_HANDLERS[op] = handler;
      else delete OPERATION_HANDLERS[op];
    }
  });

  afterEach(() => vi.restoreAllMocks());

  /** The periodic command's action on the instance (there is one per decision). */
  async function periodicActions(id: string) {
    return (await stack.store.listActions(id)).filter((a) => a.command_id.startsWith('periodic:'));
  }

  it('rescue_timeout: unrescues an instance rescued longer than the timeout', async () => {
    const id = await activeInstance(stack);
    const launchedAt = '2030-01-01T00:00:00.000Z';
    await forceState(stack, id, { vm_state: VmState.RESCUED, launched_at: launchedAt });
    await stack.receiveEvents();

    const notYet = after(launchedAt, 600);
    expect((await pollRescuedInstances(at(notYet), notYet)).examined).toBe(0);
    expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.RESCUED);

    const now = after(launchedAt, 601);
    const report = await pollRescuedInstances(at(now), now);
    expect(report.counts.succeeded).toBeGreaterThanOrEqual(1);
    expect(await stack.store.getInstance(id)).toMatchObject({
      vm_state: VmState.ACTIVE,
      task_state: null,
    });
    const [unrescue] = await periodicActions(id);
    expect(unrescue).toMatchObject({
      operation: 'unrescue_instance',
      status: 'succeeded',
      user_id: PERIODIC_USER,
    });
    expect(unrescue!.command_id).toMatch(/^periodic:rescue_timeout:/);
    expect(await eventTrail(stack, id)).toEqual([
      'update:rescued/unrescuing',
      'unrescue.start',
      'update:active/-',
      'unrescue.end',
    ]);

    // A second scheduler that made the same decision on the same record runs nothing new.
    expect((await pollRescuedInstances(at(now), now)).examined).toBe(0);
    expect(await periodicActions(id)).toHaveLength(1);
  });

  it('rescue_timeout: leaves a rescued instance alone while a task runs', async () => {
    const id = await activeInstance(stack);
    const launchedAt = '2030-01-01T00:00:00.000Z';
    const before = await forceState(stack, id, {
      vm_state: VmState.RESCUED,
      launched_at: launchedAt,
      task_state: TaskState.REBOOTING_HARD,
      task_owner: 'someone-else',
    });
    const now = after(launchedAt, 601);
    const report = await pollRescuedInstances(at(now), now);
    expect(report.counts.task_running).toBeGreaterThanOrEqual(1);
    expect((await stack.store.getInstance(id))?.version).toBe(before.version);
    await forceState(stack, id, { vm_state: VmState.ACTIVE, task_state: null, task_owner: null });
  });

  it('resize_confirm_window: confirms a resize left unconfirmed longer than the window', async () => {
    const id = await activeInstance(stack);
    const resized = await forceState(stack, id, { vm_state: VmState.RESIZED });
    const notYet = after(resized.updated_at, 3600);
    await pollUnconfirmedResizes(at(notYet), notYet);
    expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.RESIZED);

    const now = after(resized.updated_at, 3601);
    await pollUnconfirmedResizes(at(now), now);
    expect(await stack.store.getInstance(id)).toMatchObject({
      vm_state: VmState.ACTIVE,
      task_state: null,
    });
    const [confirm] = await periodicActions(id);
    expect(confirm).toMatchObject({ operation: 'confirm_resize', status: 'succeeded' });
    expect(confirm!.command_id).toMatch(/^periodic:resize_confirm_window:/);
  });

  it('reclaim_instance_interval: hard-deletes an instance soft-deleted longer than the interval', async () => {
    const id = await activeInstance(stack);
    const deletedAt = '2030-01-01T00:00:00.000Z';
    await forceState(stack, id, { vm_state: VmState.SOFT_DELETED, deleted_at: deletedAt });
    await stack.receiveEvents();

    const notYet = after(deletedAt, 86400);
    await reclaimQueuedDeletes(at(notYet), notYet);
    expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.SOFT_DELETED);

    const now = after(deletedAt, 86401);
    await reclaimQueuedDeletes(at(now), now);
    expect(await stack.store.getInstance(id)).toMatchObject({
      vm_state: VmState.DELETED,
      deleted: true,
      task_state: null,
    });
    const [terminate] = await periodicActions(id);
    expect(terminate).toMatchObject({ operation: 'terminate_instance', status: 'succeeded' });
    expect(await eventTrail(stack, id)).toEqual([
      'update:soft-delete/deleting',
      'delete.start',
      'shutdown.start',
      'shutdown.end',
      'update:deleted/-',
      'delete.end',
    ]);
  });

  it('shelved_offload_time: offloads an instance shelved longer than the time', async () => {
    const id = await activeInstance(stack);
    const shelvedAt = '2030-01-01T00:00:00.000000'; // Nova's strtime has no zone: UTC
    await forceState(stack, id, {
      vm_state: VmState.SHELVED,
      system_metadata: { shelved_at: shelvedAt },
    });
    const notYet = after(`${shelvedAt}Z`, 7200);
    await pollShelvedInstances(at(notYet), notYet);
    expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.SHELVED);

    const now = after(`${shelvedAt}Z`, 7201);
    await pollShelvedInstances(at(now), now);
    expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.SHELVED_OFFLOADED);
    const [offload] = await periodicActions(id);
    expect(offload).toMatchObject({ operation: 'shelve_offload_instance', status: 'succeeded' });
  });

  describe('power-state sync', () => {
    /** Each sync runs a full interval after the last, so the schedule lets it through. */
    let syncClock = Date.parse('2031-01-01T00:00:00.000Z');
    const nextSync = () => new Date((syncClock += 601_000));
    const driver = () => driverOf(base);

    it('stops an ACTIVE instance whose guest shut down by itself', async () => {
      const id = await activeInstance(stack);
      const instance = (await stack.store.getInstance(id))!;
      await driver().simulatePowerChange(instance.node!, id, PowerState.SHUTDOWN);
      await stack.receiveEvents();

      const now = nextSync();
      const report = await syncPowerStates(at(now), now);
      expect(report.errors).toBe(0);
      expect(report.counts.stop_succeeded).toBeGreaterThanOrEqual(1);
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.STOPPED,
        task_state: null,
        power_state: PowerState.SHUTDOWN,
      });
      const actions = await periodicActions(id);
      expect(actions.map((a) => [a.operation, a.status])).toEqual(
        expect.arrayContaining([
          ['sync_power_state', 'succeeded'],
          ['stop_instance', 'succeeded'],
        ]),
      );
      expect(await eventTrail(stack, id)).toEqual([
        'update:active/-', // power_state recorded from the hypervisor
        'update:active/powering-off',
        'power_off.start',
        'update:stopped/-',
        'power_off.end',
      ]);
    });

    it('stops again (Nova’s force_stop) a STOPPED instance whose guest is running', async () => {
      const id = await activeInstance(stack);
      expect((await run(stack, 'stop_instance', id)).status).toBe('succeeded');
      const instance = (await stack.store.getInstance(id))!;
      await driver().simulatePowerChange(instance.node!, id, PowerState.RUNNING);
      const powerOff = vi.spyOn(driver(), 'powerOff');

      const now = nextSync();
      await syncPowerStates(at(now), now);
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.STOPPED,
        task_state: null,
        power_state: PowerState.SHUTDOWN,
      });
      expect(powerOff).toHaveBeenCalledOnce();
      expect((await driver().getInfo({ commandId: 't', requestId: 't' }, instance)).state).toBe(
        PowerState.SHUTDOWN,
      );
      const stop = (await periodicActions(id)).find((a) => a.operation === 'stop_instance');
      expect(stop).toMatchObject({ status: 'succeeded' });
      expect(stop!.command_id).toMatch(/:force_stop$/);
    });

    it('records NOSTATE for an instance whose guest is gone, and leaves it ACTIVE', async () => {
      const id = await activeInstance(stack);
      const instance = (await stack.store.getInstance(id))!;
      await driver().simulateGuestLoss(instance.node!, id);
      const now = nextSync();
      await syncPowerStates(at(now), now);
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        power_state: PowerState.NOSTATE,
      });
    });

    it('skips an instance while a task runs', async () => {
      const id = await activeInstance(stack);
      const instance = (await stack.store.getInstance(id))!;
      await driver().simulatePowerChange(instance.node!, id, PowerState.SHUTDOWN);
      const busy = await forceState(stack, id, {
        task_state: TaskState.PAUSING,
        task_owner: 'someone-else',
      });
      const now = nextSync();
      await syncPowerStates(at(now), now);
      expect((await stack.store.getInstance(id))?.version).toBe(busy.version);
      await forceState(stack, id, { task_state: null, task_owner: null });
    });

    it('runs at most once per sync_power_state_interval, whoever asks', async () => {
      const id = await activeInstance(stack);
      const instance = (await stack.store.getInstance(id))!;
      const first = nextSync();
      expect((await syncPowerStates(at(first), first)).skipped).toBeUndefined();

      await driver().simulatePowerChange(instance.node!, id, PowerState.SHUTDOWN);
      const soon = new Date(first.getTime() + 599_000);
      expect((await syncPowerStates(at(soon), soon)).skipped).toBe('not_due');
      expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.ACTIVE);
      // Two schedulers at the same instant: one runs.
      const due = new Date(first.getTime() + 600_000);
      const both = await Promise.all([
        syncPowerStates(at(due), due),
        syncPowerStates(at(due), due),
      ]);
      expect(both.map((r) => r.skipped ?? 'ran').sort()).toEqual(['not_due', 'ran']);
      expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.STOPPED);
      syncClock = due.getTime();
    });
  });

  it('resumes a periodic command whose run was cut off', async () => {
    const id = await activeInstance(stack);
    const deletedAt = '2030-01-01T00:00:00.000Z';
    await forceState(stack, id, { vm_state: VmState.SOFT_DELETED, deleted_at: deletedAt });
    // The run dies inside the delete, before it asked the driver anything.
    vi.spyOn(base.store, 'recordOnAction').mockRejectedValueOnce(
      Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
    );
    const destroy = vi.spyOn(driverOf(base), 'destroy');
    const now = after(deletedAt, 86401);
    const report = await reclaimQueuedDeletes(at(now), now);
    expect(report.errors).toBe(1);
    expect(await stack.store.getInstance(id)).toMatchObject({ task_state: TaskState.DELETING });

    // Not before any run could still be working on it.
    const soon = after(now.toISOString(), 60);
    expect((await resumePeriodicCommands(at(soon), soon)).counts.in_progress).toBe(1);
    const later = after(now.toISOString(), 601);
    const resumed = await resumePeriodicCommands(at(later), later);
    expect(resumed.counts.succeeded).toBe(1);
    expect(destroy).toHaveBeenCalledOnce();
    expect(await stack.store.getInstance(id)).toMatchObject({
      vm_state: VmState.DELETED,
      task_state: null,
    });
  });

  it('runs every enabled task from the scheduled function, at the scheduled time', async () => {
    const id = await activeInstance(stack);
    const instance = (await stack.store.getInstance(id))!;
    await driverOf(base).simulatePowerChange(instance.node!, id, PowerState.SHUTDOWN);
    const { handler } = (await import('../../functions/periodic-tasks.ts')) as {
      handler: (event: unknown, context: unknown) => Promise<{ reports: { task: string }[] }>;
    };
    const scheduled = '2040-01-01T00:00:00Z';
    const result = await handler(
      { scheduled_time: scheduled },
      fakeLambdaContext('periodic-tasks', PERIODIC_TASKS_FUNCTION.timeoutSeconds),
    );
    expect(result.reports.map((r) => r.task)).toEqual([
      'lifecycle_sweeper',
      'update_available_resource',
      'resume_periodic_commands',
      'rescue_timeout',
      'resize_confirm_window',
      'reclaim_instance_interval',
      'shelved_offload_time',
      'sync_power_state',
    ]);
    expect(await stack.store.getInstance(id)).toMatchObject({
      vm_state: VmState.STOPPED,
      power_state: PowerState.SHUTDOWN,
    });
    // Decided at the scheduled time (a retried run decides as the first did).
    const item = await stack.doc.send(
      new GetCommand({ TableName: stack.config.tables.state, Key: scheduleKey('power-sync') }),
    );
    expect(item.Item?.last_run).toBe(new Date(scheduled).toISOString());
  });
});
