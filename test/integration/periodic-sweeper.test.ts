// The lifecycle sweeper and the timeouts that settle pending work, through the emulators with
// the fake driver in asynchronous mode: each test holds a lifecycle event back (or loses it),
// moves the clock past the deadline and runs the task, then shows that the late event changes
// nothing.

import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { instanceIdForCommand } from '../../lib/commands/parse.ts';
import { checkInstanceBuildTime } from '../../lib/compute/periodic/build-timeout.ts';
import { type PeriodicDeps, composePeriodicDeps } from '../../lib/compute/periodic/index.ts';
import { pollRebootingInstances } from '../../lib/compute/periodic/reboot-timeout.ts';
import { sweepExpiredWaits } from '../../lib/compute/periodic/sweeper.ts';
import { rebootInstance } from '../../lib/compute/operations/reboot.ts';
import { OPERATION_HANDLERS } from '../../lib/compute/operations/registry.ts';
import { PowerState, TaskState, VmState } from '../../lib/compute/states.ts';
import type { ActionRecord } from '../../lib/store/state-store.ts';
import { activeInstance, eventTrail, run } from '../support/operations.ts';
import { type TestStack, buildCommand, startTestStack } from '../support/stack.ts';

const silent = { info: () => {}, warn: () => {}, error: () => {} };
const after = (iso: string, seconds: number) => new Date(Date.parse(iso) + seconds * 1000);

