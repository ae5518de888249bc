import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  instanceIdForCommand,
  parseCommand,
  requestIdForCommand,
} from '../../../lib/commands/parse.ts';
import { ARGS_SCHEMAS, MAX_BODY_BYTES } from '../../../lib/commands/schemas.ts';
import { OPERATIONS } from '../../../lib/topology.ts';

const INSTANCE = '6a1f3c2e-8b4d-4e7f-9a0b-1c2d3e4f5a6b';

function body(overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    version: 1,
    command_id: 'cmd-1',
    operation: 'build_and_run_instance',
    context: { user_id: 'u', project_id: 'p' },
    args: { flavor: 'm1.tiny', image_ref: 'img' },
    ...overrides,
  });
}

function rejection(text: string, queue: (typeof OPERATIONS)[number] = 'build_and_run_instance') {
  const r = parseCommand(text, queue);
  if (r.ok) throw new Error('expected a rejection');
  return r;
}

describe('parseCommand', () => {
  it('accepts a CONTRACT build and derives instance and request ids from command_id', () => {
    const r = parseCommand(body(), 'build_and_run_instance');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.command.instance_id).toBe(instanceIdForCommand('cmd-1'));
    expect(r.command.instance_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.command.context.request_id).toBe(requestIdForCommand('cmd-1'));
    expect(r.command.context.roles).toEqual([]);
  });

  it('keeps a given request_id and instance_id', () => {
    const r = parseCommand(
      body({
        instance_id: INSTANCE,
        context: { user_id: 'u', project_id: 'p', request_id: 'req-x' },
      }),
      'build_and_run_instance',
    );
    expect(r.ok && r.command.instance_id).toBe(INSTANCE);
    expect(r.ok && r.command.context.request_id).toBe('req-x');
  });

  it('rejects malformed JSON as MalformedJson', () => {
    const r = rejection('{"version": 1,');
    expect(r.error.code).toBe('MalformedJson');
    expect(r.error.status).toBe(400);
  });

  it('rejects a body over 256 KiB', () => {
    const r = rejection(
      body({ args: { flavor: 'm1.tiny', image_ref: 'x'.repeat(MAX_BODY_BYTES) } }),
    );
    expect(r.error.message).toContain('larger than');
  });

  it('names the offending field of a schema violation and salvages reply fields', () => {
    const r = rejection(
      body({
        args: { flavor: 'm1.tiny', image_ref: 'img', colour: 'red' },
        reply_to: 'https://sqs.eu-west-1.amazonaws.com/123456789012/replies',
      }),
    );
    expect(r.error.code).toBe('InvalidCommand');
    expect(r.error.message).toMatch(/^args: .*colour/);
    expect(r.salvaged).toMatchObject({
      command_id: 'cmd-1',
      reply_to: 'https://sqs.eu-west-1.amazonaws.com/123456789012/replies',
    });
  });

  it('rejects a command sent to another operation’s queue as WrongQueue', () => {
    const r = rejection(body(), 'terminate_instance');
    expect(r.error.code).toBe('WrongQueue');
    expect(r.error.message).toContain(
      'build_and_run_instance was sent to the terminate_instance queue',
    );
  });

  it('requires instance_id for instance operations and node for host operations', () => {
    expect(
      rejection(body({ operation: 'terminate_instance', args: {} }), 'terminate_instance').error
        .message,
    ).toContain('instance_id: required');
    expect(
      rejection(
        body({ operation: 'set_host_enabled', args: { enabled: true } }),
        'set_host_enabled',
      ).error.message,
    ).toContain('node: required');
  });

  it('never echoes a secret value in a rejection', () => {
    const secret = 'hunter2-SECRET-VALUE';
    const r = rejection(
      body({
        args: {
          flavor: 'm1.tiny',
          image_ref: 'img',
          admin_password: secret,
          user_data: `${secret}!`,
        },
      }),
    );
    expect(r.error.message).toContain('user_data');
    expect(r.error.message).not.toContain(secret);
  });

  it('accepts only SQS queue URLs as reply_to', () => {
    const ok = [
      'https://sqs.eu-west-1.amazonaws.com/123456789012/replies',
      'https://sqs.cn-north-1.amazonaws.com.cn/123456789012/replies.fifo',
      'https://us-east-1.queue.amazonaws.com/123456789012/q',
      'http://127.0.0.1:9324/000000000000/q',
      'http://sqs.us-east-1.localhost:9324/000000000000/q',
    ];
    const bad = [
      'https://attacker.example.com/123456789012/q',
      'http://sqs.eu-west-1.amazonaws.com/123456789012/q',
      'https://sqs.eu-west-1.amazonaws.com.evil.io/123456789012/q',
      'https://sqs.eu-west-1.amazonaws.com/123/q',
    ];
    for (const url of ok)
      expect(parseCommand(body({ reply_to: url }), 'build_and_run_instance').ok, url).toBe(true);
    for (const url of bad)
      expect(parseCommand(body({ reply_to: url }), 'build_and_run_instance').ok, url).toBe(false);
  });

  it('rejects bad command ids, versions and roles types', () => {
    expect(rejection(body({ command_id: 'has space' })).error.message).toContain('command_id');
    expect(rejection(body({ version: 2 })).error.message).toContain('version');
    expect(
      rejection(body({ context: { user_id: 'u', project_id: 'p', roles: 'admin' } })).error.message,
    ).toContain('context.roles');
  });

  it('has a strict args schema for every operation of the contract', () => {
    for (const op of OPERATIONS) {
      const schema = ARGS_SCHEMAS[op];
      expect(schema.safeParse({ definitely_not_an_arg: 1 }).success, op).toBe(false);
    }
  });

  it('never throws, whatever the body (property)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.json(),
          fc.jsonValue().map((v) => JSON.stringify(v)),
        ),
        (text) => {
          const r = parseCommand(text, 'build_and_run_instance');
          if (!r.ok) expect(r.error.status).toBeGreaterThanOrEqual(400);
        },
      ),
    );
  });

  it('accepts exactly the command ids of the contract alphabet (property)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 0, maxLength: 140 }), (id) => {
        const valid = /^[A-Za-z0-9._:-]{1,128}$/.test(id);
        expect(parseCommand(body({ command_id: id }), 'build_and_run_instance').ok).toBe(valid);
      }),
    );
  });
});
