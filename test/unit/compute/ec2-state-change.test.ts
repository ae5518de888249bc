// EC2 state-change notifications → lifecycle events, on in-memory adapters: parsing, ordering,
// and how late, duplicated, reordered, foreign and out-of-band events change (nothing but) what
// they should. The EC2 side is a stub: a fake driver in asynchronous mode that also answers
// findByEc2InstanceId and onStateChange (mapping with power-state.ts, as Ec2Driver does), so the
// tasks it leaves pending are completed by the EC2 events only.

import { beforeEach, describe, expect, it } from 'vitest';
import { InMemoryReplySender } from '../../../lib/commands/reply.ts';
import { instanceIdForCommand, parseCommand } from '../../../lib/commands/parse.ts';
import type { Command } from '../../../lib/commands/schemas.ts';
import { type OperationHandler, executeCommand } from '../../../lib/compute/executor.ts';
import { FlavorCatalog } from '../../../lib/compute/flavors.ts';
import { guestGoneCommandId } from '../../../lib/compute/lifecycle.ts';
import { buildAndRunInstance } from '../../../lib/compute/operations/build-and-run-instance.ts';
import { stopInstance } from '../../../lib/compute/operations/power.ts';
import type { ComputeDeps } from '../../../lib/compute/runtime.ts';
import { PowerState, TaskState, VmState } from '../../../lib/compute/states.ts';
import { loadConfig } from '../../../lib/config.ts';
import { InMemoryNodeStore } from '../../../lib/resources/memory-node-store.ts';
import { InMemoryPublisher } from '../../../lib/notifications/publisher.ts';
import { InMemoryStateStore } from '../../../lib/store/memory-state-store.ts';
import { InMemoryNodeStateStore } from '../../../lib/store/node-state-store.ts';
import type { Operation } from '../../../lib/topology.ts';
import { isEc2StateName, lifecycleTransitionOf } from '../../../lib/virt/ec2/power-state.ts';
import {
  eventOrder,
  handleEc2Event,
  isEc2EventResolver,
  parseEc2StateChange,
} from '../../../lib/virt/ec2/state-change.ts';
import { InMemoryLifecycleSink, type LifecycleEvent } from '../../../lib/virt/events.ts';
import { FakeDriver } from '../../../lib/virt/fake/driver.ts';
import { InMemoryFakeHypervisorStore } from '../../../lib/virt/fake/store.ts';

interface Owner {
  instanceId: string;
  node: string;
  /** StateReason now, as the driver would read it. */
  stateReason?: string;
}

/** A fake driver that also knows which EC2 instance is which Stratus instance. */
class ResolvingFakeDriver extends FakeDriver {
  readonly owners = new Map<string, Owner>();
  lookups = 0;
  translations = 0;

  findByEc2InstanceId(ec2InstanceId: string): Promise<Owner | null> {
    this.lookups += 1;
    return Promise.resolve(this.owners.get(ec2InstanceId) ?? null);
  }

  onStateChange(
    ec2InstanceId: string,
    state: string,
    occurredAt = new Date().toISOString(),
  ): Promise<LifecycleEvent | null> {
    this.translations += 1;
    const owner = this.owners.get(ec2InstanceId);
    if (!owner || !isEc2StateName(state)) return Promise.resolve(null);
    const transition = lifecycleTransitionOf({ state, stateReason: owner.stateReason ?? null });
    if (transition === null) return Promise.resolve(null);
    return Promise.resolve({
      instanceId: owner.instanceId,
      node: owner.node,
      transition,
      occurredAt,
      source: 'ec2',
      sequence: 0,
    });
  }
}

function stateChange(
  ec2InstanceId: string,
  state: string,
  time: Date | string,
  id = `evt-${Math.random().toString(36).slice(2, 10)}`,
) {
  return {
    version: '0',
    id,
    'detail-type': 'EC2 Instance State-change Notification',
    source: 'aws.ec2',
    account: '123456789012',
    time: typeof time === 'string' ? time : time.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region: 'us-east-1',
    resources: [`arn:aws:ec2:us-east-1:123456789012:instance/${ec2InstanceId}`],
    detail: { 'instance-id': ec2InstanceId, state },
  };
}

const T0 = new Date('2026-03-01T12:00:00.000Z');
let now = T0;
const advance = (seconds: number) => {
  now = new Date(now.getTime() + seconds * 1000);
  return now;
};

let deps: ComputeDeps;
let store: InMemoryStateStore;
let driver: ResolvingFakeDriver;
let counter = 0;

beforeEach(() => {
  now = T0;
  const config = loadConfig({ STRATUS_DRIVER: 'ec2' });
  store = new InMemoryStateStore();
  driver = new ResolvingFakeDriver({
    nodes: config.fake_nodes,
    store: new InMemoryFakeHypervisorStore(),
    sink: new InMemoryLifecycleSink(),
    async: true,
    now: () => now,
  });
  deps = {
    config,
    store,
    driver,
    publisher: new InMemoryPublisher(),
    replies: new InMemoryReplySender(),
    flavors: new FlavorCatalog(),
    clock: () => now,
    logger: { info() {}, warn() {}, error() {} },
    nodes: new InMemoryNodeStore(),
    nodeState: new InMemoryNodeStateStore(),
  };
});

