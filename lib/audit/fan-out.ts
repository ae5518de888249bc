// The scheduled side of the usage audit: on each tick, the last completed period and one
// message per shard that still needs a run. Nova's periodic task runs on every host every tick
// and returns at once when its task_log row exists; here one function decides for all shards
// and sends work only where it is missing, so a quiet tick costs one Query.

import type { Config } from '../config.ts';
import { type AuditPeriod, lastCompletedAuditPeriod } from '../notifications/audit-period.ts';
import type { ShardTask } from './run-shard.ts';
import { allShardKeys } from './shards.ts';
import type { TaskLog, TaskLogEntry } from './task-log.ts';

/** Where shard tasks go: the shard queue (SQS), or a direct call in tests. */
export interface ShardTaskQueue {
  send(tasks: readonly ShardTask[]): Promise<void>;
}

export interface FanOutDeps {
  config: Pick<Config, 'instance_usage_audit' | 'instance_usage_audit_period'>;
  taskLog: TaskLog;
  /** The compute nodes now (the driver's get_available_nodes). */
  nodes: () => Promise<string[]>;
  queue: ShardTaskQueue;
}

export type FanOutResult =
  | { status: 'disabled' }
  | { status: 'sent'; period: AuditPeriod; expected: string[]; sent: string[] };

/** Whether a shard's entry still needs a delivery of its task. */
function needsRun(entry: TaskLogEntry | undefined, now: Date): boolean {
  if (!entry) return true;
  if (entry.state === 'DONE') return !entry.manifest_sent;
  // RUNNING: its run is alive while the lease holds; after, its message may be gone (DLQ).
  return entry.lease_until < now.toISOString();
}

export async function fanOutAudit(deps: FanOutDeps, now: Date): Promise<FanOutResult> {
  if (!deps.config.instance_usage_audit) return { status: 'disabled' };
  const period = lastCompletedAuditPeriod(deps.config.instance_usage_audit_period, now);
  // The expected set only grows within a period: a node that left keeps its place (its
  // instances may still be listed under it), a node that joined is added.
  const expected = await deps.taskLog.expectShards(period, allShardKeys(await deps.nodes()), now);
  const { entries } = await deps.taskLog.list(period);
  const byShard = new Map(entries.map((e) => [e.shard, e]));
  const sent = expected.filter((shard) => needsRun(byShard.get(shard), now));
  await deps.queue.send(
    sent.map((shard) => ({
      period_beginning: period.beginning.toISOString(),
      period_ending: period.ending.toISOString(),
      shard,
    })),
  );
  return { status: 'sent', period, expected, sent };
}
