// trigger_crash_dump and set_admin_password through SQS: states and events, forbidden states,
// locks, Nova's failure rules, and the new password kept out of every stored item, log line,
// notification and reply.

import { DynamoDBClient, ListTablesCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ALLOW_TRIGGER_CRASH_DUMP,
  PowerState,
  TaskState,
  VmState,
} from '../../lib/compute/states.ts';
import { awsTestClientConfig, emulatorEndpoints } from '../support/emulators.ts';
import {
  activeInstance,
  eventTrail,
  expectForbiddenStatesRejected,
  forceState,
  run,
} from '../support/operations.ts';
import { type TestStack, buildCommand, startTestStack } from '../support/stack.ts';

for (const mode of ['sync', 'async'] as const) {
  describe(`trigger_crash_dump and set_admin_password (${mode} driver)`, () => {
    let stack: TestStack;
    const logged: string[] = [];

    beforeAll(async () => {
      // The functions log at their most verbose here (read once, when they load), so the
      // secret test reads every line they can write; beforeEach keeps it off the console.
      process.env.POWERTOOLS_LOG_LEVEL = 'DEBUG';
      stack = await startTestStack({
        label: `maintenance-${mode}`,
        options: {
          notify_on_state_change: 'vm_and_task_state',
          fake_async: mode === 'async' ? 'true' : 'false',
          admin_producers: '["000000000000"]',
        },
        operations: ['trigger_crash_dump', 'set_admin_password'],
      });
      process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
    });

    beforeEach(() => {
      logged.length = 0;
      for (const method of ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const) {
        vi.spyOn(console, method).mockImplementation(record);
      }
    });

    afterEach(() => vi.restoreAllMocks());

    function record(...args: unknown[]): void {
      logged.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
    }

    async function fakeDriver() {
      return (await import('../../lib/virt/fake/driver.ts')).FakeDriver;
    }
    async function virtErrors() {
      return import('../../lib/virt/errors.ts');
    }

    /** Also captures what reaches the process streams while `body` runs. */
    async function capturingStreams(body: () => Promise<void>): Promise<void> {
      const spies = [process.stdout, process.stderr].map((stream) =>
        vi.spyOn(stream, 'write').mockImplementation((chunk: unknown) => {
          record(String(chunk));
          return true;
        }),
      );
      try {
        await body();
      } finally {
        for (const spy of spies) spy.mockRestore();
      }
    }

    /** Every item of every table of this deployment, as text. */
    async function everyStoredItem(): Promise<string> {
      const client = new DynamoDBClient(awsTestClientConfig(emulatorEndpoints().dynamodb));
      const tables = (await client.send(new ListTablesCommand({}))).TableNames ?? [];
      const ours = tables.filter((t) => t.startsWith(stack.config.prefix));
      expect(ours.length).toBeGreaterThanOrEqual(3);
      const items: unknown[] = [];
      for (const table of ours) {
        let start: Record<string, unknown> | undefined;
        do {
          const out = await client.send(
            new ScanCommand({ TableName: table, ExclusiveStartKey: start as never }),
          );
          items.push(...(out.Items ?? []));
          start = out.LastEvaluatedKey;
        } while (start);
      }
      return JSON.stringify(items);
    }

    it('triggers a crash dump without touching any state', async () => {
      const id = await activeInstance(stack);
      const before = (await stack.store.getInstance(id))!;
      await stack.receiveEvents();
      const dump = vi.spyOn((await fakeDriver()).prototype, 'triggerCrashDump');
      const action = await run(stack, 'trigger_crash_dump', id);
      expect(action).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'compute_trigger_crash_dump', result: 'Success' }],
      });
      expect(dump).toHaveBeenCalledTimes(1);
      expect((await stack.store.getInstance(id))?.version).toBe(before.version);
      expect(await eventTrail(stack, id)).toEqual([
        'trigger_crash_dump.start',
        'trigger_crash_dump.end',
      ]);
    });

    it('crash dump: rejects forbidden vm_states, a running task and a missing host', async () => {
      const id = await activeInstance(stack);
      await expectForbiddenStatesRejected(
        stack,
        'trigger_crash_dump',
        id,
        ALLOW_TRIGGER_CRASH_DUMP,
      );
      for (const changes of [
        { vm_state: VmState.ACTIVE, task_state: TaskState.REBOOTING, task_owner: 'other' },
        { task_state: null, task_owner: null, host: null },
      ]) {
        const before = await forceState(stack, id, changes);
        const refused = await run(stack, 'trigger_crash_dump', id);
        expect(refused).toMatchObject({ status: 'rejected', outcome: { error: { code: 409 } } });
        expect((await stack.store.getInstance(id))?.version).toBe(before.version);
      }
    });

    it('crash dump: its expected errors are a fault and a failed outcome, nothing reverted', async () => {
      const id = await activeInstance(stack);
      const { NotSupportedError } = await virtErrors();
      vi.spyOn((await fakeDriver()).prototype, 'triggerCrashDump').mockRejectedValueOnce(
        new NotSupportedError('fake', 'trigger_crash_dump'),
      );
      const before = (await stack.store.getInstance(id))!;
      await stack.receiveEvents();
      const unsupported = await run(stack, 'trigger_crash_dump', id);
      expect(unsupported).toMatchObject({
        status: 'failed',
        error_code: 'NotSupported',
        outcome: { error: { code: 501 } },
        events: [{ event: 'compute_trigger_crash_dump', result: 'Error' }],
      });
      expect((await stack.store.getInstance(id))?.version).toBe(before.version);
      expect((await stack.store.listFaults(id)).at(-1)?.code).toBe(501);
      expect(await eventTrail(stack, id)).toEqual(['trigger_crash_dump.start']);

      // A paused guest is not running: the fake driver says so (InstanceNotRunning, 409).
      await forceState(stack, id, { vm_state: VmState.PAUSED });
      vi.spyOn((await fakeDriver()).prototype, 'triggerCrashDump').mockRejectedValueOnce(
        new (await virtErrors()).DriverError(
          'InstanceNotRunning',
          `Instance ${id} is not running.`,
        ),
      );
      const notRunning = await run(stack, 'trigger_crash_dump', id);
      expect(notRunning).toMatchObject({ status: 'failed', outcome: { error: { code: 409 } } });
      expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.PAUSED);
    });

    it('sets the admin password through UPDATING_PASSWORD, with no start/end events', async () => {
      const id = await activeInstance(stack);
      await stack.receiveEvents();
      const set = vi.spyOn((await fakeDriver()).prototype, 'setAdminPassword');
      const action = await run(stack, 'set_admin_password', id, {
        args: { new_password: 'correct-horse' },
      });
      expect(action).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'compute_set_admin_password', result: 'Success' }],
      });
      expect(set.mock.calls[0]?.[2]).toBe('correct-horse');
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        task_owner: null,
      });
      expect(await eventTrail(stack, id)).toEqual([
        'update:active/updating_password',
        'update:active/-',
      ]);
    });

    it('the new password appears in no stored item, log line, event or reply', async () => {
      const id = await activeInstance(stack);
      const secret = `Pw-${Math.random().toString(36).slice(2)}-${Date.now()}`;
      const replyTo = await stack.createReplyQueue();
      // One command that succeeds, one that fails in the driver with the secret in its message.
      const { DriverError } = await virtErrors();
      await capturingStreams(async () => {
        for (const fails of [false, true]) {
          if (fails) {
            vi.spyOn((await fakeDriver()).prototype, 'setAdminPassword').mockRejectedValueOnce(
              new DriverError('HypervisorUnavailable', `agent rejected ${secret}`),
            );
          }
          const command = buildCommand({
            operation: 'set_admin_password',
            instance_id: id,
            context: { user_id: 'user-1', project_id: 'project-1' },
            args: { new_password: secret },
            reply_to: replyTo,
          });
          await stack.send('set_admin_password', command);
          await stack.drain('set_admin_password');
        }
      });
      const actions = await stack.store.listActions(id);
      expect(actions.filter((a) => a.operation === 'set_admin_password')).toMatchObject([
        { status: 'succeeded' },
        {
          status: 'failed',
          outcome: {
            error: {
              message: `Failed to set admin password on ${id} because error setting admin password`,
            },
          },
        },
      ]);
      // The capture saw the functions' logs (and so would have seen the secret).
      expect(logged.join('\n')).toContain('Admin password set');
      expect(logged.join('\n')).toContain('set_admin_password failed');
      expect(logged.join('\n')).not.toContain(secret);
      expect(await everyStoredItem()).not.toContain(secret);
      expect(JSON.stringify(await stack.receiveEvents())).not.toContain(secret);
      const replies = await stack.receiveAll(replyTo);
      expect(replies).toHaveLength(2);
      expect(JSON.stringify(replies)).not.toContain(secret);
    });

    it('set_admin_password: a guest that is not running fails it and clears the task', async () => {
      const id = await activeInstance(stack);
      vi.spyOn((await fakeDriver()).prototype, 'getInfo').mockResolvedValueOnce({
        state: PowerState.SHUTDOWN,
      });
      const set = vi.spyOn((await fakeDriver()).prototype, 'setAdminPassword');
      const action = await run(stack, 'set_admin_password', id, {
        args: { new_password: 'x-password' },
      });
      expect(action).toMatchObject({
        status: 'failed',
        outcome: {
          error: {
            code: 409,
            message: `Failed to set admin password on ${id} because instance ${id} is not running`,
          },
        },
        events: [{ event: 'compute_set_admin_password', result: 'Error' }],
      });
      expect(set).not.toHaveBeenCalled();
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        task_owner: null,
      });
      expect((await stack.store.listFaults(id)).at(-1)?.message).toContain('is not running');
    });

    it('set_admin_password: a driver without it is a 501 with the task cleared', async () => {
      const id = await activeInstance(stack);
      const { NotSupportedError } = await virtErrors();
      vi.spyOn((await fakeDriver()).prototype, 'setAdminPassword').mockRejectedValueOnce(
        new NotSupportedError('fake', 'set_admin_password'),
      );
      const action = await run(stack, 'set_admin_password', id, {
        args: { new_password: 'x-password' },
      });
      expect(action).toMatchObject({ status: 'failed', outcome: { error: { code: 501 } } });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
      });
    });

    it('set_admin_password: rejects every vm_state but ACTIVE, and locks', async () => {
      const id = await activeInstance(stack);
      const o = { args: { new_password: 'x-password' } };
      await expectForbiddenStatesRejected(stack, 'set_admin_password', id, [VmState.ACTIVE], o);
      const before = await forceState(stack, id, {
        vm_state: VmState.ACTIVE,
        locked: true,
        locked_by: 'admin',
      });
      for (const op of ['set_admin_password', 'trigger_crash_dump'] as const) {
        const refused = await run(stack, op, id, op === 'set_admin_password' ? o : {});
        expect(refused, op).toMatchObject({
          status: 'rejected',
          error_code: 'InstanceIsLocked',
          outcome: { error: { code: 409 } },
        });
      }
      expect((await stack.store.getInstance(id))?.version).toBe(before.version);
      expect((await run(stack, 'set_admin_password', id, { ...o, roles: ['admin'] })).status).toBe(
        'succeeded',
      );
      expect((await run(stack, 'trigger_crash_dump', id, { roles: ['admin'] })).status).toBe(
        'succeeded',
      );
    });
  });
}
