import { describe, expect, it } from 'vitest';
import { type FanOutDeps, fanOutAudit } from '../../../lib/audit/fan-out.ts';
import { parseBefore, usageAuditLog } from '../../../lib/audit/log.ts';
import type { ShardTask } from '../../../lib/audit/run-shard.ts';
import { InMemoryTaskLog } from '../../../lib/audit/task-log.ts';
import { AUDIT_SEGMENTS } from '../../../lib/topology.ts';

const NOW = new Date('2026-03-10T10:03:00Z');
const PERIOD = {
  beginning: new Date('2026-03-10T09:00:00Z'),
  ending: new Date('2026-03-10T10:00:00Z'),
};

function harness(nodes = ['node-1', 'node-2']) {
  const sent: ShardTask[][] = [];
  const taskLog = new InMemoryTaskLog();
  const deps: FanOutDeps = {
    config: { instance_usage_audit: true, instance_usage_audit_period: 'hour' },
    taskLog,
    nodes: async () => nodes,
    queue: { send: async (tasks) => void sent.push([...tasks]) },
  };
  return { deps, taskLog, sent, shardsSent: (i: number) => sent[i]!.map((t) => t.shard) };
}

const run = { runId: 'r', leaseUntil: new Date('2026-03-10T10:08:00Z'), message: 'started' };
const done = { task_items: 1, errors: 0, message: 'done', checksum: '' };

describe('fanOutAudit', () => {
  it('sends one task per node and per key segment for the last completed period', async () => {
    const h = harness();
    const result = await fanOutAudit(h.deps, NOW);

    expect(result).toMatchObject({ status: 'sent', period: PERIOD });
    const segments = Array.from({ length: AUDIT_SEGMENTS }, (_, k) => `#segment-${k}`);
    expect(h.shardsSent(0)).toEqual([...segments, 'node-1', 'node-2']);
    expect(h.sent[0]!.find((t) => t.shard === 'node-1')).toEqual({
      period_beginning: '2026-03-10T09:00:00.000Z',
      period_ending: '2026-03-10T10:00:00.000Z',
      shard: 'node-1',
    });
  });

  it('sends nothing when instance_usage_audit is off', async () => {
    const h = harness();
    h.deps.config = { instance_usage_audit: false, instance_usage_audit_period: 'hour' };
    expect(await fanOutAudit(h.deps, NOW)).toEqual({ status: 'disabled' });
    expect(h.sent).toHaveLength(0);
  });

  it('re-sends only shards that are missing, lapsed, or DONE without their manifest', async () => {
    const h = harness(['a', 'b', 'c', 'd']);
    await fanOutAudit(h.deps, NOW);
    const t = new Date('2026-03-10T10:03:30Z');
    // a: DONE and manifest sent; b: DONE, manifest not sent; c: RUNNING, leased; d: lapsed.
    for (const shard of ['a', 'b', 'c']) await h.taskLog.begin(PERIOD, shard, run, t);
    await h.taskLog.begin(PERIOD, 'd', { ...run, leaseUntil: new Date('2026-03-10T10:03:40Z') }, t);
    await h.taskLog.finish(PERIOD, 'a', 'r', done, t);
    await h.taskLog.markManifestSent(PERIOD, 'a');
    await h.taskLog.finish(PERIOD, 'b', 'r', done, t);

    await fanOutAudit(h.deps, new Date('2026-03-10T10:04:00Z'));

    expect(h.shardsSent(1).filter((s) => !s.startsWith('#'))).toEqual(['b', 'd']);
  });

  it('keeps a node that left during the period in its expected set', async () => {
    const h = harness(['a', 'b']);
    await fanOutAudit(h.deps, NOW);
    h.deps.nodes = async () => ['b', 'c'];

    const result = await fanOutAudit(h.deps, new Date('2026-03-10T10:08:00Z'));

    expect(result.status === 'sent' && result.expected.filter((s) => !s.startsWith('#'))).toEqual([
      'a',
      'b',
      'c',
    ]);
  });
});

describe("usageAuditLog: Nova's os-instance_usage_audit_log", () => {
  it('reports done, running and not-run shards with totals', async () => {
    const h = harness(['a', 'b', 'c']);
    await fanOutAudit(h.deps, NOW);
    const t = new Date('2026-03-10T10:03:30Z');
    await h.taskLog.begin(PERIOD, 'a', run, t);
    await h.taskLog.finish(PERIOD, 'a', 'r', { ...done, task_items: 7, errors: 1 }, t);
    await h.taskLog.begin(PERIOD, 'b', run, t);

    const log = await usageAuditLog(h.taskLog, 'hour', NOW);

    const total = 3 + AUDIT_SEGMENTS;
    expect(log).toMatchObject({
      period_beginning: '2026-03-10 09:00:00',
      period_ending: '2026-03-10 10:00:00',
      num_hosts: total,
      num_hosts_done: 1,
      num_hosts_running: 1,
      num_hosts_not_run: total - 2,
      total_instances: 7,
      total_errors: 1,
      overall_status: `1 of ${total} hosts done. 1 errors.`,
    });
    expect(log.hosts_not_run).toContain('c');
    expect(log.hosts_not_run).toContain('segment-0');
    expect(log.log.a).toEqual({ state: 'DONE', instances: 7, errors: 1, message: 'done' });
    expect(log.log.b!.state).toBe('RUNNING');
  });

  it('says ALL hosts done when every shard is', async () => {
    const h = harness([]);
    await fanOutAudit(h.deps, NOW);
    const t = new Date('2026-03-10T10:03:30Z');
    for (let k = 0; k < AUDIT_SEGMENTS; k++) {
      await h.taskLog.begin(PERIOD, `#segment-${k}`, run, t);
      await h.taskLog.finish(PERIOD, `#segment-${k}`, 'r', done, t);
    }
    const log = await usageAuditLog(h.taskLog, 'hour', NOW);
    expect(log.overall_status).toBe('ALL hosts done. 0 errors.');
    expect(Object.keys(log.log)).toContain('segment-3');
  });

  it("parses Nova's before argument and refuses anything else", () => {
    expect(parseBefore('2026-03-10 10:30:00').toISOString()).toBe('2026-03-10T10:30:00.000Z');
    expect(parseBefore('2026-03-10 10:30:00.250000').toISOString()).toBe(
      '2026-03-10T10:30:00.250Z',
    );
    for (const bad of ['2026-03-10', 'yesterday', '2026-13-45 10:00:00', '']) {
      expect(() => parseBefore(bad)).toThrow(/Invalid timestamp for date/);
    }
  });
});
