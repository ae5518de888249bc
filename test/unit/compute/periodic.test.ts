// Periodic tasks against the in-memory twins: the pure rules (times, schedule claims, Nova's
// power-sync table) and the races the emulator tests cannot stage deterministically.

import { InMemoryNodeStore } from '../../../lib/resources/memory-node-store.ts';
import { InMemoryNodeStateStore } from '../../../lib/store/node-state-store.ts';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { InMemoryReplySender } from '../../../lib/commands/reply.ts';
import { FlavorCatalog } from '../../../lib/compute/flavors.ts';
import type { Instance } from '../../../lib/compute/instance.ts';
import { checkInstanceBuildTime } from '../../../lib/compute/periodic/build-timeout.ts';
import { runPeriodicCommand } from '../../../lib/compute/periodic/commands.ts';
import { type PeriodicDeps, runPeriodicTasks } from '../../../lib/compute/periodic/index.ts';
import { powerSyncFix } from '../../../lib/compute/periodic/power-sync.ts';
import { olderThan, parseUtc } from '../../../lib/compute/periodic/report.ts';
import { InMemoryPeriodicSchedule } from '../../../lib/compute/periodic/schedule.ts';
import { OPERATION_HANDLERS } from '../../../lib/compute/operations/registry.ts';
import { newAction } from '../../../lib/compute/runtime.ts';
import { PowerState, TaskState, VmState } from '../../../lib/compute/states.ts';
import { type Config, loadConfig } from '../../../lib/config.ts';
import { InMemoryPublisher } from '../../../lib/notifications/publisher.ts';
import { InMemoryStateStore } from '../../../lib/store/memory-state-store.ts';
import { InMemoryLifecycleSink } from '../../../lib/virt/events.ts';
import { FakeDriver } from '../../../lib/virt/fake/driver.ts';
import { InMemoryFakeHypervisorStore } from '../../../lib/virt/fake/store.ts';
import { FIXED_NOW, NODES, makeInstance } from '../virt/fixtures.ts';

const T0 = FIXED_NOW;
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

function memoryDeps(options: Partial<Config> = {}) {
  const config = { ...loadConfig({}), fake_nodes: NODES, ...options };
  const logger = { info: vi.fn(), warn: vi.fn(), error: vi.fn() };
  const store = new InMemoryStateStore();
  const publisher = new InMemoryPublisher();
  const deps: PeriodicDeps = {
    config,
    store,
    driver: new FakeDriver({
      nodes: NODES,
      store: new InMemoryFakeHypervisorStore(),
      sink: new InMemoryLifecycleSink(),
      async: false,
    }),
    publisher,
    replies: new InMemoryReplySender(),
    flavors: new FlavorCatalog(config.flavors),
    clock: () => T0,
    logger,
    schedule: new InMemoryPeriodicSchedule(),
    nodes: new InMemoryNodeStore(),
    nodeState: new InMemoryNodeStateStore(),
  };
  return { deps, store, publisher, logger };
}

/** A build owned by a running build command, stored as the build path would leave it. */
async function storedBuild(store: InMemoryStateStore, overrides: Partial<Instance> = {}) {
  const commandId = `build-${Math.random().toString(36).slice(2, 8)}`;
  const instance = makeInstance({
    vm_state: VmState.BUILDING,
    task_state: TaskState.SPAWNING,
    task_owner: commandId,
    ...overrides,
  });
  const action = newAction(
    {
      version: 1,
      command_id: commandId,
      operation: 'build_and_run_instance',
      context: { user_id: 'u', project_id: instance.project_id, request_id: 'req-1', roles: [] },
      instance_id: instance.instance_id,
      args: { flavor: 'm1.small', image_ref: 'img' },
    },
    { kind: 'instance', id: instance.instance_id },
    T0,
  );
  await store.createInstance(instance, action, []);
  return { instance, commandId };
}

afterEach(() => vi.restoreAllMocks());

describe('times', () => {
  it('reads stored times as UTC, with or without a zone', () => {
    expect(parseUtc('2026-03-01T12:00:00.000000')).toBe(T0.getTime());
    expect(parseUtc('2026-03-01T12:00:00.000Z')).toBe(T0.getTime());
  });

  it('is older than the timeout only strictly after it (Nova’s is_older_than)', () => {
    expect(olderThan(T0.toISOString(), 60, at(60))).toBe(false);
    expect(olderThan(T0.toISOString(), 60, at(61))).toBe(true);
    expect(olderThan(null, 60, at(3600))).toBe(false);
  });
});

