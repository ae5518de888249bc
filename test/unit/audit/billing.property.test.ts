// The billing invariant the audit exists for (billing-and-limits §1.5 I1–I3): audit a run of
// consecutive periods, bill each exists over [max(launched_at, beginning), min(terminated_at,
// ending)], and every instance is billed exactly its lifetime within the audited range: no
// gap, no double count, whatever its launch and termination times.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type AuditDeps, runShard } from '../../../lib/audit/run-shard.ts';
import { auditShardKey } from '../../../lib/audit/shards.ts';
import { InMemoryTaskLog } from '../../../lib/audit/task-log.ts';
import { lastCompletedAuditPeriod } from '../../../lib/notifications/audit-period.ts';
import { InMemoryPublisher } from '../../../lib/notifications/publisher.ts';
import { parseTimestamp } from '../../../lib/notifications/time.ts';
import { InMemoryStateStore } from '../../../lib/store/memory-state-store.ts';
import { auditInstance, seed } from './helpers.ts';

const HOUR = 3_600_000;
const START = Date.parse('2026-03-10T00:00:00Z');
const PERIODS = 4;
const END = START + PERIODS * HOUR;

const lifetime = fc
  .record({
    launchedOffset: fc.integer({ min: -HOUR, max: PERIODS * HOUR }),
    lengthMs: fc.option(fc.integer({ min: 1, max: (PERIODS + 1) * HOUR }), { nil: null }),
    nodeless: fc.boolean(),
  })
  .map(({ launchedOffset, lengthMs, nodeless }) => ({
    launched: START + launchedOffset,
    terminated: lengthMs === null ? null : START + launchedOffset + lengthMs,
    nodeless,
  }));

describe('usage audit billing property', () => {
  it('bills every instance exactly its lifetime within the audited periods', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(lifetime, { minLength: 1, maxLength: 12 }), async (lives) => {
        const store = new InMemoryStateStore();
        const instances = lives.map((l) =>
          auditInstance({
            node: l.nodeless ? null : 'node-1',
            launched_at: new Date(l.launched).toISOString(),
            terminated_at: l.terminated === null ? null : new Date(l.terminated).toISOString(),
            deleted_at: l.terminated === null ? null : new Date(l.terminated).toISOString(),
            deleted: l.terminated !== null,
          }),
        );
        await seed(store, instances);
        const publisher = new InMemoryPublisher();
        let now = START;
        const deps: AuditDeps = {
          config: { host: 'h', instance_usage_audit_period: 'hour', usage_audit_lease_seconds: 60 },
          store,
          taskLog: new InMemoryTaskLog(),
          publisher,
          clock: () => new Date(now),
        };
        const shards = [...new Set(instances.map(auditShardKey))];
        for (let p = 1; p <= PERIODS; p++) {
          now = START + p * HOUR + 60_000;
          const period = lastCompletedAuditPeriod('hour', new Date(now));
          for (const shard of shards) {
            await runShard(
              deps,
              {
                period_beginning: period.beginning.toISOString(),
                period_ending: period.ending.toISOString(),
                shard,
              },
              `run-${p}-${shard}`,
            );
          }
        }

        const exists = publisher.published.filter(
          (n) => n.event_type === 'compute.instance.exists',
        );
        expect(new Set(exists.map((n) => n.message_id)).size).toBe(exists.length);
        const billed = new Map<string, number>();
        for (const n of exists) {
          const p = n.payload as Record<string, string>;
          const from = Math.max(
            parseTimestamp(p.launched_at!).getTime(),
            parseTimestamp(p.audit_period_beginning!).getTime(),
          );
          const to = Math.min(
            p.terminated_at ? parseTimestamp(p.terminated_at).getTime() : Infinity,
            parseTimestamp(p.audit_period_ending!).getTime(),
          );
          billed.set(n.instance_id!, (billed.get(n.instance_id!) ?? 0) + Math.max(0, to - from));
        }
        for (const [i, l] of lives.entries()) {
          const expected = Math.max(
            0,
            Math.min(l.terminated ?? Infinity, END) - Math.max(l.launched, START),
          );
          expect(billed.get(instances[i]!.instance_id) ?? 0).toBe(expected);
        }
      }),
      { numRuns: 40 },
    );
  });
});
