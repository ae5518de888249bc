// ComputeClient: validation before sending (typed errors that name fields, never values),
// idempotent command ids, queue URLs resolved once, and bodies the functions accept.

import { SQSClient, SendMessageCommand } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import {
  CommandValidationError,
  ComputeClient,
  EndpointsFileError,
  QueueNotFoundError,
} from '../../../lib/client/index.ts';
import { instanceIdForCommand, parseCommand } from '../../../lib/commands/parse.ts';

const BUILD_Q = 'http://sqs.us-east-1.localhost:9324/000000000000/stratus-build-and-run-instance';
const TERMINATE_Q = 'http://sqs.us-east-1.localhost:9324/000000000000/stratus-terminate-instance';
const ID = '6a1f3c2e-8b4d-4e7f-9a0b-1c2d3e4f5a6b';
const CONTEXT = { user_id: 'alice', project_id: 'web' };

const sqs = new SQSClient({ region: 'us-east-1' });
const sqsMock = mockClient(sqs);
const dirs: string[] = [];

function client(queues = { build_and_run_instance: BUILD_Q, terminate_instance: TERMINATE_Q }) {
  return new ComputeClient({ queues, sqs, context: CONTEXT });
}

function sentBodies(): Record<string, unknown>[] {
  return sqsMock
    .commandCalls(SendMessageCommand)
    .map((c) => JSON.parse(c.args[0].input.MessageBody!) as Record<string, unknown>);
}

beforeEach(() => {
  sqsMock.reset();
  sqsMock.on(SendMessageCommand).resolves({ MessageId: 'm-1' });
});

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('ComputeClient', () => {
  it('sends a build the functions accept, with a fresh command id and the derived instance id', async () => {
    const sent = await client().build({ flavor: 'm1.small', image_ref: 'ami-1' });
    expect(sent.commandId).toMatch(/^[0-9a-f-]{36}$/);
    expect(sent.instanceId).toBe(instanceIdForCommand(sent.commandId));
    expect(sent).toMatchObject({
      messageId: 'm-1',
      queueUrl: BUILD_Q,
      operation: 'build_and_run_instance',
    });
    const [body] = sentBodies();
    expect(body).toEqual({
      version: 1,
      command_id: sent.commandId,
      operation: 'build_and_run_instance',
      context: CONTEXT,
      args: { flavor: 'm1.small', image_ref: 'ami-1' },
    });
    const parsed = parseCommand(JSON.stringify(body), 'build_and_run_instance');
    expect(parsed.ok && parsed.command.instance_id).toBe(sent.instanceId);
    expect(sqsMock.commandCalls(SendMessageCommand)[0]!.args[0].input.QueueUrl).toBe(BUILD_Q);
  });

  it('makes a new id per command, and a retry with the same id the same command', async () => {
    const c = client();
    const a = await c.terminate(ID);
    const b = await c.terminate(ID);
    expect(a.commandId).not.toBe(b.commandId);
    await c.terminate(ID, { commandId: 'retry-me' });
    await c.terminate(ID, { commandId: 'retry-me' });
    const [, , first, second] = sentBodies();
    expect(first).toEqual(second);
    expect(first).toMatchObject({ command_id: 'retry-me', instance_id: ID });
  });

  it('validates before sending: a typed error naming fields, never values; nothing sent', async () => {
    const error = await client()
      .send('build_and_run_instance', {
        instanceId: 'not-a-uuid',
        args: {
          flavor: '',
          image_ref: 'ami-1',
          admin_password: 'hunter2',
          // @ts-expect-error an unknown argument is a type error too
          colour: 'blue',
        },
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandValidationError);
    const v = error as CommandValidationError;
    expect(v.fields.sort()).toEqual(['args', 'args.flavor', 'instance_id']);
    expect(v.message).not.toContain('hunter2');
    expect(v.message).not.toContain('blue');
    expect(v.message).not.toContain('not-a-uuid');
    expect(sqsMock.commandCalls(SendMessageCommand)).toHaveLength(0);
  });

  it('checks the envelope rules too: instance operations need an instance, host ones a node', async () => {
    const c = new ComputeClient({ queues: {}, sqs, context: CONTEXT });
    await expect(
      c.send('reboot_instance', { args: { reboot_type: 'HARD' } }),
    ).rejects.toMatchObject({ fields: ['instance_id'] });
    await expect(c.send('set_host_enabled', { args: { enabled: true } })).rejects.toMatchObject({
      fields: ['node'],
    });
    await expect(
      c.send('reboot_instance', {
        instanceId: ID,
        commandId: 'has space',
        args: { reboot_type: 'SOFT' },
      }),
    ).rejects.toMatchObject({ fields: ['command_id'] });
    expect(sqsMock.commandCalls(SendMessageCommand)).toHaveLength(0);
  });

  it('says which operation has no queue, after validating', async () => {
    const c = client();
    await expect(c.reboot(ID, 'HARD')).rejects.toBeInstanceOf(QueueNotFoundError);
    await expect(c.reboot(ID, 'HARD')).rejects.toMatchObject({ operation: 'reboot_instance' });
    expect(sqsMock.commandCalls(SendMessageCommand)).toHaveLength(0);
  });

  it('takes a per-command context (e.g. a request id) over the client one', async () => {
    await client().terminate(ID, { context: { request_id: 'req-42', roles: ['admin'] } });
    expect(sentBodies()[0]!.context).toEqual({
      ...CONTEXT,
      request_id: 'req-42',
      roles: ['admin'],
    });
  });

  it('reads an endpoints file once, and again only after a failed read', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stratus-client-'));
    dirs.push(dir);
    const file = join(dir, 'endpoints.json');
    const c = new ComputeClient({ queues: { endpointsFile: file }, sqs, context: CONTEXT });
    await expect(c.terminate(ID)).rejects.toBeInstanceOf(EndpointsFileError);

    const endpoints = {
      region: 'us-east-1',
      sqs: { endpoint: 'http://127.0.0.1:9324', queues: { terminate_instance: TERMINATE_Q } },
      dynamodb: { endpoint: 'http://127.0.0.1:8000' },
      eventbridge: { endpoint: null, bus: 'stratus-notifications' },
    };
    await writeFile(file, JSON.stringify(endpoints));
    await c.terminate(ID);
    await writeFile(file, 'not json any more');
    await c.terminate(ID); // resolved once: the file is not read again
    expect(sqsMock.commandCalls(SendMessageCommand).map((x) => x.args[0].input.QueueUrl)).toEqual([
      TERMINATE_Q,
      TERMINATE_Q,
    ]);
  });
});