describe('schedule claims', () => {
  it('lets one caller run a task per interval', async () => {
    const schedule = new InMemoryPeriodicSchedule();
    expect(await schedule.claim('power-sync', T0, 600)).toBe(true);
    expect(await schedule.claim('power-sync', T0, 600)).toBe(false); // a second scheduler
    expect(await schedule.claim('power-sync', at(599), 600)).toBe(false);
    expect(await schedule.claim('power-sync', at(600), 600)).toBe(true);
  });

  it('runs every time with interval 0, but never twice for the same instant', async () => {
    const schedule = new InMemoryPeriodicSchedule();
    expect(await schedule.claim('power-sync', T0, 0)).toBe(true);
    expect(await schedule.claim('power-sync', T0, 0)).toBe(false);
    expect(await schedule.claim('power-sync', at(1), 0)).toBe(true);
  });
});

describe('power sync rules (Nova’s _sync_instance_power_state)', () => {
  it.each([
    [VmState.ACTIVE, PowerState.SHUTDOWN, 'stop'],
    [VmState.ACTIVE, PowerState.CRASHED, 'stop'],
    [VmState.ACTIVE, PowerState.SUSPENDED, 'stop'],
    [VmState.ACTIVE, PowerState.PAUSED, 'log'],
    [VmState.ACTIVE, PowerState.NOSTATE, 'log'],
    [VmState.ACTIVE, PowerState.RUNNING, 'none'],
    [VmState.STOPPED, PowerState.RUNNING, 'force_stop'],
    [VmState.STOPPED, PowerState.PAUSED, 'force_stop'],
    [VmState.STOPPED, PowerState.SHUTDOWN, 'none'],
    [VmState.STOPPED, PowerState.CRASHED, 'none'],
    [VmState.STOPPED, PowerState.NOSTATE, 'none'],
    [VmState.PAUSED, PowerState.SHUTDOWN, 'force_stop'],
    [VmState.PAUSED, PowerState.RUNNING, 'none'],
    [VmState.SOFT_DELETED, PowerState.RUNNING, 'log'],
    [VmState.SOFT_DELETED, PowerState.SHUTDOWN, 'none'],
    [VmState.RESCUED, PowerState.SHUTDOWN, 'none'],
    [VmState.SUSPENDED, PowerState.RUNNING, 'none'],
    [VmState.ERROR, PowerState.SHUTDOWN, 'none'],
    [VmState.BUILDING, PowerState.RUNNING, 'none'],
  ] as const)('%s with the guest %s → %s', (vm, power, kind) => {
    expect(powerSyncFix(vm, power).kind).toBe(kind);
  });
});

describe('instance_build_timeout', () => {
  it('errors out an old build and ends its command, in one write', async () => {
    const { deps, store, publisher } = memoryDeps({ instance_build_timeout: 600 });
    const { instance, commandId } = await storedBuild(store);
    const report = await checkInstanceBuildTime(deps, at(601));
    expect(report).toMatchObject({ examined: 1, counts: { errored: 1 }, errors: 0 });
    expect(await store.getInstance(instance.instance_id)).toMatchObject({
      vm_state: VmState.ERROR,
      task_state: null,
      task_owner: null,
    });
    const action = await store.getAction({ kind: 'instance', id: instance.instance_id }, commandId);
    expect(action).toMatchObject({ status: 'failed', error_code: 'LifecycleTimeout' });
    expect(publisher.published.map((n) => n.event_type)).toEqual(['compute.instance.create.error']);
    expect(publisher.published[0]!.command_id).toBe(commandId);
  });

  it('leaves a build alone whose task moved on between the read and the write', async () => {
    const { deps, store } = memoryDeps({ instance_build_timeout: 600 });
    const { instance } = await storedBuild(store);
    const update = store.updateInstance.bind(store);
    let raced = false;
    vi.spyOn(store, 'updateInstance').mockImplementation(async (write) => {
      if (!raced) {
        raced = true;
        // A delete takes the build's task just before the timeout's write lands.
        await update({
          instanceId: instance.instance_id,
          action: { subject: { kind: 'instance', id: instance.instance_id }, commandId: 'del-1' },
          expect: {},
          changes: { task_state: TaskState.DELETING, task_owner: 'del-1' },
          now: at(600),
        });
      }
      return update(write);
    });
    const report = await checkInstanceBuildTime(deps, at(601));
    expect(report.counts).toEqual({ raced: 1 });
    expect(await store.getInstance(instance.instance_id)).toMatchObject({
      vm_state: VmState.BUILDING,
      task_state: TaskState.DELETING,
      task_owner: 'del-1',
    });
    expect(await store.listFaults(instance.instance_id)).toEqual([]);
  });

  it('errors out a build no command owns under an action of its own', async () => {
    const { deps, store } = memoryDeps({ instance_build_timeout: 60 });
    const { instance } = await storedBuild(store, { task_state: null });
    await store.updateInstance({
      instanceId: instance.instance_id,
      action: { subject: { kind: 'instance', id: instance.instance_id }, commandId: 'reset' },
      expect: {},
      changes: { task_owner: null },
      now: T0,
    });
    const report = await checkInstanceBuildTime(deps, at(61));
    expect(report.counts).toEqual({ errored: 1 });
    const actions = await store.listActions(instance.instance_id);
    expect(actions.map((a) => [a.operation, a.status])).toContainEqual([
      'instance_build_timeout',
      'failed',
    ]);
  });
});

