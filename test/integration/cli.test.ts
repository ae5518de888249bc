// The `stratus` CLI, run in-process (its main function with argv, output captured) against a
// local control plane on real emulators: send with --wait, inspect, follow events, and a
// command that fails every time landing in its DLQ and redriven from the CLI.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { runCli as RunCli } from '../../lib/cli/main.ts';
import type { CliRuntime } from '../../lib/cli/runtime.ts';
import { instanceIdForCommand } from '../../lib/commands/parse.ts';
import type { LocalPlane } from '../../lib/local/plane.ts';

let plane: LocalPlane;
let runCli: typeof RunCli;
let dir: string;

interface Run {
  code: number;
  out: string;
  err: string;
}

async function stratus(
  argv: string[],
  signal?: AbortSignal,
  onOut?: (line: string) => void,
): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const rt: CliRuntime = {
    io: {
      out: (t) => {
        out.push(t);
        onOut?.(t);
      },
      err: (t) => err.push(t),
    },
    cwd: dir,
    env: { ...process.env, STRATUS_ENDPOINTS: plane.endpointsFile },
    pollIntervalMs: 100,
    ...(signal ? { signal } : {}),
  };
  const code = await runCli(argv, rt);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

async function eventually<T>(what: string, check: () => Promise<T | null | undefined | false>) {
  for (let i = 0; i < 200; i++) {
    const value = await check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gave up waiting for ${what}`);
}

const uuidAfter = (label: string, text: string) =>
  text.match(new RegExp(`${label} ([0-9a-f-]{36})`))?.[1];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stratus-cli-'));
  vi.resetModules();
  const { startLocalPlane } = await import('../../lib/local/plane.ts');
  // Fast retries, so a command that always fails reaches its DLQ in a few seconds.
  plane = await startLocalPlane({
    dataDir: dir,
    memory: true,
    sqsPort: 0,
    dynamodbPort: 0,
    visibilityTimeoutSeconds: 1,
    maxReceiveCount: 2,
  });
  ({ runCli } = await import('../../lib/cli/main.ts'));
});

afterAll(async () => {
  await plane?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('stratus against the local control plane', () => {
  let instanceId: string;
  let commandId: string;

  it('builds with --wait: progress, the events, the outcome, exit code 0', async () => {
    const run = await stratus([
      'build',
      '--flavor',
      'm1.small',
      '--image',
      'ami-1',
      '--name',
      'web-1',
      '--network',
      'net-a',
      '--metadata',
      'team=web',
      '--wait',
    ]);
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    instanceId = uuidAfter('instance', run.out)!;
    commandId = uuidAfter('command', run.out)!;
    expect(instanceId).toBe(instanceIdForCommand(commandId));
    expect(run.out).toContain('compute.instance.create.start');
    expect(run.out).toContain('compute.instance.create.end');
    expect(run.out).toMatch(/state {2}active\/- {2}power running/);
    expect(run.out.split('\n').at(-1)).toMatch(
      new RegExp(`^succeeded {2}build_and_run_instance {2}instance ${instanceId}`),
    );
  });

  it('lists and shows the instance, its actions, faults and node usage', async () => {
    const list = await stratus(['instances']);
    expect(list.code).toBe(0);
    expect(list.out.split('\n')[0]).toMatch(/^INSTANCE ID +NAME +PROJECT +STATE/);
    expect(list.out).toMatch(new RegExp(`${instanceId} +web-1 +demo +active +- +running`));

    const json = JSON.parse((await stratus(['instances', '--json'])).out) as {
      instance_id: string;
    }[];
    expect(json.map((i) => i.instance_id)).toContain(instanceId);

    const show = JSON.parse((await stratus(['show', instanceId, '--json'])).out);
    expect(show).toMatchObject({
      vm_state: 'active',
      display_name: 'web-1',
      metadata: { team: 'web' },
    });
    expect((await stratus(['show', instanceId])).out).toMatch(/fixed_ips +\S+ \(net-a\)/);

    const actions = await stratus(['actions', instanceId]);
    expect(actions.out).toMatch(new RegExp(`${commandId} +build_and_run_instance +succeeded`));
    const action = JSON.parse((await stratus(['action', commandId, '--json'])).out);
    expect(action).toMatchObject({ status: 'succeeded', instance_id: instanceId });
    expect((await stratus(['action', commandId])).out).toContain(
      'compute__do_build_and_run_instance',
    );

    expect((await stratus(['faults', instanceId])).out).toBe('no faults');

    // The resource tracker's view: the build's claim, counted against the node's limits
    // (16 vCPUs × 4.0; 32768 MB − 512 reserved).
    const nodes = JSON.parse((await stratus(['nodes', '--json'])).out) as {
      node: string;
      claims: { instance_id: string }[];
      usage: { memory_mb: number };
    }[];
    const node = nodes.find((n) => n.claims.some((c) => c.instance_id === instanceId))!;
    expect(node.usage.memory_mb).toBe(2048);
    expect((await stratus(['nodes'])).out).toMatch(
      new RegExp(`${node.node} +nova +enabled +1 +1/64 +2048/32256`),
    );

    const events = await stratus(['events', '--instance', instanceId]);
    expect(events.out.split('\n')).toEqual([
      expect.stringMatching(/event {2}compute\.instance\.create\.start +\S+ building\/-/),
      expect.stringMatching(/event {2}compute\.instance\.create\.end +\S+ active\/-/),
    ]);
  });

  it('answers an unknown instance: rejected, exit code 1', async () => {
    const run = await stratus(['terminate', '00000000-0000-4000-8000-000000000404', '--wait']);
    expect(run.code).toBe(1);
    expect(run.out.split('\n').at(-1)).toMatch(/^rejected {2}terminate_instance .*404 /);
    expect((await stratus(['show', '00000000-0000-4000-8000-000000000404'])).code).toBe(1);
  });

  it('refuses an invalid command before sending: field-level error, exit code 2', async () => {
    const before = (await stratus(['instances', '--all', '--json'])).out;
    const run = await stratus([
      'build',
      '--flavor',
      'm1.small',
      '--admin-password',
      's3cret!',
      '--hostname',
      '-bad-',
    ]);
    expect(run.code).toBe(2);
    expect(run.err).toContain('args.image_ref:');
    expect(run.err).toContain('args.hostname:');
    expect(run.err).not.toContain('s3cret!');
    expect((await stratus(['instances', '--all', '--json'])).out).toBe(before);
  });

  it('follows events as they happen until interrupted', async () => {
    const controller = new AbortController();
    const built = instanceIdForCommand('cli-follow-1');
    const following = stratus(['events', '--follow'], controller.signal, (line) => {
      if (line.includes('compute.instance.create.end') && line.includes(built)) controller.abort();
    });
    const sent = await stratus([
      'build',
      '--flavor',
      'm1.tiny',
      '--image',
      'img',
      '--command-id',
      'cli-follow-1',
    ]);
    expect(sent.code).toBe(0);
    const run = await following;
    expect(run.code).toBe(0);
    expect(run.out).toContain(`compute.instance.create.end        ${built}`);
  });

  it('terminates with --wait', async () => {
    const run = await stratus(['delete', instanceId, '--wait']);
    expect(run.code).toBe(0);
    expect(run.out).toContain('compute.instance.delete.end');
    expect((await stratus(['instances'])).out).not.toContain(instanceId);
    expect((await stratus(['instances', '--all'])).out).toMatch(
      new RegExp(`${instanceId} .* deleted `),
    );
  });

  it("shows the usage audit the local clock runs: Nova's audit log, every shard done", async () => {
    const log = await eventually('the audit of the last hour', async () => {
      const run = await stratus(['audit-log', '--json']);
      const view = (JSON.parse(run.out) as { instance_usage_audit_log: Record<string, unknown> })
        .instance_usage_audit_log;
      return view.num_hosts_done === 10 ? view : null;
    });
    // Two fake nodes and eight key segments; the last completed hour had no instance.
    expect(log).toMatchObject({
      num_hosts: 10,
      num_hosts_not_run: 0,
      total_instances: 0,
      overall_status: 'ALL hosts done. 0 errors.',
    });
    expect(Object.keys(log.log as object)).toEqual(
      expect.arrayContaining(['fake-node-1', 'fake-node-2', 'segment-0', 'segment-7']),
    );
    const text = await stratus(['audit-log']);
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/status +ALL hosts done\. 0 errors\./);
    expect(text.out).toMatch(
      /fake-node-1 +DONE +0 +0 +Instance usage audit ran for host fake-node-1/,
    );

    const bad = await stratus(['audit-log', 'yesterday']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('Invalid timestamp for date yesterday');
  });

  it('lists a command that fails every time in its DLQ, and redrives it', async () => {
    const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
    const spawn = vi
      .spyOn(FakeDriver.prototype, 'spawn')
      .mockRejectedValue(
        Object.assign(new Error('hypervisor unreachable'), { name: 'TimeoutError' }),
      );
    const sent = await stratus([
      'build',
      '--flavor',
      'm1.tiny',
      '--image',
      'img',
      '--command-id',
      'cli-dlq-1',
    ]);
    expect(sent.code).toBe(0);

    const dead = await eventually('the command in the DLQ', async () => {
      const rows = JSON.parse((await stratus(['dlq', 'list', 'build', '--json'])).out) as {
        command_id: string;
        message_id: string;
        last_error: string | null;
      }[];
      return rows.length > 0 ? rows : null;
    });
    expect(dead).toEqual([
      expect.objectContaining({
        queue: 'build_and_run_instance',
        command_id: 'cli-dlq-1',
        last_error: 'TimeoutError: hypervisor unreachable',
      }),
    ]);
    expect(spawn.mock.calls.length).toBe(2); // maxReceiveCount receives, then the DLQ
    const human = await stratus(['dlq', 'list']);
    expect(human.out).toMatch(
      /build_and_run_instance +\S+ +cli-dlq-1 +\S+ .*TimeoutError: hypervisor unreachable/,
    );
    // Listing is a peek: the message is still there.
    expect(JSON.parse((await stratus(['dlq', 'list', '--json'])).out)).toHaveLength(1);

    expect((await stratus(['dlq', 'redrive', 'build'])).code).toBe(2); // --all or --message-id
    spawn.mockRestore();
    const redrive = await stratus(['dlq', 'redrive', 'build', '--message-id', dead[0]!.message_id]);
    expect(redrive.code).toBe(0);
    expect(redrive.out).toBe(
      'redrove 1 message(s) from the build_and_run_instance DLQ to its queue',
    );

    const done = await eventually('the redriven command to finish', async () => {
      const action = JSON.parse((await stratus(['action', 'cli-dlq-1', '--json'])).out);
      return action.status === 'running' ? null : action;
    });
    expect(done).toMatchObject({
      status: 'succeeded',
      instance_id: instanceIdForCommand('cli-dlq-1'),
    });
    expect((await stratus(['dlq', 'list'])).out).toBe('every DLQ is empty');
  });
});
