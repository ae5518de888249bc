// The usage audit end to end: instances created, deleted, resized and rebuilt across three
// hourly periods through the real operation functions; after each period the scheduled
// fan-out and the shard worker run on the emulators, and the exists reach a billing queue
// through EventBridge → rule → SQS on moto. The clock is faked (Date only) so the three
// periods pass in seconds; everything else is real.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { DynamoDbTaskLog } from '../../lib/audit/dynamodb-task-log.ts';
import { newRunId, runShard } from '../../lib/audit/run-shard.ts';
import { composeAuditDeps } from '../../lib/audit/compose.ts';
import { usageAuditLog } from '../../lib/audit/log.ts';
import { lastCompletedAuditPeriod } from '../../lib/notifications/audit-period.ts';
import { existsMessageId } from '../../lib/notifications/message-id.ts';
import { assertValidDetail } from '../../lib/notifications/schemas.ts';
import { parseTimestamp } from '../../lib/notifications/time.ts';
import { pollOnce } from '../../lib/local/event-source.ts';
import { describeWithMoto } from '../support/emulators.ts';
import { expectMatchesRegisteredSchema } from '../support/event-schemas.ts';
import { activeInstance, run } from '../support/operations.ts';
import { type ReceivedEvent, type TestStack, startTestStack } from '../support/stack.ts';

const T0 = Date.parse('2026-03-10T10:00:00Z');
const HOUR = 3_600_000;
const at = (hours: number, minutes: number) => new Date(T0 + hours * HOUR + minutes * 60_000);

const exists = (events: ReceivedEvent[]) =>
  events.filter((e) => e['detail-type'] === 'compute.instance.exists');
const manifests = (events: ReceivedEvent[]) =>
  events.filter((e) => e['detail-type'] === 'compute.instance.exists.audit');

/** The billing key of billing-and-limits §1.5 (I2). */
const billingKey = (e: ReceivedEvent) => {
  const p = e.detail.payload as Record<string, string>;
  return [p.instance_id, p.launched_at, p.audit_period_beginning, p.audit_period_ending].join('|');
};