describe('periodic commands', () => {
  it('skip with a log line while the operation is not implemented', async () => {
    const { deps, logger, store } = memoryDeps();
    const instance = makeInstance({ vm_state: VmState.RESCUED });
    await store.createInstance(
      instance,
      newAction(
        {
          version: 1,
          command_id: 'setup',
          operation: 'build_and_run_instance',
          context: { user_id: 'u', project_id: 'p', request_id: 'r', roles: [] },
          instance_id: instance.instance_id,
          args: { flavor: 'm1.small', image_ref: 'img' },
        },
        { kind: 'instance', id: instance.instance_id },
        T0,
      ),
      [],
    );
    const saved = OPERATION_HANDLERS.unrescue_instance;
    delete OPERATION_HANDLERS.unrescue_instance;
    try {
      const status = await runPeriodicCommand(deps, {
        task: 'rescue_timeout',
        commandId: 'periodic:rescue_timeout:x:v1',
        operation: 'unrescue_instance',
        instance,
      });
      expect(status).toBe('unavailable');
      expect(logger.warn).toHaveBeenCalledWith(
        'periodic task skipped: its operation is not implemented yet',
        expect.objectContaining({ operation: 'unrescue_instance' }),
      );
      expect(await store.getInstance(instance.instance_id)).toMatchObject({ version: 1 });
    } finally {
      if (saved) OPERATION_HANDLERS.unrescue_instance = saved;
    }
  });
});

describe('runPeriodicTasks', () => {
  it('runs only the tasks whose option is on (the sweeper, the resource audit and resume always)', async () => {
    const { deps } = memoryDeps({ sync_power_state_interval: -1 });
    const reports = await runPeriodicTasks(deps, T0);
    expect(reports.map((r) => r.task)).toEqual([
      'lifecycle_sweeper',
      'update_available_resource',
      'resume_periodic_commands',
    ]);

    const on = memoryDeps({
      instance_build_timeout: 1,
      reboot_timeout: 1,
      rescue_timeout: 1,
      resize_confirm_window: 1,
      reclaim_instance_interval: 1,
      shelved_offload_time: 1,
      sync_power_state_interval: 0,
    });
    expect((await runPeriodicTasks(on.deps, T0)).map((r) => r.task)).toEqual([
      'lifecycle_sweeper',
      'update_available_resource',
      'resume_periodic_commands',
      'instance_build_timeout',
      'reboot_timeout',
      'rescue_timeout',
      'resize_confirm_window',
      'reclaim_instance_interval',
      'shelved_offload_time',
      'sync_power_state',
    ]);
  });

  it('reports a task that failed as a whole and still runs the others', async () => {
    const { deps, logger } = memoryDeps({ instance_build_timeout: 60 });
    vi.spyOn(deps.driver, 'getAvailableNodes').mockRejectedValue(new Error('hypervisor down'));
    const reports = await runPeriodicTasks(deps, T0);
    expect(reports.find((r) => r.task === 'instance_build_timeout')).toMatchObject({
      errors: 1,
      skipped: 'failed',
    });
    expect(reports.find((r) => r.task === 'lifecycle_sweeper')).toMatchObject({ errors: 0 });
    expect(logger.error).toHaveBeenCalled();
  });

  it('skips power sync until its interval passed since the last run', async () => {
    const { deps } = memoryDeps({ sync_power_state_interval: 600 });
    const first = await runPeriodicTasks(deps, T0);
    expect(first.find((r) => r.task === 'sync_power_state')?.skipped).toBeUndefined();
    const again = await runPeriodicTasks(deps, at(60));
    expect(again.find((r) => r.task === 'sync_power_state')?.skipped).toBe('not_due');
    const later = await runPeriodicTasks(deps, at(600));
    expect(later.find((r) => r.task === 'sync_power_state')?.skipped).toBeUndefined();
  });
});
