// The fake's asynchronous mode (`fake_async`): long operations change the guest at once but
// answer `pending` and report their end as a lifecycle event, as EC2 does.
import { beforeEach, describe, expect, it } from 'vitest';
import type { Instance } from '../../../lib/compute/instance.ts';
import { POWER_STATE_FOR_TRANSITION, PowerState } from '../../../lib/compute/states.ts';
import type { DriverResult } from '../../../lib/virt/driver.ts';
import type { LifecycleEvent } from '../../../lib/virt/events.ts';
import { DEFAULT_PENDING_DEADLINE_SECONDS, FakeDriver } from '../../../lib/virt/fake/driver.ts';
import { type FakeSetup, ctx, fakeSetup, makeInstance, spawnRequest } from './fixtures.ts';

let s: FakeSetup;
let vm: Instance;

beforeEach(() => {
  s = fakeSetup({ async: true });
  vm = makeInstance();
});

const pending = (expect: string): DriverResult =>
  ({
    status: 'pending',
    expect,
    deadlineSeconds: DEFAULT_PENDING_DEADLINE_SECONDS,
  }) as DriverResult;

/** Advances the test clock, as time passes between commands. */
function tick(ms = 1000): void {
  s.clock.now = new Date(s.clock.now.getTime() + ms);
}