function command(operation: Operation, instanceId: string | null, args: object = {}): Command {
  counter += 1;
  const parsed = parseCommand(
    JSON.stringify({
      version: 1,
      command_id: `ec2-unit-${counter}`,
      operation,
      ...(instanceId ? { instance_id: instanceId } : {}),
      context: { user_id: 'user-1', project_id: 'project-1' },
      args,
    }),
    operation,
  );
  if (!parsed.ok) throw parsed.error;
  return parsed.command;
}

const exec = (handler: unknown, c: Command) =>
  executeCommand(deps, c, { senderId: null }, handler as OperationHandler);

/** A build left pending on STARTED, whose guest is EC2 instance `ec2Id`. */
async function pendingBuild(ec2Id: string): Promise<{ id: string; commandId: string }> {
  const build = command('build_and_run_instance', null, { flavor: 'm1.tiny', image_ref: 'img' });
  await exec(buildAndRunInstance, build);
  const id = instanceIdForCommand(build.command_id);
  const instance = await store.getInstance(id);
  expect(instance).toMatchObject({ vm_state: VmState.BUILDING, task_state: TaskState.SPAWNING });
  driver.owners.set(ec2Id, { instanceId: id, node: instance!.node! });
  return { id, commandId: build.command_id };
}

describe('parsing a state-change notification', () => {
  it('reads the instance, the state, the time and the event id', () => {
    const parsed = parseEc2StateChange(stateChange('i-0abc', 'running', T0, 'evt-1'));
    expect(parsed).toEqual({
      ok: true,
      change: {
        eventId: 'evt-1',
        ec2InstanceId: 'i-0abc',
        state: 'running',
        time: '2026-03-01T12:00:00Z',
      },
    });
  });

  it.each([
    ['another detail-type', { ...stateChange('i-0abc', 'running', T0), 'detail-type': 'X' }],
    ['an unknown state', stateChange('i-0abc', 'rebooting', T0)],
    ['a bad time', stateChange('i-0abc', 'running', 'yesterday')],
    ['a malformed instance id', stateChange('web-1', 'running', T0)],
    ['no detail', { ...stateChange('i-0abc', 'running', T0), detail: undefined }],
  ])('refuses %s', (_label, event) => {
    expect(parseEc2StateChange(event)).toMatchObject({ ok: false });
  });
});

describe('ordering', () => {
  it('takes a whole-second time as the end of that second, a precise one as given', () => {
    expect(eventOrder({ time: '2026-03-01T12:00:05Z', state: 'running' }).occurredAt).toBe(
      '2026-03-01T12:00:05.999Z',
    );
    expect(eventOrder({ time: '2026-03-01T12:00:05.250Z', state: 'running' }).occurredAt).toBe(
      '2026-03-01T12:00:05.250Z',
    );
  });

  it('orders a guest’s changes by time, and by lifecycle within one second', () => {
    const seq = (time: string, state: 'pending' | 'running' | 'stopping' | 'stopped') =>
      eventOrder({ time, state }).sequence;
    expect(seq('2026-03-01T12:00:05Z', 'pending')).toBeLessThan(
      seq('2026-03-01T12:00:05Z', 'running'),
    );
    expect(seq('2026-03-01T12:00:05Z', 'stopped')).toBeLessThan(
      seq('2026-03-01T12:00:06Z', 'pending'),
    );
    expect(seq('2026-03-01T12:00:05Z', 'running')).toBe(seq('2026-03-01T12:00:05Z', 'running'));
  });
});

