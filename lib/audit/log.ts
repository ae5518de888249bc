// Nova's `os-instance_usage_audit_log` view of one period: how many shards (Nova: hosts) are
// done, running or not run, the instances and errors they counted, and each shard's entry.

import { ErrorCode, StratusError } from '../errors.ts';
import { type AuditPeriod, lastCompletedAuditPeriod } from '../notifications/audit-period.ts';
import { shardName } from './shards.ts';
import type { TaskLog } from './task-log.ts';

export interface ShardLog {
  state: 'RUNNING' | 'DONE';
  instances: number;
  errors: number;
  message: string;
}

export interface UsageAuditLog {
  /** Python's `str(datetime)`, as Nova's API returns it: `2026-11-22 04:00:00`. */
  period_beginning: string;
  period_ending: string;
  num_hosts: number;
  num_hosts_done: number;
  num_hosts_running: number;
  num_hosts_not_run: number;
  hosts_not_run: string[];
  total_instances: number;
  total_errors: number;
  overall_status: string;
  log: Record<string, ShardLog>;
}

/** `YYYY-MM-DD HH:MM:SS`, UTC (Python's str() of a naive datetime without microseconds). */
function pythonTime(d: Date): string {
  return d.toISOString().slice(0, 19).replace('T', ' ');
}

const BEFORE = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(\.\d{1,6})?$/;

/**
 * Nova's `{before}` argument: `%Y-%m-%d %H:%M:%S[.%f]`, UTC. Anything else is a 400, as in Nova
 * ("Invalid timestamp for date ...").
 */
export function parseBefore(value: string): Date {
  const m = BEFORE.exec(value.trim());
  const at = m ? new Date(`${m[1]}T${m[2]}${m[3] ? m[3].slice(0, 4) : ''}Z`) : null;
  if (!at || Number.isNaN(at.getTime())) {
    throw new StratusError(
      ErrorCode.InvalidCommand,
      `Invalid timestamp for date ${value}: use YYYY-MM-DD HH:MM:SS[.ffffff] (UTC)`,
    );
  }
  return at;
}

export async function usageAuditLog(
  taskLog: TaskLog,
  periodSpec: string,
  before: Date,
): Promise<UsageAuditLog> {
  const period: AuditPeriod = lastCompletedAuditPeriod(periodSpec, before);
  const { expectedShards, entries } = await taskLog.list(period);
  const shards = [...new Set([...expectedShards, ...entries.map((e) => e.shard)])].sort();
  const byShard = new Map(entries.map((e) => [e.shard, e]));
  const done = entries.filter((e) => e.state === 'DONE');
  const running = entries.filter((e) => e.state === 'RUNNING');
  const notRun = shards.filter((s) => !byShard.has(s)).map(shardName);
  const totalErrors = entries.reduce((n, e) => n + e.errors, 0);
  const status =
    done.length === shards.length && shards.length > 0
      ? `ALL hosts done. ${totalErrors} errors.`
      : `${done.length} of ${shards.length} hosts done. ${totalErrors} errors.`;
  return {
    period_beginning: pythonTime(period.beginning),
    period_ending: pythonTime(period.ending),
    num_hosts: shards.length,
    num_hosts_done: done.length,
    num_hosts_running: running.length,
    num_hosts_not_run: notRun.length,
    hosts_not_run: notRun,
    total_instances: entries.reduce((n, e) => n + e.task_items, 0),
    total_errors: totalErrors,
    overall_status: status,
    log: Object.fromEntries(
      entries.map((e) => [
        e.host,
        { state: e.state, instances: e.task_items, errors: e.errors, message: e.message },
      ]),
    ),
  };
}
