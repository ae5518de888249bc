// The command pipeline's promises, end to end through the real handlers: bad commands get a
// specific answer, change nothing and are not retried; admin claims are honoured only from
// admin producers; secrets reach no log, event or stored item; a crash after spawn resumes with
// one guest; a command that always fails lands in its DLQ with the error recorded.

import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { instanceIdForCommand } from '../../lib/commands/parse.ts';
import { VmState } from '../../lib/compute/states.ts';
import { describeWithMoto } from '../support/emulators.ts';
import { type TestStack, buildCommand, startTestStack } from '../support/stack.ts';

const SECRET_PASSWORD = 'Pa55-SECRET-d0nt-l0g';
const SECRET_USER_DATA_TEXT = '#cloud-config SECRET-USER-DATA';
const SECRET_FILE_TEXT = 'ssh-rsa SECRET-FILE-CONTENTS';
const b64 = (s: string) => Buffer.from(s).toString('base64');

async function scanAll(stack: TestStack): Promise<string> {
  const tables = Object.values(stack.config.tables);
  const dumps = await Promise.all(
    tables.map(async (TableName) =>
      JSON.stringify((await stack.doc.send(new ScanCommand({ TableName }))).Items ?? []),
    ),
  );
  return dumps.join('\n');
}

/** Captures everything written to stdout/stderr (Powertools logs go to stdout) while fn runs. */
async function captureOutput(fn: () => Promise<void>): Promise<string> {
  const chunks: string[] = [];
  const spies = [process.stdout, process.stderr].map((stream) =>
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
      chunks.push(String(chunk));
      return true;
    }),
  );
  const consoleSpies = (['log', 'info', 'warn', 'error', 'debug'] as const).map((m) =>
    vi.spyOn(console, m).mockImplementation((...args: unknown[]) => {
      chunks.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
    }),
  );
  try {
    await fn();
  } finally {
    for (const s of [...spies, ...consoleSpies]) s.mockRestore();
  }
  return chunks.join('');
}

