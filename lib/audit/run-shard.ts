// One shard's usage audit for one period (Nova's `_instance_usage_audit` for one host): under
// the shard's task_log lease, one `compute.instance.exists` per instance active in the period,
// then DONE, then the shard's `compute.instance.exists.audit` manifest. Exists ids are the
// natural key, so a run that crashed half way and is taken over republishes the same ids and
// subscribers deduplicate them; the manifest comes only after every exists was accepted.

import { createHash, randomUUID } from 'node:crypto';
import { requestIdForCommand } from '../commands/parse.ts';
import type { Instance } from '../compute/instance.ts';
import type { Logger } from '../compute/runtime.ts';
import type { Config } from '../config.ts';
import { ErrorCode, StratusError } from '../errors.ts';
import { type AuditPeriod, lastCompletedAuditPeriod } from '../notifications/audit-period.ts';
import { messageIdFor } from '../notifications/message-id.ts';
import { type Notification, existsNotification } from '../notifications/notification.ts';
import type { NotificationPublisher } from '../notifications/publisher.ts';
import { legacyTimestamp } from '../notifications/time.ts';
import type { StateStore } from '../store/state-store.ts';
import { shardName } from './shards.ts';
import { TASK_NAME, type TaskLog, type TaskLogEntry } from './task-log.ts';

export interface AuditDeps {
  config: Pick<Config, 'host' | 'instance_usage_audit_period' | 'usage_audit_lease_seconds'>;
  store: Pick<StateStore, 'shardPages' | 'retireFromAudit'>;
  taskLog: TaskLog;
  publisher: NotificationPublisher;
  clock: () => Date;
  logger?: Logger;
}

/** The message the fan-out sends per shard (the audit shard queue's body). */
export interface ShardTask {
  period_beginning: string;
  period_ending: string;
  shard: string;
}

export type ShardOutcome =
  | { status: 'audited'; entry: TaskLogEntry; exists: number; retired: number }
  /** Already DONE (its manifest re-sent if that had not happened yet). */
  | { status: 'already-done'; entry: TaskLogEntry };

/** Exists are published this many per call, this many calls at a time. */
const PUBLISH_CHUNK = 50;
const PUBLISH_CONCURRENCY = 8;

/**
 * Nova's "active in window" (`instance_get_active_by_window_joined`): launched before the
 * period's end and not terminated before its beginning. Deleted records count: an instance
 * deleted during the period is reported with its deleted_at/terminated_at.
 */
export function isActiveInPeriod(instance: Instance, period: AuditPeriod): boolean {
  if (!instance.launched_at) return false;
  if (Date.parse(instance.launched_at) >= period.ending.getTime()) return false;
  return (
    instance.terminated_at === null ||
    Date.parse(instance.terminated_at) > period.beginning.getTime()
  );
}

/**
 * A record gone before the period that precedes this one can be active in no period the
 * audit still runs: it may leave its shard's listing, so shards stay the size of what lives.
 */
function isRetirable(instance: Instance, previous: AuditPeriod): boolean {
  const gone = instance.terminated_at ?? (instance.deleted ? instance.deleted_at : null);
  return gone !== null && Date.parse(gone) <= previous.beginning.getTime();
}

/** The command id the audit's events carry: the task and its period, as Nova's task_log keys. */
export function auditCommandId(period: AuditPeriod): string {
  return `${TASK_NAME}:${period.beginning.toISOString()}/${period.ending.toISOString()}`;
}

export function parseShardTask(task: ShardTask): AuditPeriod {
  const beginning = new Date(task.period_beginning);
  const ending = new Date(task.period_ending);
  if (
    Number.isNaN(beginning.getTime()) ||
    Number.isNaN(ending.getTime()) ||
    beginning >= ending ||
    typeof task.shard !== 'string' ||
    task.shard.length === 0
  ) {
    throw new StratusError(
      ErrorCode.InvalidCommand,
      `malformed audit shard task: ${JSON.stringify(task)}`,
    );
  }
  return { beginning, ending };
}

/** Another run holds the shard's lease: try again after it (the SQS message is redelivered). */
export class ShardBusyError extends Error {
  constructor(shard: string, leaseUntil: string) {
    super(`audit of shard ${shardName(shard)} is running elsewhere until ${leaseUntil}`);
    this.name = 'ShardBusyError';
  }
}

/** The run lost its lease mid-way (it stalled past it and another run took over). */
export class LeaseLostError extends Error {
  constructor(shard: string) {
    super(`audit of shard ${shardName(shard)} lost its lease to another run`);
    this.name = 'LeaseLostError';
  }
}

