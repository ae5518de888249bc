// Random sequences of commands (duplicates and concurrent conflicting pairs included) against
// one instance, through the real operation handlers on in-memory twins. After every step:
//   - an idle instance has no task_state and no task owner, and no running action;
//   - its power_state agrees with the driver;
//   - every `<x>.start` has its `<x>.end` or `<x>.error` (per command);
//   - every command ended in exactly one outcome, and no instance is ever in two tasks.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InMemoryReplySender } from '../../../lib/commands/reply.ts';
import { parseCommand } from '../../../lib/commands/parse.ts';
import { executeCommand } from '../../../lib/compute/executor.ts';
import { FlavorCatalog } from '../../../lib/compute/flavors.ts';
import { OPERATION_HANDLERS } from '../../../lib/compute/operations/registry.ts';
import type { ComputeDeps } from '../../../lib/compute/runtime.ts';
import { loadConfig } from '../../../lib/config.ts';
import { InMemoryImageStore } from '../../../lib/images/image-store.ts';
import { InMemoryPublisher } from '../../../lib/notifications/publisher.ts';
import { InMemoryNodeStore } from '../../../lib/resources/memory-node-store.ts';
import { InMemoryStateStore } from '../../../lib/store/memory-state-store.ts';
import { InMemoryMigrationStore } from '../../../lib/store/migration-store.ts';
import { InMemoryNodeStateStore } from '../../../lib/store/node-state-store.ts';
import type { Operation } from '../../../lib/topology.ts';
import { FakeDriver } from '../../../lib/virt/fake/driver.ts';
import { InMemoryFakeHypervisorStore } from '../../../lib/virt/fake/store.ts';
import { InMemoryLifecycleSink } from '../../../lib/virt/events.ts';

const INSTANCE = '0b6a2c1e-3d4f-4a5b-8c6d-7e8f9a0b1c2d';

/** Commands a random sequence picks from, with args that are valid for them. */
const COMMANDS: readonly { operation: Operation; args: Record<string, unknown> }[] = [
  { operation: 'stop_instance', args: {} },
  { operation: 'start_instance', args: {} },
  { operation: 'reboot_instance', args: { reboot_type: 'SOFT' } },
  { operation: 'reboot_instance', args: { reboot_type: 'HARD' } },
  { operation: 'pause_instance', args: {} },
  { operation: 'unpause_instance', args: {} },
  { operation: 'suspend_instance', args: {} },
  { operation: 'resume_instance', args: {} },
  { operation: 'lock_instance', args: {} },
  { operation: 'unlock_instance', args: {} },
  { operation: 'rescue_instance', args: {} },
  { operation: 'unrescue_instance', args: {} },
  { operation: 'soft_delete_instance', args: {} },
  { operation: 'restore_instance', args: {} },
  { operation: 'terminate_instance', args: {} },
];

function newDeps(): { deps: ComputeDeps; publisher: InMemoryPublisher; driver: FakeDriver } {
  const config = loadConfig({});
  const publisher = new InMemoryPublisher();
  const driver = new FakeDriver({
    nodes: config.fake_nodes,
    store: new InMemoryFakeHypervisorStore(),
    sink: new InMemoryLifecycleSink(),
    async: false,
  });
  const deps: ComputeDeps = {
    config,
    store: new InMemoryStateStore(),
    driver,
    publisher,
    replies: new InMemoryReplySender(),
    flavors: new FlavorCatalog(),
    clock: () => new Date(),
    logger: { info() {}, warn() {}, error() {} },
    nodes: new InMemoryNodeStore(),
    nodeState: new InMemoryNodeStateStore(),
    images: new InMemoryImageStore(),
    migrations: new InMemoryMigrationStore(),
  };
  return { deps, publisher, driver };
}

let serial = 0;
async function send(deps: ComputeDeps, operation: Operation, args: object, commandId?: string) {
  serial += 1;
  const parsed = parseCommand(
    JSON.stringify({
      version: 1,
      command_id: commandId ?? `seq-${serial}`,
      operation,
      ...(operation === 'build_and_run_instance' ? {} : { instance_id: INSTANCE }),
      context: { user_id: 'u', project_id: 'p' },
      args,
    }),
    operation,
  );
  if (!parsed.ok) throw parsed.error;
  const handler = OPERATION_HANDLERS[operation];
  if (!handler) throw new Error(`no handler for ${operation}`);
  return executeCommand(deps, parsed.command, { senderId: null }, handler);
}

