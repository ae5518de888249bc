// Property: whatever sequence of power operations runs, getInfo agrees with a small model of a
// hypervisor, every call succeeds or fails exactly when the model says so, and in asynchronous
// mode a pending answer promises the transition that leads to the state the guest is in.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { POWER_STATE_FOR_TRANSITION, PowerState } from '../../../lib/compute/states.ts';
import { InstanceNotFoundError } from '../../../lib/errors.ts';
import type { DriverResult } from '../../../lib/virt/driver.ts';
import { DriverError } from '../../../lib/virt/errors.ts';
import type { FakeDriver } from '../../../lib/virt/fake/driver.ts';
import { ctx, fakeSetup, makeInstance, spawnRequest } from './fixtures.ts';

type Guest = { power: PowerState; rescued: boolean } | null;
type Outcome = 'ok' | 'not-found' | 'refused';

const OPS = [
  'spawnOn',
  'spawnOff',
  'destroy',
  'powerOff',
  'powerOn',
  'pause',
  'unpause',
  'suspend',
  'resume',
  'rebootSoft',
  'rebootHard',
  'softDelete',
  'restore',
  'rescue',
  'unrescue',
] as const;
type Op = (typeof OPS)[number];

const { RUNNING, PAUSED, SHUTDOWN, SUSPENDED } = PowerState;

/** The model: the next guest and the outcome of `op` on `guest`. */
function model(guest: Guest, op: Op): [Guest, Outcome] {
  if (op === 'spawnOn' || op === 'spawnOff') {
    return [guest ?? { power: op === 'spawnOn' ? RUNNING : SHUTDOWN, rescued: false }, 'ok'];
  }
  if (op === 'destroy') return [null, 'ok'];
  if (op === 'rebootHard') return [{ power: RUNNING, rescued: guest?.rescued ?? false }, 'ok'];
  if (guest === null) return [null, 'not-found'];
  const to = (power: PowerState, rescued = guest.rescued): [Guest, Outcome] => [
    { power, rescued },
    'ok',
  ];
  const refused: [Guest, Outcome] = [guest, 'refused'];
  switch (op) {
    case 'powerOff':
    case 'softDelete':
      return to(SHUTDOWN);
    case 'powerOn':
    case 'restore':
    case 'rebootSoft':
      return to(RUNNING);
    case 'pause':
      return guest.power === RUNNING || guest.power === PAUSED ? to(PAUSED) : refused;
    case 'unpause':
      return guest.power === RUNNING || guest.power === PAUSED ? to(RUNNING) : refused;
    case 'suspend':
      return guest.power === RUNNING || guest.power === PAUSED || guest.power === SUSPENDED
        ? to(SUSPENDED)
        : refused;
    case 'resume':
      return guest.power === RUNNING || guest.power === SUSPENDED ? to(RUNNING) : refused;
    case 'rescue':
      return guest.rescued ? [guest, 'ok'] : to(RUNNING, true);
    case 'unrescue':
      return guest.rescued ? to(RUNNING, false) : [guest, 'ok'];
  }
}

async function run(
  driver: FakeDriver,
  op: Op,
  instance: ReturnType<typeof makeInstance>,
): Promise<DriverResult> {
  const c = ctx(`cmd-${op}`);
  switch (op) {
    case 'spawnOn':
      return driver.spawn(c, instance, spawnRequest({ powerOn: true }));
    case 'spawnOff':
      return driver.spawn(c, instance, spawnRequest({ powerOn: false }));
    case 'rebootSoft':
      return driver.reboot(c, instance, 'SOFT');
    case 'rebootHard':
      return driver.reboot(c, instance, 'HARD');
    case 'rescue':
      return driver.rescue(c, instance, {
        rescueImageRef: null,
        imageMeta: {},
        rescuePassword: null,
      });
    default:
      return driver[op](c, instance);
  }
}

function classify(error: unknown): Outcome {
  if (error instanceof InstanceNotFoundError) return 'not-found';
  if (error instanceof DriverError) return 'refused';
  throw error;
}

const sequences = fc.array(fc.constantFrom(...OPS), { minLength: 1, maxLength: 40 });

describe('FakeDriver power state model', () => {
  it('keeps getInfo consistent with the model (synchronous mode)', async () => {
    await fc.assert(
      fc.asyncProperty(sequences, async (ops) => {
        const { driver, sink } = fakeSetup();
        const instance = makeInstance();
        let guest: Guest = null;
        for (const op of ops) {
          const [next, expected] = model(guest, op);
          const result = await run(driver, op, instance).then(
            (value) => ({ outcome: 'ok' as Outcome, value }),
            (error: unknown) => ({ outcome: classify(error), value: null }),
          );
          expect(result.outcome, `${op} after ${JSON.stringify(guest)}`).toBe(expected);
          guest = next;
          if (result.value !== null) {
            expect(result.value).toMatchObject({
              status: 'done',
              powerState: guest?.power ?? PowerState.NOSTATE,
            });
          }
          const info = await driver.getInfo(ctx(), instance).then(
            (i) => i.state,
            () => null,
          );
          expect(info, `getInfo after ${ops.join(',')}`).toBe(guest?.power ?? null);
        }
        expect(sink.events).toEqual([]);
      }),
    );
  });

  it('promises, in asynchronous mode, the transition into the state the guest is in', async () => {
    await fc.assert(
      fc.asyncProperty(sequences, async (ops) => {
        const { driver, sink, clock } = fakeSetup({ async: true });
        const instance = makeInstance();
        let guest: Guest = null;
        let lastSequence = 0;
        for (const op of ops) {
          // Commands are at least a millisecond apart (each is a Lambda invocation with
          // DynamoDB round trips); sequences of a re-created guest rely on the clock moving on.
          clock.now = new Date(clock.now.getTime() + 1);
          const [next, expected] = model(guest, op);
          const before = guest;
          const result = await run(driver, op, instance).catch((error: unknown) => classify(error));
          guest = next;
          if (typeof result === 'string') {
            expect(result).toBe(expected);
            expect(sink.events).toEqual([]);
            continue;
          }
          const events = sink.take();
          if (result.status === 'done') {
            expect(events).toEqual([]);
            expect(result.powerState).toBe(guest?.power ?? PowerState.NOSTATE);
            continue;
          }
          // pending: one event, with the promised transition and a newer sequence
          expect(events).toHaveLength(1);
          expect(events[0]?.transition).toBe(result.expect);
          expect(events[0]!.sequence).toBeGreaterThan(lastSequence);
          lastSequence = events[0]!.sequence;
          if (op === 'destroy') {
            expect(before).not.toBeNull();
            expect(result.expect).toBe('stopped');
          } else {
            expect(POWER_STATE_FOR_TRANSITION[result.expect]).toBe(guest?.power);
          }
        }
      }),
    );
  });
});
