import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type AuditDeps,
  LeaseLostError,
  ShardBusyError,
  isActiveInPeriod,
  runShard,
} from '../../../lib/audit/run-shard.ts';
import { auditShardKey, segmentOf } from '../../../lib/audit/shards.ts';
import { InMemoryTaskLog } from '../../../lib/audit/task-log.ts';
import type { Instance } from '../../../lib/compute/instance.ts';
import type { AuditPeriod } from '../../../lib/notifications/audit-period.ts';
import { existsMessageId } from '../../../lib/notifications/message-id.ts';
import { type Notification, envelopeOf } from '../../../lib/notifications/notification.ts';
import { InMemoryPublisher } from '../../../lib/notifications/publisher.ts';
import { assertValidDetail } from '../../../lib/notifications/schemas.ts';
import { InMemoryStateStore } from '../../../lib/store/memory-state-store.ts';
import { auditInstance, seed } from './helpers.ts';

const PERIOD: AuditPeriod = {
  beginning: new Date('2026-03-10T09:00:00Z'),
  ending: new Date('2026-03-10T10:00:00Z'),
};
const TASK = {
  period_beginning: PERIOD.beginning.toISOString(),
  period_ending: PERIOD.ending.toISOString(),
  shard: 'node-1',
};

function harness(instances: Instance[], startAt = '2026-03-10T10:01:00Z') {
  let now = new Date(startAt).getTime();
  const store = new InMemoryStateStore();
  const taskLog = new InMemoryTaskLog();
  const publisher = new InMemoryPublisher({ validate: (n) => assertValidDetail(envelopeOf(n)) });
  const deps: AuditDeps = {
    config: { host: 'stratus', instance_usage_audit_period: 'hour', usage_audit_lease_seconds: 60 },
    store,
    taskLog,
    publisher,
    clock: () => new Date(now),
  };
  return {
    deps,
    store,
    taskLog,
    publisher,
    ready: seed(store, instances),
    advance: (ms: number) => {
      now += ms;
    },
    exists: () => publisher.published.filter((n) => n.event_type === 'compute.instance.exists'),
    manifests: () =>
      publisher.published.filter((n) => n.event_type === 'compute.instance.exists.audit'),
  };
}

const ids = (ns: readonly Notification[]) => ns.map((n) => n.instance_id).sort();

describe("isActiveInPeriod: Nova's window (launched before the end, not gone before the start)", () => {
  const active = (o: Partial<Instance>) => isActiveInPeriod(auditInstance(o), PERIOD);

  it('counts an instance launched before the end and still running', () => {
    expect(active({ launched_at: '2026-03-10T09:59:59.999Z' })).toBe(true);
    expect(active({ launched_at: '2026-03-01T00:00:00.000Z' })).toBe(true);
  });

  it('excludes one launched at or after the end, and one never launched', () => {
    expect(active({ launched_at: '2026-03-10T10:00:00.000Z' })).toBe(false);
    expect(active({ launched_at: null })).toBe(false);
  });

  it('counts one terminated after the beginning (deleted during the period), not at or before it', () => {
    expect(active({ terminated_at: '2026-03-10T09:00:00.001Z', deleted: true })).toBe(true);
    expect(active({ terminated_at: '2026-03-10T09:00:00.000Z', deleted: true })).toBe(false);
    expect(active({ terminated_at: '2026-03-09T00:00:00.000Z', deleted: true })).toBe(false);
  });
});