describeWithMoto('usage audit through EventBridge to a billing queue', () => {
  let stack: TestStack;
  const received: ReceivedEvent[] = [];
  /** What the test expects billing to receive from the periodic audit, by billing key. */
  const expectedPeriodic = new Set<string>();
  const ids: Record<string, string> = {};

  const collect = async () => {
    const fresh = await stack.receiveEvents();
    received.push(...fresh);
    return fresh;
  };

  /** Records, for period p, the periodic exists billing expects for every active instance. */
  const expectActive = async (names: string[], period: { beginning: Date; ending: Date }) => {
    for (const name of names) {
      const i = (await stack.store.getInstance(ids[name]!))!;
      expectedPeriodic.add(
        [
          i.instance_id,
          parseLaunched(i.launched_at),
          legacy(period.beginning),
          legacy(period.ending),
        ].join('|'),
      );
    }
  };
  const legacy = (d: Date) => d.toISOString().replace('T', ' ').replace('Z', '000');
  const parseLaunched = (iso: string | null) => (iso ? legacy(new Date(iso)) : '');

  /** The scheduled fan-out after period end, then the shard worker drains the shard queue. */
  const audit = async (now: Date) => {
    vi.setSystemTime(now);
    await stack.auditFanOut(now);
    await stack.drain('audit');
    return collect();
  };

  beforeAll(async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(at(0, 5));
    stack = await startTestStack({ label: 'usage-audit', eventbridge: true });
  }, 120_000);

  afterAll(() => {
    vi.useRealTimers();
  });

  it('period 1: creates and a delete; the audit reports every instance active in it', async () => {
    vi.setSystemTime(at(0, 10));
    for (const name of ['kept', 'deleted', 'resized', 'rebuilt']) {
      ids[name] = await activeInstance(stack);
    }
    vi.setSystemTime(at(0, 40));
    expect((await run(stack, 'terminate_instance', ids.deleted!)).status).toBe('succeeded');
    await collect();

    const p1 = lastCompletedAuditPeriod('hour', at(1, 1));
    await expectActive(['kept', 'deleted', 'resized', 'rebuilt'], p1);
    const fresh = await audit(at(1, 1));

    const periodic = exists(fresh);
    expect(periodic).toHaveLength(4);
    const deleted = periodic.find((e) => e.resources.includes(ids.deleted!))!;
    expect(deleted.detail.payload.terminated_at).not.toBe('');
    for (const e of periodic) {
      assertValidDetail(e.detail);
      const p = e.detail.payload as Record<string, string>;
      expect(e.detail.message_id).toBe(
        existsMessageId(
          p.instance_id!,
          parseTimestamp(p.launched_at!),
          p.audit_period_beginning!,
          p.audit_period_ending!,
        ),
      );
    }
  });

  it('period 2: a resize and a rebuild send mid-period exists; the audit still reports all', async () => {
    vi.setSystemTime(at(1, 15));
    expect(
      (await run(stack, 'resize_instance', ids.resized!, { args: { flavor: 'm1.small' } })).status,
    ).toBe('succeeded');
    expect((await run(stack, 'confirm_resize', ids.resized!)).status).toBe('succeeded');
    vi.setSystemTime(at(1, 30));
    expect(
      (await run(stack, 'rebuild_instance', ids.rebuilt!, { args: { image_ref: 'img-2' } })).status,
    ).toBe('succeeded');
    const midPeriod = exists(await collect());
    // Nova's notify_usage_exists(current_period=True): from the period's start until now.
    expect(midPeriod.length).toBeGreaterThanOrEqual(2);
    for (const e of midPeriod) {
      expect(e.detail.payload.audit_period_beginning).toBe('2026-03-10 11:00:00.000000');
    }

    const p2 = lastCompletedAuditPeriod('hour', at(2, 1));
    await expectActive(['kept', 'resized', 'rebuilt'], p2);
    const periodic = exists(await audit(at(2, 1)));
    expect(periodic.map((e) => e.resources[0]).sort()).toEqual(
      [ids.kept, ids.resized, ids.rebuilt].sort(),
    );
    // After a resize or rebuild the audit reports the new launched_at (Nova resets it).
    const rebuilt = periodic.find((e) => e.resources.includes(ids.rebuilt!))!;
    expect(parseTimestamp(rebuilt.detail.payload.launched_at as string).getTime()).toBe(
      at(1, 30).getTime(),
    );
  });

  it('period 3: a build and a delete; then exactly the expected periodic set, by id and key', async () => {
    vi.setSystemTime(at(2, 20));
    ids.late = await activeInstance(stack);
    vi.setSystemTime(at(2, 40));
    expect((await run(stack, 'terminate_instance', ids.kept!)).status).toBe('succeeded');
    await collect();

    const p3 = lastCompletedAuditPeriod('hour', at(3, 1));
    await expectActive(['kept', 'resized', 'rebuilt', 'late'], p3);
    await audit(at(3, 1));

    const periodic = exists(received).filter((e) =>
      /:00:00\.000000$/.test(e.detail.payload.audit_period_ending as string),
    );
    expect(new Set(periodic.map(billingKey))).toEqual(expectedPeriodic);
    // One message id per billing key, and no key twice.
    expect(new Set(periodic.map((e) => e.detail.message_id)).size).toBe(periodic.length);
    expect(periodic).toHaveLength(expectedPeriodic.size);
    // The instance deleted in period 1 is in no later period.
    expect(periodic.filter((e) => e.resources.includes(ids.deleted!))).toHaveLength(1);
  });

  it('one manifest per shard and period, after its exists; the audit log shows all done', async () => {
    const all = manifests(received);
    const byPeriod = Map.groupBy(all, (m) => m.detail.payload.period_beginning as string);
    expect([...byPeriod.keys()].sort()).toEqual([
      '2026-03-10 10:00:00.000000',
      '2026-03-10 11:00:00.000000',
      '2026-03-10 12:00:00.000000',
    ]);
    for (const list of byPeriod.values()) {
      const shards = list.map((m) => m.detail.payload.shard);
      expect(new Set(shards).size).toBe(shards.length);
      expect(list.length).toBe(list[0]!.detail.payload.expected_shards);
      const items = list.reduce((n, m) => n + (m.detail.payload.task_items as number), 0);
      const period = list[0]!.detail.payload.period_beginning;
      const periodic = exists(received).filter(
        (e) =>
          e.detail.payload.audit_period_beginning === period &&
          /:00:00\.000000$/.test(e.detail.payload.audit_period_ending as string),
      );
      expect(items).toBe(periodic.length);
      // What docs/billing.md tells billing to check: each shard's exists (by audit_shard)
      // against its manifest's count and checksum.
      for (const m of list) {
        assertValidDetail(m.detail);
        const ids = periodic
          .filter((e) => e.detail.payload.audit_shard === m.detail.payload.shard)
          .map((e) => e.detail.message_id)
          .sort();
        expect(ids).toHaveLength(m.detail.payload.task_items as number);
        expect(createHash('sha256').update(ids.join('\n')).digest('hex')).toBe(
          m.detail.payload.checksum,
        );
      }
    }

    const log = await usageAuditLog(
      new DynamoDbTaskLog(stack.doc, stack.config.tables.state),
      'hour',
      at(3, 5),
    );
    expect(log.overall_status).toBe('ALL hosts done. 0 errors.');
    expect(log.total_instances).toBe(4);
  });

  it('every event billing received matches the JSON Schema the stack registers for it', () => {
    expect(received.length).toBeGreaterThan(20);
    for (const event of received) expectMatchesRegisteredSchema(event);
  });

  it('re-running any shard, or the whole fan-out, adds no new exists ids', async () => {
    const before = new Set(exists(received).map((e) => e.detail.message_id));
    // The fan-out again: every shard is DONE with its manifest out, so nothing is sent.
    await audit(at(3, 10));
    // A forced re-run of a shard whose task_log entry is removed (an operator's re-run).
    const p3 = lastCompletedAuditPeriod('hour', at(3, 1));
    const node = (await stack.store.getInstance(ids.late!))!.node!;
    await stack.doc.send(
      new (await import('@aws-sdk/lib-dynamodb')).DeleteCommand({
        TableName: stack.config.tables.state,
        Key: {
          pk: `audit#instance_usage_audit#${p3.beginning.toISOString()}#${p3.ending.toISOString()}`,
          sk: `shard#${node}`,
        },
      }),
    );
    const deps = composeAuditDeps(stack.config, console);
    await runShard(
      deps,
      {
        period_beginning: p3.beginning.toISOString(),
        period_ending: p3.ending.toISOString(),
        shard: node,
      },
      newRunId(),
    );
    const rerun = exists(await collect());
    expect(rerun.length).toBeGreaterThan(0);
    for (const e of rerun) expect(before.has(e.detail.message_id)).toBe(true);
  });

  it('a shard worker that dies mid-run is retried by SQS and completes; one DONE per shard', async () => {
    vi.setSystemTime(at(3, 20));
    for (let i = 0; i < 3; i++) await activeInstance(stack);
    const p4 = lastCompletedAuditPeriod('hour', at(4, 1));
    vi.setSystemTime(at(4, 1));
    await stack.auditFanOut(at(4, 1));
    // One invocation is killed mid-run (its PutEvents never returns, as when Lambda times the
    // sandbox out): its message is not deleted and its task_log entry stays RUNNING, leased.
    const { EventBridgeClient } = await import('@aws-sdk/client-eventbridge');
    let killed!: () => void;
    const publishing = new Promise<void>((resolve) => (killed = resolve));
    const hang = () =>
      vi.spyOn(EventBridgeClient.prototype, 'send').mockImplementation(() => {
        killed();
        return new Promise(() => undefined);
      });
    // Kill the run of the node that holds the new instances; let every other shard finish.
    const target = (await stack.store.getInstance(ids.late!))!.node!;
    let killedRuns = 0;
    for (let round = 0; round < 20 && killedRuns === 0; round++) {
      await pollOnce({
        sqs: stack.sqs,
        queueUrl: stack.topology.audit.url,
        queueArn: stack.topology.audit.arn,
        functionName: 'shard-worker',
        timeoutSeconds: 900,
        batchSize: 1,
        waitTimeSeconds: 0,
        handler: async (event, context) => {
          if ((JSON.parse(event.Records[0]!.body) as { shard: string }).shard !== target) {
            return stack.handlers.audit!(event, context);
          }
          killedRuns++;
          const send = hang();
          void stack.handlers.audit!(event, context);
          await publishing;
          send.mockRestore();
          throw new Error('sandbox killed');
        },
      });
    }
    expect(killedRuns).toBe(1);
    const taskLog = new DynamoDbTaskLog(stack.doc, stack.config.tables.state);
    const states = (await taskLog.list(p4)).entries.map((e) => e.state);
    expect(states).toContain('RUNNING');

    // SQS redelivers after the visibility timeout (2 s in the test stack); by then the lease
    // (usage_audit_lease_seconds, 300 s) has lapsed on the audit's clock.
    vi.setSystemTime(at(4, 10));
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    await stack.drain('audit');

    const { entries, expectedShards } = await taskLog.list(p4);
    expect(entries.map((e) => e.shard).sort()).toEqual(expectedShards);
    expect(entries.every((e) => e.state === 'DONE')).toBe(true);
    expect(entries.some((e) => e.attempts === 2)).toBe(true);
    const fresh = await collect();
    expect(manifests(fresh)).toHaveLength(expectedShards.length);
  });
});
