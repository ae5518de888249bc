// `stratus audit-log [BEFORE]`: Nova's os-instance_usage_audit_log for the last audit period
// completed before BEFORE (default now), from the task_log the usage audit keeps.

import { DynamoDbTaskLog } from '../audit/dynamodb-task-log.ts';
import { parseBefore, usageAuditLog } from '../audit/log.ts';
import { loadConfig } from '../config.ts';
import { parseAuditPeriodSpec } from '../notifications/audit-period.ts';
import { UsageError } from './errors.ts';
import { keyValues, table } from './format.ts';
import type { CliRuntime } from './runtime.ts';
import type { Target } from './target.ts';

/** The period spec: --period, then the plane's endpoints.json, then STRATUS_* config. */
function periodSpec(target: Target, rt: CliRuntime, option: string | undefined): string {
  const spec =
    option ??
    (target.endpoints.audit_period as string | undefined) ??
    loadConfig(rt.env).instance_usage_audit_period;
  try {
    parseAuditPeriodSpec(spec);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return spec;
}

export async function showAuditLog(
  target: Target,
  rt: CliRuntime,
  o: { before?: string; period?: string; json: boolean },
): Promise<number> {
  let before: Date;
  try {
    before = o.before ? parseBefore(o.before) : new Date();
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const log = await usageAuditLog(
    new DynamoDbTaskLog(target.doc, target.stateTable),
    periodSpec(target, rt, o.period),
    before,
  );
  if (o.json) {
    rt.io.out(JSON.stringify({ instance_usage_audit_log: log }, null, 2));
    return 0;
  }
  rt.io.out(
    keyValues([
      ['period', `${log.period_beginning} .. ${log.period_ending} (UTC)`],
      ['status', log.overall_status],
      [
        'shards',
        `${log.num_hosts} (done ${log.num_hosts_done}, running ${log.num_hosts_running}, ` +
          `not run ${log.num_hosts_not_run})`,
      ],
      ['instances', String(log.total_instances)],
      ['errors', String(log.total_errors)],
    ]),
  );
  const rows = Object.entries(log.log).map(([shard, e]) => [
    shard,
    e.state,
    String(e.instances),
    String(e.errors),
    e.message,
  ]);
  for (const shard of log.hosts_not_run) rows.push([shard, 'NOT RUN', '-', '-', '']);
  if (rows.length > 0) {
    rt.io.out('');
    rt.io.out(table(['SHARD', 'STATE', 'INSTANCES', 'ERRORS', 'MESSAGE'], rows));
  }
  return 0;
}