describe('handling EC2 events', () => {
  it('completes a pending build from `running`; pending, duplicates and late events change nothing', async () => {
    const { id, commandId } = await pendingBuild('i-0b1');
    advance(1);
    expect(await handleEc2Event(deps, stateChange('i-0b1', 'pending', advance(1)))).toBe(
      'in_transition',
    );
    const running = stateChange('i-0b1', 'running', advance(20));
    expect(await handleEc2Event(deps, running)).toBe('completed');
    const active = await store.getInstance(id);
    expect(active).toMatchObject({
      vm_state: VmState.ACTIVE,
      task_state: null,
      power_state: PowerState.RUNNING,
    });
    expect((await store.findActionByCommand(commandId))?.status).toBe('succeeded');

    // The same event again, and the `pending` before it arriving last: nothing changes.
    expect(await handleEc2Event(deps, running)).toBe('ignored');
    expect(await handleEc2Event(deps, stateChange('i-0b1', 'pending', T0))).toBe('in_transition');
    expect((await store.getInstance(id))?.version).toBe(active!.version);
  });

  it('ignores a `running` older than the wait (an earlier change of the guest)', async () => {
    const { id } = await pendingBuild('i-0b2');
    const before = await store.getInstance(id);
    const stale = stateChange('i-0b2', 'running', new Date(T0.getTime() - 60_000));
    expect(await handleEc2Event(deps, stale)).toBe('ignored');
    expect(await store.getInstance(id)).toMatchObject({
      task_state: TaskState.SPAWNING,
      version: before!.version,
    });
  });

  it('completes a stop from `stopped`, and a late `running` after it changes nothing', async () => {
    const { id } = await pendingBuild('i-0b3');
    const started = stateChange('i-0b3', 'running', advance(10));
    await handleEc2Event(deps, started);
    advance(30);
    await exec(stopInstance, command('stop_instance', id));
    expect((await store.getInstance(id))?.task_state).toBe(TaskState.POWERING_OFF);
    expect(await handleEc2Event(deps, stateChange('i-0b3', 'stopping', advance(1)))).toBe(
      'in_transition',
    );
    // Reordered: the build's `running` is delivered again while the stop waits.
    expect(await handleEc2Event(deps, started)).toBe('ignored');
    expect((await store.getInstance(id))?.task_state).toBe(TaskState.POWERING_OFF);
    expect(await handleEc2Event(deps, stateChange('i-0b3', 'stopped', advance(5)))).toBe(
      'completed',
    );
    const stopped = await store.getInstance(id);
    expect(stopped).toMatchObject({
      vm_state: VmState.STOPPED,
      task_state: null,
      power_state: PowerState.SHUTDOWN,
    });
    expect(await handleEc2Event(deps, started)).toBe('ignored');
    expect((await store.getInstance(id))?.version).toBe(stopped!.version);
  });

  it('drops in-between states without asking EC2, and needs the EC2 driver', async () => {
    expect(isEc2EventResolver(driver)).toBe(true);
    expect(await handleEc2Event(deps, stateChange('i-0b7', 'stopping', T0))).toBe('in_transition');
    expect(driver.lookups).toBe(0);
    const fake = new FakeDriver({
      nodes: deps.config.fake_nodes,
      store: new InMemoryFakeHypervisorStore(),
      sink: new InMemoryLifecycleSink(),
      async: false,
    });
    expect(isEc2EventResolver(fake)).toBe(false);
    expect(
      await handleEc2Event({ ...deps, driver: fake }, stateChange('i-0b7', 'running', T0)),
    ).toBe('unrecognized');
  });

  it('maps a hibernated `stopped` to SUSPENDED, carrying the driver’s mapping', async () => {
    const { id } = await pendingBuild('i-0b8');
    driver.owners.get('i-0b8')!.stateReason = 'Client.UserInitiatedHibernate';
    // No task waits for `suspended`: ignored, but translated by the driver with the event time.
    expect(await handleEc2Event(deps, stateChange('i-0b8', 'stopped', advance(3)))).toBe('ignored');
    expect(driver.translations).toBe(1);
    expect((await store.getInstance(id))?.task_state).toBe(TaskState.SPAWNING);
  });

  it('ignores instances this deployment does not own, without touching any record', async () => {
    const { id } = await pendingBuild('i-0b4');
    const before = await store.getInstance(id);
    expect(await handleEc2Event(deps, stateChange('i-0f0e1a', 'running', advance(5)))).toBe(
      'foreign',
    );
    expect(await handleEc2Event(deps, stateChange('i-0f0e1a', 'terminated', advance(5)))).toBe(
      'foreign',
    );
    expect(driver.translations).toBe(0);
    expect((await store.getInstance(id))?.version).toBe(before!.version);
  });

  it('records an out-of-band terminate as CRASHED with a fault, once', async () => {
    const { id } = await pendingBuild('i-0b5');
    await handleEc2Event(deps, stateChange('i-0b5', 'running', advance(10)));
    const active = await store.getInstance(id);
    const terminated = stateChange('i-0b5', 'terminated', advance(600));
    expect(await handleEc2Event(deps, terminated)).toBe('guest_gone');
    const crashed = await store.getInstance(id);
    expect(crashed).toMatchObject({
      vm_state: VmState.ACTIVE,
      task_state: null,
      power_state: PowerState.CRASHED,
    });
    const faults = await store.listFaults(id);
    expect(faults).toHaveLength(1);
    expect(faults[0]).toMatchObject({
      command_id: guestGoneCommandId(active!),
      code: 500,
      message: expect.stringMatching(/destroyed outside Stratus/),
    });
    // Duplicates (and a `shutting-down` delivered late) change nothing.
    expect(await handleEc2Event(deps, terminated)).toBe('ignored');
    expect(await handleEc2Event(deps, stateChange('i-0b5', 'shutting-down', T0))).toBe(
      'in_transition',
    );
    expect((await store.getInstance(id))?.version).toBe(crashed!.version);
    expect(await store.listFaults(id)).toHaveLength(1);
  });

  it('does not complete a stop with a terminate: the guest is gone, not stopped', async () => {
    const { id } = await pendingBuild('i-0b6');
    await handleEc2Event(deps, stateChange('i-0b6', 'running', advance(10)));
    await exec(stopInstance, command('stop_instance', id));
    expect(await handleEc2Event(deps, stateChange('i-0b6', 'terminated', advance(5)))).toBe(
      'ignored',
    );
    expect(await store.getInstance(id)).toMatchObject({
      task_state: TaskState.POWERING_OFF,
      power_state: PowerState.RUNNING,
    });
  });
});