describe('runShard', () => {
  it('publishes one exists per active instance with the exact period bounds and natural-key ids', async () => {
    const running = auditInstance();
    const deletedDuring = auditInstance({
      terminated_at: '2026-03-10T09:30:00.000Z',
      deleted_at: '2026-03-10T09:30:00.000Z',
      deleted: true,
    });
    const launchedAfter = auditInstance({ launched_at: '2026-03-10T10:00:30.000Z' });
    const otherNode = auditInstance({ node: 'node-2' });
    const h = harness([running, deletedDuring, launchedAfter, otherNode]);
    await h.ready;

    const outcome = await runShard(h.deps, TASK, 'run-1');

    expect(outcome.status).toBe('audited');
    expect(ids(h.exists())).toEqual([running.instance_id, deletedDuring.instance_id].sort());
    for (const n of h.exists()) {
      expect(n.payload.audit_period_beginning).toBe('2026-03-10 09:00:00.000000');
      expect(n.payload.audit_period_ending).toBe('2026-03-10 10:00:00.000000');
      expect(n.payload.audit_shard).toBe('node-1');
      const instance = [running, deletedDuring].find((i) => i.instance_id === n.instance_id)!;
      expect(n.message_id).toBe(
        existsMessageId(
          instance.instance_id,
          instance.launched_at,
          PERIOD.beginning,
          PERIOD.ending,
        ),
      );
    }
    const deletedExists = h.exists().find((n) => n.instance_id === deletedDuring.instance_id)!;
    expect(deletedExists.payload.terminated_at).toBe('2026-03-10 09:30:00.000000');

    const entry = await h.taskLog.get(PERIOD, 'node-1');
    expect(entry).toMatchObject({ state: 'DONE', task_items: 2, errors: 0, host: 'node-1' });
    expect(entry!.message).toMatch(/^Instance usage audit ran for host node-1, 2 instances in /);
  });

  it('publishes the manifest last, with counts and a checksum of the exists ids', async () => {
    const h = harness([auditInstance(), auditInstance(), auditInstance()]);
    await h.ready;
    await h.taskLog.expectShards(PERIOD, ['node-1', 'node-2'], new Date());

    await runShard(h.deps, TASK, 'run-1');

    const last = h.publisher.published.at(-1)!;
    expect(last.event_type).toBe('compute.instance.exists.audit');
    expect(h.manifests()).toHaveLength(1);
    const sorted = h
      .exists()
      .map((n) => n.message_id)
      .sort();
    expect(last.payload).toMatchObject({
      period_beginning: '2026-03-10 09:00:00.000000',
      period_ending: '2026-03-10 10:00:00.000000',
      shard: 'node-1',
      expected_shards: 2,
      state: 'DONE',
      task_items: 3,
      errors: 0,
      checksum: createHash('sha256').update(sorted.join('\n')).digest('hex'),
    });
    expect((await h.taskLog.get(PERIOD, 'node-1'))!.manifest_sent).toBe(true);
  });

  it('does nothing on a second delivery once DONE and the manifest is out', async () => {
    const h = harness([auditInstance(), auditInstance()]);
    await h.ready;
    await runShard(h.deps, TASK, 'run-1');
    const before = h.publisher.published.length;

    const again = await runShard(h.deps, TASK, 'run-2');

    expect(again.status).toBe('already-done');
    expect(h.publisher.published).toHaveLength(before);
  });

  it('a run that fails half way is retried at once and republishes the same ids; one DONE', async () => {
    const instances = Array.from({ length: 120 }, () => auditInstance());
    const h = harness(instances);
    await h.ready;
    // The second publish call (of three 50-exists chunks) fails, like a crash mid-run.
    const original = h.publisher.publish.bind(h.publisher);
    let calls = 0;
    h.publisher.publish = async (batch) => {
      calls++;
      if (calls === 2) throw new Error('EventBridge unavailable');
      return original(batch);
    };
    await expect(runShard(h.deps, TASK, 'run-1')).rejects.toThrow('EventBridge unavailable');
    expect((await h.taskLog.get(PERIOD, 'node-1'))!.state).toBe('RUNNING');
    expect(h.manifests()).toHaveLength(0);
    const firstIds = new Set(h.exists().map((n) => n.message_id));
    expect(firstIds.size).toBeGreaterThan(0);

    const retry = await runShard(h.deps, TASK, 'run-2');

    expect(retry.status).toBe('audited');
    const entry = (await h.taskLog.get(PERIOD, 'node-1'))!;
    expect(entry).toMatchObject({ state: 'DONE', attempts: 2, run_id: 'run-2', task_items: 120 });
    const all = new Set(h.exists().map((n) => n.message_id));
    expect(all.size).toBe(120);
    for (const id of firstIds) expect(all.has(id)).toBe(true);
    expect(h.manifests()).toHaveLength(1);
  });

  it('refuses a second concurrent run while the lease holds, and takes over a lapsed one', async () => {
    const h = harness([auditInstance()]);
    await h.ready;
    // A run that crashed without releasing: RUNNING, leased for 60 s.
    await h.taskLog.begin(
      PERIOD,
      'node-1',
      { runId: 'crashed', leaseUntil: new Date('2026-03-10T10:02:00Z'), message: 'x' },
      new Date('2026-03-10T10:01:00Z'),
    );

    await expect(runShard(h.deps, TASK, 'run-2')).rejects.toBeInstanceOf(ShardBusyError);
    expect(h.exists()).toHaveLength(0);

    h.advance(61_000);
    const outcome = await runShard(h.deps, TASK, 'run-3');
    expect(outcome.status).toBe('audited');
    expect(await h.taskLog.get(PERIOD, 'node-1')).toMatchObject({
      state: 'DONE',
      run_id: 'run-3',
      attempts: 2,
    });
  });

  it('a run that stalled past its lease cannot finish over the run that took over', async () => {
    const h = harness(Array.from({ length: 60 }, () => auditInstance()));
    await h.ready;
    const original = h.publisher.publish.bind(h.publisher);
    let stalled = false;
    h.publisher.publish = async (batch) => {
      if (!stalled) {
        stalled = true;
        // While run-1 is stuck, its lease lapses and run-2 audits the shard.
        h.advance(120_000);
        h.publisher.publish = original;
        await runShard(h.deps, TASK, 'run-2');
      }
      return original(batch);
    };

    await expect(runShard(h.deps, TASK, 'run-1')).rejects.toBeInstanceOf(LeaseLostError);

    expect(await h.taskLog.get(PERIOD, 'node-1')).toMatchObject({ state: 'DONE', run_id: 'run-2' });
    expect(h.manifests()).toHaveLength(1);
  });

  it('audits node-less instances in their key segment, so a cleared node loses nobody', async () => {
    const offloaded = auditInstance({ node: null, host: null });
    const h = harness([offloaded, auditInstance()]);
    await h.ready;
    const shard = auditShardKey(offloaded);
    expect(shard).toBe(`#segment-${segmentOf(offloaded.instance_id)}`);

    await runShard(h.deps, { ...TASK, shard }, 'run-1');

    expect(ids(h.exists())).toEqual([offloaded.instance_id]);
    expect(h.manifests()[0]!.payload.shard).toBe(`segment-${segmentOf(offloaded.instance_id)}`);
  });

  it('retires records gone before the previous period, and only those', async () => {
    const longGone = auditInstance({
      terminated_at: '2026-03-10T07:59:00.000Z',
      deleted_at: '2026-03-10T07:59:00.000Z',
      deleted: true,
    });
    const goneLastPeriod = auditInstance({
      terminated_at: '2026-03-10T08:30:00.000Z',
      deleted_at: '2026-03-10T08:30:00.000Z',
      deleted: true,
    });
    const h = harness([longGone, goneLastPeriod]);
    await h.ready;

    const outcome = await runShard(h.deps, TASK, 'run-1');

    expect(outcome).toMatchObject({ status: 'audited', exists: 0, retired: 1 });
    expect((await h.store.listInstancesByNode('node-1')).map((i) => i.instance_id)).toEqual([
      goneLastPeriod.instance_id,
    ]);
  });

  it('rejects a malformed task without touching the task_log', async () => {
    const h = harness([auditInstance()]);
    await h.ready;
    await expect(
      runShard(h.deps, { ...TASK, period_ending: TASK.period_beginning }, 'run-1'),
    ).rejects.toThrow(/malformed audit shard task/);
    expect((await h.taskLog.list(PERIOD)).entries).toHaveLength(0);
  });
});
