// Nova's task_log for the usage audit: one entry per (task, shard, period), RUNNING → DONE.
// Nova's row is its idempotency key (a host that finds any row for the period does nothing),
// which also means a host that crashed mid-run never audits that period. Here a RUNNING entry
// carries a lease: while it holds, no second run of the shard starts; once it lapses, the
// next delivery of the shard's message takes the run over. Only DONE means "audited"
// (`has_audit_been_run`). Every transition is a conditional write naming the state it expects.

import type { AuditPeriod } from '../notifications/audit-period.ts';
import { shardName } from './shards.ts';

export const TASK_NAME = 'instance_usage_audit';

export type TaskState = 'RUNNING' | 'DONE';

export interface TaskLogEntry {
  task_name: string;
  state: TaskState;
  /** The shard key (a node name or `#segment-<k>`). */
  shard: string;
  /** Nova's `host` column: the shard as people read it (`node-1`, `segment-3`). */
  host: string;
  /** ISO-8601 UTC. */
  period_beginning: string;
  period_ending: string;
  message: string;
  task_items: number;
  errors: number;
  /** The run holding (RUNNING) or that completed (DONE) the entry. */
  run_id: string;
  /** RUNNING: until when the run owns the shard (ISO). */
  lease_until: string;
  /** How many runs started (a takeover after a crash makes it more than 1). */
  attempts: number;
  /** DONE: SHA-256 of the sorted exists message ids (one per line); '' while RUNNING. */
  checksum: string;
  /** DONE: whether the shard's `exists.audit` manifest has been published. */
  manifest_sent: boolean;
  created_at: string;
  updated_at: string;
}

export interface FinishResult {
  task_items: number;
  errors: number;
  message: string;
  checksum: string;
}

export type BeginResult =
  { started: true; entry: TaskLogEntry } | { started: false; entry: TaskLogEntry };

export interface PeriodLog {
  /** Every shard the period's audit covers (union over its fan-outs); empty before any. */
  expectedShards: string[];
  entries: TaskLogEntry[];
}

export interface TaskLog {
  /**
   * Starts a run of the shard: creates its RUNNING entry, or takes over a RUNNING one whose
   * lease has lapsed. Otherwise returns the entry that stands in the way (DONE, or leased).
   */
  begin(
    period: AuditPeriod,
    shard: string,
    run: { runId: string; leaseUntil: Date; message: string },
    now: Date,
  ): Promise<BeginResult>;
  /** Extends the run's lease. False when the run no longer owns the entry. */
  renew(period: AuditPeriod, shard: string, runId: string, leaseUntil: Date): Promise<boolean>;
  /** RUNNING → DONE for the run that owns the entry. False when it no longer does. */
  finish(
    period: AuditPeriod,
    shard: string,
    runId: string,
    result: FinishResult,
    now: Date,
  ): Promise<boolean>;
  /** Ends the run's lease now (a failed run), so the retry need not wait it out. */
  release(period: AuditPeriod, shard: string, runId: string, now: Date): Promise<void>;
  markManifestSent(period: AuditPeriod, shard: string): Promise<void>;
  /** Adds shards to the period's expected set; returns the whole set. */
  expectShards(period: AuditPeriod, shards: readonly string[], now: Date): Promise<string[]>;
  get(period: AuditPeriod, shard: string): Promise<TaskLogEntry | null>;
  list(period: AuditPeriod): Promise<PeriodLog>;
}

/** The partition of a period's entries in the state table. */
export function periodKey(period: AuditPeriod): string {
  return `audit#${TASK_NAME}#${period.beginning.toISOString()}#${period.ending.toISOString()}`;
}

export function newEntry(
  period: AuditPeriod,
  shard: string,
  run: { runId: string; leaseUntil: Date; message: string },
  now: Date,
): TaskLogEntry {
  return {
    task_name: TASK_NAME,
    state: 'RUNNING',
    shard,
    host: shardName(shard),
    period_beginning: period.beginning.toISOString(),
    period_ending: period.ending.toISOString(),
    message: run.message,
    task_items: 0,
    errors: 0,
    run_id: run.runId,
    lease_until: run.leaseUntil.toISOString(),
    attempts: 1,
    checksum: '',
    manifest_sent: false,
    created_at: now.toISOString(),
    updated_at: now.toISOString(),
  };
}

/** The in-memory twin: the same conditions, no I/O. */
export class InMemoryTaskLog implements TaskLog {
  private readonly entries = new Map<string, TaskLogEntry>();
  private readonly expected = new Map<string, Set<string>>();

  private key(period: AuditPeriod, shard: string): string {
    return `${periodKey(period)}|${shard}`;
  }

  async begin(
    period: AuditPeriod,
    shard: string,
    run: { runId: string; leaseUntil: Date; message: string },
    now: Date,
  ): Promise<BeginResult> {
    const key = this.key(period, shard);
    const current = this.entries.get(key);
    if (current && (current.state === 'DONE' || current.lease_until >= now.toISOString())) {
      return { started: false, entry: structuredClone(current) };
    }
    const entry = newEntry(period, shard, run, now);
    if (current) {
      entry.attempts = current.attempts + 1;
      entry.created_at = current.created_at;
    }
    this.entries.set(key, entry);
    return { started: true, entry: structuredClone(entry) };
  }

  private owned(period: AuditPeriod, shard: string, runId: string): TaskLogEntry | null {
    const entry = this.entries.get(this.key(period, shard));
    return entry && entry.state === 'RUNNING' && entry.run_id === runId ? entry : null;
  }

  async renew(period: AuditPeriod, shard: string, runId: string, leaseUntil: Date) {
    const entry = this.owned(period, shard, runId);
    if (!entry) return false;
    entry.lease_until = leaseUntil.toISOString();
    return true;
  }

  async finish(period: AuditPeriod, shard: string, runId: string, result: FinishResult, now: Date) {
    const entry = this.owned(period, shard, runId);
    if (!entry) return false;
    Object.assign(entry, result, { state: 'DONE', updated_at: now.toISOString() });
    return true;
  }

  async release(period: AuditPeriod, shard: string, runId: string, now: Date) {
    const entry = this.owned(period, shard, runId);
    if (entry) entry.lease_until = new Date(now.getTime() - 1).toISOString();
  }

  async markManifestSent(period: AuditPeriod, shard: string) {
    const entry = this.entries.get(this.key(period, shard));
    if (entry?.state === 'DONE') entry.manifest_sent = true;
  }

  async expectShards(period: AuditPeriod, shards: readonly string[], _now?: Date) {
    const set = this.expected.get(periodKey(period)) ?? new Set<string>();
    for (const s of shards) set.add(s);
    this.expected.set(periodKey(period), set);
    return [...set].sort();
  }

  async get(period: AuditPeriod, shard: string) {
    const entry = this.entries.get(this.key(period, shard));
    return entry ? structuredClone(entry) : null;
  }

  async list(period: AuditPeriod): Promise<PeriodLog> {
    const prefix = `${periodKey(period)}|`;
    return {
      expectedShards: [...(this.expected.get(periodKey(period)) ?? [])].sort(),
      entries: [...this.entries.entries()]
        .filter(([k]) => k.startsWith(prefix))
        .map(([, e]) => structuredClone(e))
        .sort((a, b) => a.shard.localeCompare(b.shard)),
    };
  }
}