const stepArb = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ kind: fc.constant('one' as const), i: fc.nat(COMMANDS.length - 1) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('duplicate' as const),
      i: fc.nat(COMMANDS.length - 1),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('concurrent' as const),
      i: fc.nat(COMMANDS.length - 1),
      j: fc.nat(COMMANDS.length - 1),
    }),
  },
);

/** Outcomes seen over the whole property run, to show the sequences really exercised the handlers. */
const seen: Record<string, number> = {};

describe('random command sequences (property)', () => {
  it('keep Nova’s invariants after every step', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 12 }), async (steps) => {
        const { deps, publisher, driver } = newDeps();
        const build = await send(
          deps,
          'build_and_run_instance',
          { flavor: 'm1.tiny', image_ref: 'img' },
          `build-${INSTANCE}`,
        );
        // The build's instance id is derived from its command id; bind the sequence to it.
        const instanceId = build.outcome!.instance_id!;
        const commands = new Set<string>();
        for (const step of steps) {
          const a = COMMANDS[step.i]!;
          if (step.kind === 'one') {
            await sendTo(a);
          } else if (step.kind === 'duplicate') {
            const id = `dup-${(serial += 1)}`;
            await Promise.all([sendTo(a, id), sendTo(a, id)]);
            await sendTo(a, id);
          } else {
            const b = COMMANDS[step.j]!;
            await Promise.all([sendTo(a), sendTo(b)]);
          }
          await checkInvariants();
        }

        async function sendTo(c: (typeof COMMANDS)[number], id?: string) {
          const commandId = id ?? `seq-${(serial += 1)}`;
          commands.add(commandId);
          const parsed = parseCommand(
            JSON.stringify({
              version: 1,
              command_id: commandId,
              operation: c.operation,
              instance_id: instanceId,
              context: { user_id: 'u', project_id: 'p' },
              args: c.args,
            }),
            c.operation,
          );
          if (!parsed.ok) throw parsed.error;
          const handler = OPERATION_HANDLERS[c.operation]!;
          let result;
          try {
            result = await executeCommand(deps, parsed.command, { senderId: null }, handler);
          } catch {
            // A twin delivery racing its duplicate is retried by SQS; run it again, as SQS would.
            result = await executeCommand(deps, parsed.command, { senderId: null }, handler);
          }
          const key = `${c.operation}:${result.outcome?.status ?? 'none'}`;
          seen[key] = (seen[key] ?? 0) + 1;
        }

        async function checkInvariants() {
          const instance = await deps.store.getInstance(instanceId);
          expect(instance).not.toBeNull();
          const actions = await deps.store.listActions(instanceId);
          const running = actions.filter((x) => x.status === 'running');
          // Synchronous driver: nothing waits, so every command has finished.
          expect(running.map((x) => x.operation)).toEqual([]);
          expect(instance!.task_state).toBeNull();
          expect(instance!.task_owner).toBeNull();
          for (const commandId of commands) {
            const action =
              (await deps.store.getAction({ kind: 'instance', id: instanceId }, commandId)) ??
              (await deps.store.getAction({ kind: 'command', id: commandId }, commandId));
            expect(action?.outcome, commandId).toBeTruthy();
          }
          if (!instance!.deleted) {
            const info = await driver.getInfo(
              { commandId: 'check', requestId: 'check' },
              instance!,
            );
            expect(instance!.power_state).toBe(info.state);
          }
          const byCommand = new Map<string, string[]>();
          for (const n of publisher.published) {
            byCommand.set(n.command_id, [...(byCommand.get(n.command_id) ?? []), n.event_type]);
          }
          for (const [commandId, types] of byCommand) {
            for (const t of types.filter((x) => x.endsWith('.start'))) {
              const base = t.slice(0, -'.start'.length);
              expect(
                types.includes(`${base}.end`) || types.includes(`${base}.error`),
                `${commandId}: ${t} without .end or .error in ${types.join(', ')}`,
              ).toBe(true);
            }
          }
        }
      }),
      { numRuns: 40 },
    );
    const total = (status: string) =>
      Object.entries(seen)
        .filter(([k]) => k.endsWith(`:${status}`))
        .reduce((n, [, v]) => n + v, 0);
    // Both paths ran many times: operations that changed the instance, and rejections.
    expect(total('succeeded')).toBeGreaterThan(20);
    expect(total('rejected')).toBeGreaterThan(20);
  }, 300_000);
});