describeWithMoto('command pipeline', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack({
      label: 'pipe',
      eventbridge: true,
      visibilityTimeoutSeconds: 1,
      maxReceiveCount: 2,
      options: {
        notify_api_faults: 'true',
        notify_on_state_change: 'vm_and_task_state',
        admin_producers: '["AIDATRUSTEDADMIN"]',
      },
    });
  });

  afterEach(() => vi.restoreAllMocks());

  async function expectRejected(
    body: unknown,
    operation: 'build_and_run_instance' | 'terminate_instance',
    code: number,
    errorCode: string,
  ) {
    const replyTo = await stack.createReplyQueue();
    const withReply = typeof body === 'string' ? body : { ...(body as object), reply_to: replyTo };
    const before = await scanAll(stack);
    await stack.send(operation, withReply);
    await stack.drain(operation);
    return { replyTo, before, code, errorCode };
  }

  it.each([
    [
      'schema violation',
      () => buildCommand({ args: { flavor: 'm1.small', image_ref: 'img', colour: 'red' } }),
      'build_and_run_instance',
      400,
      'InvalidCommand',
    ],
    [
      'wrong queue',
      () => ({
        ...buildCommand(),
        operation: 'terminate_instance',
        instance_id: '6a1f3c2e-8b4d-4e7f-9a0b-1c2d3e4f5a6b',
        args: {},
      }),
      'build_and_run_instance',
      400,
      'WrongQueue',
    ],
    [
      'unknown instance',
      () => ({
        ...buildCommand(),
        operation: 'terminate_instance',
        instance_id: '6a1f3c2e-8b4d-4e7f-9a0b-1c2d3e4f5a6b',
        args: {},
      }),
      'terminate_instance',
      404,
      'InstanceNotFound',
    ],
    [
      'forbidden admin claim',
      () => buildCommand({ context: { user_id: 'u', project_id: 'p', roles: ['admin'] } }),
      'build_and_run_instance',
      403,
      'Forbidden',
    ],
    [
      'unknown flavor',
      () => buildCommand({ args: { flavor: 'm9.huge', image_ref: 'img' } }),
      'build_and_run_instance',
      400,
      'UnknownFlavor',
    ],
  ] as const)(
    'answers a %s with its specific rejection and changes nothing',
    async (_name, make, operation, code, errorCode) => {
      const command = make() as ReturnType<typeof buildCommand>;
      const r = await expectRejected(command, operation, code, errorCode);

      const replies = await stack.receiveAll(r.replyTo);
      expect(replies).toHaveLength(1);
      const outcome = JSON.parse(replies[0]!.Body!);
      expect(outcome).toMatchObject({
        command_id: command.command_id,
        status: 'rejected',
        error: { code },
      });
      const action = await stack.store.findActionByCommand(command.command_id);
      expect(action).toMatchObject({ status: 'rejected', error_code: errorCode });
      // Nothing changed: no instance appeared, and the only new items are the rejection's action.
      expect(await stack.store.getInstance(instanceIdForCommand(command.command_id))).toBeNull();
      // Not retried: nothing left in the queue or its DLQ.
      expect(await stack.receiveAll(stack.topology.queues[operation]!.url)).toHaveLength(0);
      expect(await stack.receiveAll(stack.topology.queues[operation]!.dlqUrl)).toHaveLength(0);
      const faults = (await stack.receiveEvents()).filter((e) => e['detail-type'] === 'api.fault');
      expect(faults.map((f) => f.detail.payload)).toContainEqual(
        expect.objectContaining({
          operation: command.operation,
          exception: errorCode,
          status: code,
        }),
      );
    },
  );

  it('answers malformed JSON with MalformedJson, keyed on the SQS message id', async () => {
    const messageId = await stack.send('build_and_run_instance', '{"version": 1, "command_id": ');
    await stack.drain('build_and_run_instance');
    const action = await stack.store.findActionByCommand(`sqs:${messageId}`);
    expect(action).toMatchObject({
      status: 'rejected',
      error_code: 'MalformedJson',
      outcome: { error: { code: 400 } },
    });
    expect(
      await stack.receiveAll(stack.topology.queues.build_and_run_instance!.dlqUrl),
    ).toHaveLength(0);
  });

  it('refuses a command_id already used by another command, leaving that command alone', async () => {
    const build = buildCommand();
    await stack.send('build_and_run_instance', build);
    await stack.drain('build_and_run_instance');
    const instanceId = instanceIdForCommand(build.command_id);
    const replyTo = await stack.createReplyQueue();
    // Another project reuses the build's id to delete its instance.
    const hijack = {
      ...build,
      operation: 'terminate_instance',
      instance_id: instanceId,
      args: {},
      context: { user_id: 'mallory', project_id: 'other' },
      reply_to: replyTo,
    };
    await stack.send('terminate_instance', hijack);
    await stack.drain('terminate_instance');
    const [reply] = await stack.receiveAll(replyTo);
    expect(JSON.parse(reply!.Body!)).toMatchObject({ status: 'rejected', error: { code: 400 } });
    expect(await stack.store.getInstance(instanceId)).toMatchObject({
      vm_state: VmState.ACTIVE,
      task_state: null,
    });
    expect(await stack.store.findActionByCommand(build.command_id)).toMatchObject({
      operation: 'build_and_run_instance',
      status: 'succeeded',
    });
  });

  it('builds an instance whose metadata is as large as the contract allows', async () => {
    const metadata = Object.fromEntries(
      Array.from({ length: 128 }, (_, i) => [
        `${String(i).padStart(3, '0')}${'k'.repeat(252)}`,
        'v'.repeat(255),
      ]),
    );
    const command = buildCommand({ args: { flavor: 'm1.tiny', image_ref: 'img', metadata } });
    await stack.send('build_and_run_instance', command);
    await stack.drain('build_and_run_instance');
    expect(await stack.store.findActionByCommand(command.command_id)).toMatchObject({
      status: 'succeeded',
    });
    const ends = (await stack.receiveEvents()).filter(
      (e) =>
        e['detail-type'] === 'compute.instance.create.end' &&
        e.detail.command_id === command.command_id,
    );
    expect(Object.keys(ends[0]!.detail.payload.metadata as object)).toHaveLength(128);
  });

  it('accepts only SQS queue URLs as reply_to', async () => {
    const command = buildCommand({ reply_to: 'https://attacker.example.com/000000000000/q' });
    await stack.send('build_and_run_instance', command);
    await stack.drain('build_and_run_instance');
    const action = await stack.store.findActionByCommand(command.command_id);
    expect(action).toMatchObject({
      status: 'rejected',
      error_code: 'InvalidCommand',
      reply_to: null,
    });
    expect(action?.outcome?.error?.message).toContain('reply_to');
  });

  it('keeps admin_password, user_data and injected file contents out of logs, events and stored items', async () => {
    const command = buildCommand({
      args: {
        flavor: 'm1.small',
        image_ref: 'img',
        admin_password: SECRET_PASSWORD,
        user_data: b64(SECRET_USER_DATA_TEXT),
        injected_files: [{ path: '/root/.ssh/authorized_keys', contents: b64(SECRET_FILE_TEXT) }],
      },
    });
    // The handlers' own logger (same module instance), at its most verbose while the secret travels.
    const { logger } = await import('../../functions/commons/powertools.ts');
    logger.setLogLevel('DEBUG');
    const logs = await captureOutput(async () => {
      logger.debug('secret test starts', { command_id: command.command_id });
      await stack.send('build_and_run_instance', command);
      await stack.drain('build_and_run_instance');
    });
    logger.setLogLevel('SILENT');
    expect(logs).toContain(command.command_id); // the capture really sees the handler's log lines
    const instance = await stack.store.getInstance(instanceIdForCommand(command.command_id));
    expect(instance?.vm_state).toBe(VmState.ACTIVE);
    const events = JSON.stringify(await stack.receiveEvents());
    const stored = await scanAll(stack);
    for (const secret of [
      SECRET_PASSWORD,
      SECRET_USER_DATA_TEXT,
      SECRET_FILE_TEXT,
      b64(SECRET_USER_DATA_TEXT),
      b64(SECRET_FILE_TEXT),
    ]) {
      expect(logs).not.toContain(secret);
      expect(events).not.toContain(secret);
      expect(stored).not.toContain(secret);
    }
    expect(events).toContain(command.command_id); // the scans did see this command's traces
    expect(stored).toContain(command.command_id);
  });

  it('resumes a build that crashed between spawn and its final write, with one spawn', async () => {
    const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
    const original = FakeDriver.prototype.spawn;
    let calls = 0;
    vi.spyOn(FakeDriver.prototype, 'spawn').mockImplementation(async function (
      this: InstanceType<typeof FakeDriver>,
      ...args
    ) {
      calls += 1;
      const result = await original.apply(this, args);
      if (calls === 1)
        throw Object.assign(new Error('Lambda timed out after spawn'), { name: 'TimeoutError' });
      return result;
    });
    const command = buildCommand();
    await stack.send('build_and_run_instance', command);
    await stack.drain('build_and_run_instance');
    const instanceId = instanceIdForCommand(command.command_id);
    expect((await stack.store.getInstance(instanceId))?.task_state).toBe('spawning');
    await new Promise((r) => setTimeout(r, 1200)); // the visibility timeout
    await stack.drain('build_and_run_instance');

    const instance = await stack.store.getInstance(instanceId);
    expect(instance).toMatchObject({ vm_state: VmState.ACTIVE, task_state: null });
    expect(calls).toBe(2);
    const { DynamoDbFakeHypervisorStore } = await import('../../lib/virt/fake/dynamodb-store.ts');
    const guests = new DynamoDbFakeHypervisorStore({
      client: stack.doc,
      tableName: stack.config.tables.fakeHypervisor,
    });
    const guest = await guests.get(instance!.node!, instanceId);
    expect(guest?.createdBy).toBe(command.command_id);
    expect((await stack.store.listActions(instanceId))[0]?.events).toHaveLength(1);
    const creates = (await stack.receiveEvents()).filter(
      (e) => e.resources.includes(instanceId) && e['detail-type'] === 'compute.instance.create.end',
    );
    expect(creates).toHaveLength(1);
  });

  it('moves a command that fails every time to its DLQ after maxReceiveCount, with the error recorded', async () => {
    const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
    vi.spyOn(FakeDriver.prototype, 'spawn').mockRejectedValue(
      Object.assign(new Error('hypervisor unreachable'), { name: 'TimeoutError' }),
    );
    const command = buildCommand();
    await stack.send('build_and_run_instance', command);
    const dlq = stack.topology.queues.build_and_run_instance!.dlqUrl;
    let dead: Awaited<ReturnType<TestStack['receiveAll']>> = [];
    for (let i = 0; i < 10 && dead.length === 0; i++) {
      await stack.drain('build_and_run_instance');
      await new Promise((r) => setTimeout(r, 1100));
      dead = await stack.receiveAll(dlq);
    }
    expect(dead).toHaveLength(1);
    expect(JSON.parse(dead[0]!.Body!).command_id).toBe(command.command_id);
    const action = await stack.store.findActionByCommand(command.command_id);
    expect(action?.status).toBe('running');
    expect(action?.progress.last_error).toBe('TimeoutError: hypervisor unreachable');
    expect(action?.progress.receive_count).toBe(2);
  });
});