describe('lifecycle sweeper and timeouts (fake driver, asynchronous mode)', () => {
  let stack: TestStack;
  let base: PeriodicDeps;
  /** The deployment's deps with the clock stopped at `now`. */
  const at = (now: Date): PeriodicDeps => ({ ...base, clock: () => now });

  beforeAll(async () => {
    stack = await startTestStack({
      label: 'periodic-async',
      options: {
        fake_async: 'true',
        notify_on_state_change: 'vm_and_task_state',
        instance_build_timeout: '3600',
        reboot_timeout: '600',
      },
      operations: ['reboot_instance'],
    });
    base = composePeriodicDeps(stack.config, silent);
  });

  afterEach(() => vi.restoreAllMocks());

  /** Takes the events waiting on the lifecycle queue, so the test decides if they arrive. */
  const holdEvents = () => stack.receiveAll(stack.topology.lifecycle.url);
  const deliverLate = async (bodies: string[]) => {
    for (const body of bodies) {
      await stack.sqs.send(
        new SendMessageCommand({ QueueUrl: stack.topology.lifecycle.url, MessageBody: body }),
      );
    }
    await stack.drain('lifecycle');
  };
  const action = async (commandId: string): Promise<ActionRecord> =>
    (await stack.store.getAction(
      { kind: 'instance', id: (await stack.store.findActionByCommand(commandId))!.instance_id! },
      commandId,
    ))!;

  it('completes a build whose STARTED event never came, once the driver reports it running', async () => {
    const replyTo = await stack.createReplyQueue();
    const command = buildCommand({ reply_to: replyTo });
    const id = instanceIdForCommand(command.command_id);
    await stack.send('build_and_run_instance', command);
    await stack.drain('build_and_run_instance');
    const held = (await holdEvents()).map((m) => m.Body!);
    expect(held).toHaveLength(1);
    await stack.receiveEvents();

    const pending = await action(command.command_id);
    expect(pending).toMatchObject({ status: 'running', progress: { pending_expect: 'started' } });
    expect(pending.wait_until).toEqual(expect.any(String));

    // Before the deadline the sweeper leaves the wait alone.
    const early = after(pending.wait_until!, -1);
    await sweepExpiredWaits(at(early), early);
    expect(await stack.store.getInstance(id)).toMatchObject({ task_state: TaskState.SPAWNING });

    const now = after(pending.wait_until!, 1);
    const report = await sweepExpiredWaits(at(now), now);
    expect(report.errors).toBe(0);
    expect(report.counts.completed).toBeGreaterThanOrEqual(1);
    const done = await stack.store.getInstance(id);
    expect(done).toMatchObject({
      vm_state: VmState.ACTIVE,
      task_state: null,
      task_owner: null,
      power_state: PowerState.RUNNING,
      launched_at: now.toISOString(),
    });
    const completed = await action(command.command_id);
    expect(completed).toMatchObject({ status: 'succeeded', reply_sent: true });
    expect(completed.wait_until ?? null).toBeNull();
    expect(await eventTrail(stack, id)).toEqual(['update:active/-', 'create.end']);
    const replies = await stack.receiveAll(replyTo);
    expect(replies.map((r) => JSON.parse(r.Body!).status)).toEqual(['succeeded']);

    // The event arrives after all: nothing changes, nothing is sent again.
    await deliverLate(held);
    expect((await stack.store.getInstance(id))?.version).toBe(done!.version);
    expect(await eventTrail(stack, id)).toEqual([]);
    expect(await stack.receiveAll(replyTo)).toHaveLength(0);
  });

  it('fails a stop whose event was lost and whose guest did not stop: reverted, fault, failed', async () => {
    const id = await activeInstance(stack);
    await stack.receiveEvents();
    const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
    // The platform accepts the power-off and never does it (nor reports anything).
    vi.spyOn(FakeDriver.prototype, 'powerOff').mockResolvedValue({
      status: 'pending',
      expect: 'stopped',
      deadlineSeconds: 120,
    });
    const stop = await run(stack, 'stop_instance', id);
    expect(stop.status).toBe('running');
    expect(await stack.store.getInstance(id)).toMatchObject({
      task_state: TaskState.POWERING_OFF,
    });
    const waiting = await action(stop.command_id);
    const now = after(waiting.wait_until!, 1);

    const report = await sweepExpiredWaits(at(now), now);
    expect(report.counts.abandoned).toBeGreaterThanOrEqual(1);
    expect(await stack.store.getInstance(id)).toMatchObject({
      vm_state: VmState.ACTIVE,
      task_state: null,
      task_owner: null,
      power_state: PowerState.RUNNING,
    });
    expect(await action(stop.command_id)).toMatchObject({
      status: 'failed',
      error_code: 'LifecycleTimeout',
      outcome: { status: 'failed', error: { code: 500 } },
      events: [{ event: 'compute_stop_instance', result: 'Error' }],
    });
    const faults = await stack.store.listFaults(id);
    expect(faults).toHaveLength(1);
    expect(faults[0]).toMatchObject({ command_id: stop.command_id, code: 500 });
    expect(faults[0]!.message).toContain("'stopped'");
    expect(await eventTrail(stack, id)).toEqual([
      'update:active/powering-off',
      'power_off.start',
      'update:active/-',
    ]);
  });

  it('completes a stop whose event was lost but whose guest did stop', async () => {
    const id = await activeInstance(stack);
    const command = buildCommand({
      operation: 'stop_instance',
      instance_id: id,
      args: {},
      context: { user_id: 'user-1', project_id: 'project-1' },
    });
    await stack.send('stop_instance', command);
    await stack.drain('stop_instance');
    const held = (await holdEvents()).map((m) => m.Body!);
    await stack.receiveEvents();
    const waiting = await action(command.command_id);
    const now = after(waiting.wait_until!, 1);

    await sweepExpiredWaits(at(now), now);
    const stopped = await stack.store.getInstance(id);
    expect(stopped).toMatchObject({
      vm_state: VmState.STOPPED,
      task_state: null,
      power_state: PowerState.SHUTDOWN,
    });
    expect(await action(command.command_id)).toMatchObject({ status: 'succeeded' });
    expect(await eventTrail(stack, id)).toEqual(['update:stopped/-', 'power_off.end']);

    await deliverLate(held);
    expect((await stack.store.getInstance(id))?.version).toBe(stopped!.version);
  });

  it('completes a delete whose event was lost: a destroyed guest has stopped', async () => {
    const id = await activeInstance(stack);
    const command = buildCommand({
      operation: 'terminate_instance',
      instance_id: id,
      args: {},
      context: { user_id: 'user-1', project_id: 'project-1' },
    });
    await stack.send('terminate_instance', command);
    await stack.drain('terminate_instance');
    const held = (await holdEvents()).map((m) => m.Body!);
    const waiting = await action(command.command_id);
    expect(waiting.status).toBe('running');
    const now = after(waiting.wait_until!, 1);

    await sweepExpiredWaits(at(now), now);
    const deleted = await stack.store.getInstance(id);
    expect(deleted).toMatchObject({ vm_state: VmState.DELETED, deleted: true, task_state: null });
    expect(await action(command.command_id)).toMatchObject({ status: 'succeeded' });

    await deliverLate(held);
    expect((await stack.store.getInstance(id))?.version).toBe(deleted!.version);
  });

  it('instance_build_timeout: errors out a build still pending after the timeout', async () => {
    const command = buildCommand();
    const id = instanceIdForCommand(command.command_id);
    await stack.send('build_and_run_instance', command);
    await stack.drain('build_and_run_instance');
    const held = (await holdEvents()).map((m) => m.Body!);
    await stack.receiveEvents();
    const building = await stack.store.getInstance(id);
    expect(building).toMatchObject({ vm_state: VmState.BUILDING, task_state: TaskState.SPAWNING });

    const notYet = after(building!.created_at, 3600);
    expect((await checkInstanceBuildTime(at(notYet), notYet)).counts.errored).toBeUndefined();
    expect((await stack.store.getInstance(id))?.version).toBe(building!.version);

    const now = after(building!.created_at, 3601);
    const report = await checkInstanceBuildTime(at(now), now);
    expect(report.counts.errored).toBeGreaterThanOrEqual(1);
    const errored = await stack.store.getInstance(id);
    expect(errored).toMatchObject({ vm_state: VmState.ERROR, task_state: null, task_owner: null });
    const failed = await action(command.command_id);
    expect(failed).toMatchObject({ status: 'failed', error_code: 'LifecycleTimeout' });
    expect(failed.wait_until ?? null).toBeNull();
    const faults = await stack.store.listFaults(id);
    expect(faults.map((f) => f.message)).toEqual([expect.stringContaining('build timed out')]);
    const events = (await stack.receiveEvents()).filter((e) => e.resources.includes(id));
    expect(events.map((e) => e['detail-type'])).toEqual([
      'compute.instance.update',
      'compute.instance.create.error',
    ]);
    expect(events[1]!.detail).toMatchObject({
      priority: 'ERROR',
      command_id: command.command_id,
      payload: { state: 'error', code: 500 },
    });

    // The platform's STARTED arrives late: the errored build stays errored.
    await deliverLate(held);
    expect((await stack.store.getInstance(id))?.version).toBe(errored!.version);
  });

  it('reboot_timeout: settles a soft reboot stuck waiting for its guest longer than the timeout', async () => {
    const registered = OPERATION_HANDLERS.reboot_instance;
    OPERATION_HANDLERS.reboot_instance ??= rebootInstance as never;
    try {
      const id = await activeInstance(stack);
      const command = buildCommand({
        operation: 'reboot_instance',
        instance_id: id,
        args: { reboot_type: 'SOFT' },
        context: { user_id: 'user-1', project_id: 'project-1' },
      });
      await stack.send('reboot_instance', command);
      await stack.drain('reboot_instance');
      const held = (await holdEvents()).map((m) => m.Body!);
      await stack.receiveEvents();
      const rebooting = await stack.store.getInstance(id);
      expect(rebooting).toMatchObject({ task_state: TaskState.REBOOT_STARTED });

      const notYet = after(rebooting!.updated_at, 600);
      await pollRebootingInstances(at(notYet), notYet);
      expect((await stack.store.getInstance(id))?.version).toBe(rebooting!.version);

      const now = after(rebooting!.updated_at, 601);
      const report = await pollRebootingInstances(at(now), now);
      expect(report.counts.completed).toBe(1);
      const rebooted = await stack.store.getInstance(id);
      expect(rebooted).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        power_state: PowerState.RUNNING,
      });
      expect(await action(command.command_id)).toMatchObject({ status: 'succeeded' });
      expect(await eventTrail(stack, id)).toEqual(['update:active/-', 'reboot.end']);

      await deliverLate(held);
      expect((await stack.store.getInstance(id))?.version).toBe(rebooted!.version);
    } finally {
      if (!registered) delete OPERATION_HANDLERS.reboot_instance;
    }
  });
});