export async function runShard(
  deps: AuditDeps,
  task: ShardTask,
  runId: string,
): Promise<ShardOutcome> {
  const period = parseShardTask(task);
  const { shard } = task;
  const leaseMs = deps.config.usage_audit_lease_seconds * 1000;
  const started = deps.clock();
  const begun = await deps.taskLog.begin(
    period,
    shard,
    {
      runId,
      leaseUntil: new Date(started.getTime() + leaseMs),
      message: 'Instance usage audit started...',
    },
    started,
  );
  if (!begun.started) {
    if (begun.entry.state === 'RUNNING') throw new ShardBusyError(shard, begun.entry.lease_until);
    if (!begun.entry.manifest_sent) await sendManifest(deps, period, begun.entry);
    return { status: 'already-done', entry: begun.entry };
  }

  let leaseUntil = started.getTime() + leaseMs;
  const keepLease = async () => {
    const now = deps.clock().getTime();
    if (leaseUntil - now > leaseMs / 2) return;
    if (!(await deps.taskLog.renew(period, shard, runId, new Date(now + leaseMs)))) {
      throw new LeaseLostError(shard);
    }
    leaseUntil = now + leaseMs;
  };

  try {
    // The period just before this one (Nova's function excludes a period ending exactly now).
    const previous = lastCompletedAuditPeriod(
      deps.config.instance_usage_audit_period,
      new Date(period.beginning.getTime() + 1),
    );
    const commandId = auditCommandId(period);
    const requestId = requestIdForCommand(commandId);
    const host = shardName(shard);
    const messageIds: string[] = [];
    let errors = 0;
    let retired = 0;
    // Page by page, publishing one page while the next is read: memory stays one page deep
    // whatever the shard's size, and reading overlaps sending.
    let sending: Promise<void> = Promise.resolve();
    for await (const page of deps.store.shardPages(shard)) {
      const exists: Notification[] = [];
      for (const instance of page) {
        if (!isActiveInPeriod(instance, period)) {
          if (
            isRetirable(instance, previous) &&
            (await deps.store.retireFromAudit(instance.instance_id, instance.version))
          ) {
            retired++;
          }
          continue;
        }
        try {
          exists.push(
            existsNotification({
              instance,
              period,
              host: deps.config.host,
              commandId,
              requestId,
              now: deps.clock(),
              // Which manifest counts it: billing checks each shard's exists against its manifest.
              extra: { audit_shard: host },
            }),
          );
        } catch (e) {
          // Nova counts a failed instance as an error and goes on with the others.
          errors++;
          deps.logger?.error('usage audit could not report an instance', {
            instance_id: instance.instance_id,
            error: e instanceof Error ? e.name : 'unknown',
          });
        }
      }
      for (const n of exists) messageIds.push(n.message_id);
      await sending;
      sending = publishAll(deps.publisher, exists, keepLease);
      // Handled where it is awaited (next page, or after the last); this only keeps a failure
      // that lands while the next page is read from counting as unhandled.
      sending.catch(() => undefined);
    }
    await sending;

    const seconds = ((deps.clock().getTime() - started.getTime()) / 1000).toFixed(2);
    const result = {
      task_items: messageIds.length,
      errors,
      checksum: checksumOf(messageIds),
      message:
        `Instance usage audit ran for host ${shardName(shard)}, ${messageIds.length} instances ` +
        `in ${seconds} seconds.`,
    };
    if (!(await deps.taskLog.finish(period, shard, runId, result, deps.clock()))) {
      throw new LeaseLostError(shard);
    }
    const entry = { ...begun.entry, ...result, state: 'DONE' as const };
    await sendManifest(deps, period, entry);
    return { status: 'audited', entry, exists: messageIds.length, retired };
  } catch (e) {
    // Let the retry start at once instead of waiting out the lease (a no-op if lost).
    await deps.taskLog.release(period, shard, runId, deps.clock()).catch(() => undefined);
    throw e;
  }
}

async function publishAll(
  publisher: NotificationPublisher,
  notifications: readonly Notification[],
  beforeEachChunk: () => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < notifications.length) {
      const chunk = notifications.slice(next, next + PUBLISH_CHUNK);
      next += PUBLISH_CHUNK;
      await beforeEachChunk();
      await publisher.publish(chunk);
    }
  };
  await Promise.all(Array.from({ length: PUBLISH_CONCURRENCY }, worker));
}

/**
 * The manifest's checksum: SHA-256 over the sorted exists message ids (one per line), so
 * billing can check it received exactly this shard's set, not just as many.
 */
function checksumOf(messageIds: readonly string[]): string {
  const ids = [...messageIds].sort();
  return createHash('sha256').update(ids.join('\n')).digest('hex');
}

/** `compute.instance.exists.audit`: the shard's counts and state, after its last exists. */
async function sendManifest(
  deps: AuditDeps,
  period: AuditPeriod,
  entry: TaskLogEntry,
): Promise<void> {
  const expected = (await deps.taskLog.list(period)).expectedShards.length;
  const commandId = auditCommandId(period);
  const now = deps.clock();
  const payload: Record<string, unknown> = {
    period_beginning: legacyTimestamp(period.beginning),
    period_ending: legacyTimestamp(period.ending),
    shard: entry.host,
    expected_shards: Math.max(expected, 1),
    state: entry.state,
    task_items: entry.task_items,
    errors: entry.errors,
    message: entry.message,
    checksum: entry.checksum,
  };
  await deps.publisher.publish([
    {
      message_id: messageIdFor([
        'compute.instance.exists.audit',
        entry.shard,
        legacyTimestamp(period.beginning),
        legacyTimestamp(period.ending),
      ]),
      publisher_id: `compute.${deps.config.host}`,
      event_type: 'compute.instance.exists.audit',
      priority: 'INFO',
      timestamp: legacyTimestamp(now),
      request_id: requestIdForCommand(commandId),
      command_id: commandId,
      payload,
    },
  ]);
  await deps.taskLog.markManifestSent(period, entry.shard);
}

/** A fresh id for a run of a shard (recorded as the task_log entry's owner). */
export function newRunId(): string {
  return randomUUID();
}