describeWithMoto('a trusted admin producer', () => {
  let stack: TestStack;
  beforeAll(async () => {
    // The SQS emulator reports every sender as 000000000000: trust exactly that id here.
    stack = await startTestStack({
      label: 'admin',
      options: { admin_producers: '["000000000000"]' },
    });
  });

  it('may choose the node; a non-admin may not', async () => {
    const admin = buildCommand({
      context: { user_id: 'u', project_id: 'p', roles: ['admin'] },
      args: { flavor: 'm1.tiny', image_ref: 'img', node: 'fake-node-2' },
    });
    const user = buildCommand({
      args: { flavor: 'm1.tiny', image_ref: 'img', node: 'fake-node-2' },
    });
    await stack.send('build_and_run_instance', admin);
    await stack.send('build_and_run_instance', user);
    await stack.drain('build_and_run_instance');
    expect(await stack.store.getInstance(instanceIdForCommand(admin.command_id))).toMatchObject({
      vm_state: VmState.ACTIVE,
      node: 'fake-node-2',
    });
    expect(await stack.store.findActionByCommand(user.command_id)).toMatchObject({
      status: 'rejected',
      error_code: 'Forbidden',
    });
  });
});

describe('admin producers', () => {
  it('honour the admin role only from a configured SenderId', async () => {
    const { isTrustedAdmin } = await import('../../lib/compute/executor.ts');
    const admin = { context: { roles: ['admin'] } } as Parameters<typeof isTrustedAdmin>[0];
    expect(isTrustedAdmin(admin, { senderId: 'AROAROLEID:session-1' }, ['AROAROLEID'])).toBe(true);
    expect(isTrustedAdmin(admin, { senderId: 'AIDAUSER' }, ['AIDAUSER'])).toBe(true);
    expect(isTrustedAdmin(admin, { senderId: 'AIDAOTHER' }, ['AIDAUSER'])).toBe(false);
    expect(isTrustedAdmin(admin, { senderId: 'AROAROLEIDX:s' }, ['AROAROLEID'])).toBe(false);
    expect(
      isTrustedAdmin({ context: { roles: [] } } as never, { senderId: 'AIDAUSER' }, ['AIDAUSER']),
    ).toBe(false);
  });
});