describe('FakeDriver asynchronous mode', () => {
  it('spawn answers pending STARTED with its ports and emits the event after storing the guest', async () => {
    const result = await s.driver.spawn(
      ctx(),
      vm,
      spawnRequest({ requestedNetworks: [{ network_id: 'n' }] }),
    );
    expect(result).toMatchObject({ ...pending('started'), ports: [{ network_id: 'n' }] });
    const guest = await s.store.get('fake-node-1', vm.instance_id);
    expect(guest?.powerState).toBe(PowerState.RUNNING);
    expect(s.sink.events).toEqual([
      {
        instanceId: vm.instance_id,
        transition: 'started',
        node: 'fake-node-1',
        occurredAt: s.clock.now.toISOString(),
        source: 'fake',
        sequence: guest?.sequence,
      },
    ]);
  });

  it('spawn with power_on false expects STOPPED', async () => {
    expect(await s.driver.spawn(ctx(), vm, spawnRequest({ powerOn: false }))).toMatchObject(
      pending('stopped'),
    );
    expect(s.sink.events.map((e) => e.transition)).toEqual(['stopped']);
  });

  it.each([
    ['powerOff', 'stopped', PowerState.SHUTDOWN],
    ['reboot', 'started', PowerState.RUNNING],
    ['suspend', 'suspended', PowerState.SUSPENDED],
  ] as const)('%s of a running guest answers pending %s', async (method, transition, state) => {
    await s.driver.spawn(ctx(), vm, spawnRequest());
    s.sink.take();
    const call =
      method === 'reboot' ? s.driver.reboot(ctx(), vm, 'SOFT') : s.driver[method](ctx(), vm);
    expect(await call).toEqual(pending(transition));
    expect((await s.driver.getInfo(ctx(), vm)).state).toBe(state);
    expect(s.sink.events.map((e) => e.transition)).toEqual([transition]);
    expect(POWER_STATE_FOR_TRANSITION[transition]).toBe(state);
  });

  it('power_on and resume answer pending STARTED and RESUMED', async () => {
    await s.driver.spawn(ctx(), vm, spawnRequest({ powerOn: false }));
    expect(await s.driver.powerOn(ctx(), vm)).toEqual(pending('started'));
    await s.driver.suspend(ctx(), vm);
    expect(await s.driver.resume(ctx(), vm)).toEqual(pending('resumed'));
    expect(s.sink.events.map((e) => e.transition)).toEqual([
      'stopped',
      'started',
      'suspended',
      'resumed',
    ]);
  });

  it('destroy answers pending STOPPED; destroying an unknown guest is done without an event', async () => {
    await s.driver.spawn(ctx(), vm, spawnRequest());
    const spawnedSequence = s.sink.take()[0]?.sequence ?? 0;
    expect(await s.driver.destroy(ctx(), vm)).toEqual(pending('stopped'));
    const [event] = s.sink.take();
    expect(event).toMatchObject({ transition: 'stopped', instanceId: vm.instance_id });
    expect(event?.sequence).toBeGreaterThan(spawnedSequence);
    expect(await s.driver.destroy(ctx(), vm)).toEqual({
      status: 'done',
      powerState: PowerState.NOSTATE,
    });
    expect(s.sink.events).toEqual([]);
  });

  it('nothing to wait for is done: a replayed spawn, or a guest already in the target state', async () => {
    await s.driver.spawn(ctx(), vm, spawnRequest());
    s.sink.take();
    expect(await s.driver.spawn(ctx(), vm, spawnRequest())).toEqual({
      status: 'done',
      powerState: PowerState.RUNNING,
      ports: [],
    });
    expect(await s.driver.powerOn(ctx(), vm)).toEqual({
      status: 'done',
      powerState: PowerState.RUNNING,
    });
    expect(await s.driver.resume(ctx(), vm)).toEqual({
      status: 'done',
      powerState: PowerState.RUNNING,
    });
    await s.driver.powerOff(ctx(), vm);
    s.sink.take();
    expect(await s.driver.powerOff(ctx(), vm)).toEqual({
      status: 'done',
      powerState: PowerState.SHUTDOWN,
    });
    expect(s.sink.events).toEqual([]);
  });

  it('operations the platform finishes at once stay synchronous', async () => {
    await s.driver.spawn(ctx(), vm, spawnRequest());
    s.sink.take();
    expect(await s.driver.pause(ctx(), vm)).toEqual({
      status: 'done',
      powerState: PowerState.PAUSED,
    });
    expect(await s.driver.unpause(ctx(), vm)).toEqual({
      status: 'done',
      powerState: PowerState.RUNNING,
    });
    expect(await s.driver.softDelete(ctx(), vm)).toEqual({
      status: 'done',
      powerState: PowerState.SHUTDOWN,
    });
    expect(s.sink.events).toEqual([]);
  });

  it('carries the configured deadline', async () => {
    const driver = new FakeDriver({
      nodes: s.driver.nodes,
      store: s.store,
      sink: s.sink,
      async: true,
      deadlineSeconds: 42,
    });
    expect(await driver.spawn(ctx(), vm, spawnRequest())).toMatchObject({ deadlineSeconds: 42 });
  });

  it('a failed event delivery fails the call; the retried call finds the work done', async () => {
    const setup = fakeSetup({ async: true });
    let failing = true;
    setup.driver.registerEventListener({
      emit: async (event) => {
        if (failing) throw new Error('PutEvents failed');
        await setup.sink.emit(event);
      },
    });
    await expect(setup.driver.spawn(ctx(), vm, spawnRequest())).rejects.toThrow('PutEvents failed');
    failing = false;
    expect(await setup.driver.spawn(ctx(), vm, spawnRequest())).toMatchObject({
      status: 'done',
      powerState: PowerState.RUNNING,
    });
  });

  describe('events delivered late, twice or out of order', () => {
    /** A consumer that keeps, per guest, the newest event it has seen. */
    function latestBySequence(events: LifecycleEvent[]): Map<string, LifecycleEvent> {
      const latest = new Map<string, LifecycleEvent>();
      for (const event of events) {
        const known = latest.get(event.instanceId);
        if (known === undefined || event.sequence > known.sequence)
          latest.set(event.instanceId, event);
      }
      return latest;
    }

    it('the largest sequence is the guest’s current state, whatever the delivery order', async () => {
      await s.driver.spawn(ctx(), vm, spawnRequest());
      tick();
      await s.driver.powerOff(ctx(), vm);
      await s.driver.powerOn(ctx(), vm);
      await s.driver.suspend(ctx(), vm);
      const events = s.sink.take();
      expect(events.map((e) => e.sequence)).toEqual(
        [...events.map((e) => e.sequence)].sort((a, b) => a - b),
      );
      const shuffled = [events[2]!, events[0]!, events[3]!, events[3]!, events[1]!, events[0]!];
      const newest = latestBySequence(shuffled).get(vm.instance_id);
      expect(newest?.transition).toBe('suspended');
      expect(POWER_STATE_FOR_TRANSITION[newest!.transition]).toBe(
        (await s.driver.getInfo(ctx(), vm)).state,
      );
    });

    it('a guest re-created after a destroy continues above the destroyed one', async () => {
      await s.driver.spawn(ctx('first'), vm, spawnRequest());
      await s.driver.powerOff(ctx(), vm);
      await s.driver.destroy(ctx(), vm);
      tick();
      await s.driver.spawn(ctx('second'), vm, spawnRequest());
      const events = s.sink.take();
      expect(events.map((e) => e.transition)).toEqual(['started', 'stopped', 'stopped', 'started']);
      expect(latestBySequence(events.reverse()).get(vm.instance_id)?.transition).toBe('started');
    });
  });
});
