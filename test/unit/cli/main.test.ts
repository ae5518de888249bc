// The CLI's dispatch and its answers that need no running control plane: help, usage errors
// (exit 2, before anything is read or sent), a missing or unreachable plane, operations without
// a queue, deployed-stack targets, and the commands that are not available yet.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../../lib/cli/main.ts';
import type { CliRuntime } from '../../../lib/cli/runtime.ts';
import { findFreePort } from '../../../lib/local/emulators.ts';

let dir: string;
const ID = '6a1f3c2e-8b4d-4e7f-9a0b-1c2d3e4f5a6b';

async function stratus(argv: string[], env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const rt: CliRuntime = {
    io: { out: (t) => out.push(t), err: (t) => err.push(t) },
    cwd: dir,
    env: { PATH: process.env.PATH, ...env },
    readStdin: async () => '{}',
  };
  const code = await runCli(argv, rt);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

async function endpointsFile(name: string, content: unknown): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, JSON.stringify(content));
  return path;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stratus-cli-unit-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('stratus', () => {
  it('prints help: --help exits 0, no command exits 2', async () => {
    const help = await stratus(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toContain('usage: stratus <command>');
    expect(help.out).toContain('stratus dlq list');
    expect((await stratus([])).code).toBe(2);
    const op = await stratus(['help', 'reboot']);
    expect(op.out).toContain('usage: stratus reboot-instance <instance-id>');
    expect(op.out).toMatch(/--hard +.*= --reboot-type HARD/);
    expect((await stratus(['reboot', '--help'])).out).toBe(op.out);
  });

  it('suggests a command for a typo (exit 2)', async () => {
    const run = await stratus(['instnaces']);
    expect(run.code).toBe(2);
    expect(run.err).toBe(
      'stratus: unknown command instnaces\nhint: did you mean instances? (stratus --help lists commands)',
    );
  });

  it('refuses an invalid command before looking for a control plane (exit 2)', async () => {
    const run = await stratus(['reboot', ID, '--reboot-type', 'medium']);
    expect(run.code).toBe(2);
    expect(run.err).toContain('args.reboot_type: Invalid option: expected one of "SOFT"|"HARD"');
    expect(run.err).not.toContain('no local control plane');
  });

  it('says when no local control plane runs (exit 1)', async () => {
    for (const argv of [['reboot', ID, '--hard'], ['instances']]) {
      const run = await stratus(argv);
      expect(run.code).toBe(1);
      expect(run.err).toMatch(/^stratus: no local control plane is running/);
      expect(run.err).toContain('npm start');
    }
  });

  it('says when the control plane does not answer (exit 1)', async () => {
    const [sqsPort, dynamoPort] = [await findFreePort(), await findFreePort()];
    const file = await endpointsFile('dead.json', {
      region: 'us-east-1',
      sqs: {
        endpoint: `http://127.0.0.1:${sqsPort}`,
        queues: { terminate_instance: `http://127.0.0.1:${sqsPort}/000000000000/q` },
      },
      dynamodb: { endpoint: `http://127.0.0.1:${dynamoPort}`, tables: { state: 'stratus-state' } },
      eventbridge: { endpoint: null, bus: 'b' },
    });
    const run = await stratus(['terminate', ID, '--endpoints', file]);
    expect(run.code).toBe(1);
    expect(run.err).toContain('cannot reach the control plane');
    expect(run.err).toContain('is `npm start` running?');
  });

  it('names an operation the target has no queue for (exit 1), listing those it has', async () => {
    const file = await endpointsFile('build-only.json', {
      region: 'us-east-1',
      sqs: {
        endpoint: 'http://127.0.0.1:1',
        queues: { build_and_run_instance: 'http://127.0.0.1:1/0/q' },
      },
      dynamodb: { endpoint: 'http://127.0.0.1:1', tables: { state: 'stratus-state' } },
      eventbridge: { endpoint: null, bus: 'b' },
    });
    const run = await stratus(['reboot', ID, '--soft'], { STRATUS_ENDPOINTS: file });
    expect(run.code).toBe(1);
    expect(run.err).toContain('reboot_instance has no queue in');
    expect(run.err).toContain('operations with a queue: build_and_run_instance');
  });

  it('explains where a deployed stack’s events are (exit 1)', async () => {
    const file = await endpointsFile('deployed.json', {
      region: 'eu-west-1',
      sqs: { endpoint: null, queues: {} },
      dynamodb: { endpoint: null, tables: { state: 'stratus-state' } },
      eventbridge: { endpoint: null, bus: 'stratus-notifications' },
      notifications_log: null,
    });
    const run = await stratus(['events', '--endpoints', file]);
    expect(run.code).toBe(1);
    expect(run.err).toContain('EventBridge bus stratus-notifications');
    expect(run.err).toContain('aws events put-rule --event-bus-name stratus-notifications');
  });

  it('reads the last run’s events when no plane runs', async () => {
    expect(await stratus(['events'])).toMatchObject({ code: 0, out: 'no events' });
  });

  it('takes at most one time for audit-log, and says so (exit 2)', async () => {
    const run = await stratus(['audit-log', '2026-01-01 00:00:00', 'extra']);
    expect(run.code).toBe(2);
    expect(run.err).toContain('audit-log');
  });

  it('writes an endpoints file from describe-stacks output', async () => {
    const file = await endpointsFile('stack.json', {
      Stacks: [
        {
          Outputs: [
            {
              OutputKey: 'TerminateInstanceQueueUrl',
              OutputValue:
                'https://sqs.eu-west-1.amazonaws.com/123456789012/stratus-terminate-instance',
            },
            { OutputKey: 'StateTableName', OutputValue: 'stratus-state' },
            { OutputKey: 'EventBusName', OutputValue: 'stratus-notifications' },
          ],
        },
      ],
    });
    const run = await stratus(['endpoints', '--from-stack-outputs', file]);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.out)).toMatchObject({
      region: 'eu-west-1',
      sqs: { endpoint: null, queues: { terminate_instance: expect.stringContaining('terminate') } },
    });
    expect((await stratus(['endpoints', '--from-stack-outputs', '-'])).code).toBe(1);
  });

  it('checks the dlq and endpoints options', async () => {
    expect((await stratus(['dlq'])).code).toBe(2);
    expect((await stratus(['dlq', 'purge'])).code).toBe(2);
    expect((await stratus(['show'])).code).toBe(2);
    expect((await stratus(['instances', '--endpoints', 'a', '--stack', 'b'])).code).toBe(2);
  });
});
