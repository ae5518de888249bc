// The task_log in the state table: a period's entries share the partition
// `audit#instance_usage_audit#<beginning>#<ending>`, one item per shard (`shard#<key>`) plus
// the period's expected-shard set (`shards`). Conditions make the twin's rules hold across
// concurrent runs: one owner per RUNNING entry, DONE is final.

import { type DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { AuditPeriod } from '../notifications/audit-period.ts';
import { conditionalWrite } from '../store/conditional-write.ts';
import {
  type BeginResult,
  type FinishResult,
  type PeriodLog,
  type TaskLog,
  type TaskLogEntry,
  newEntry,
  periodKey,
} from './task-log.ts';
import { queryAll } from '../store/query-all.ts';

const SHARD_SK = 'shard#';
const EXPECTED_SK = 'shards';

function key(period: AuditPeriod, shard: string) {
  return { pk: periodKey(period), sk: `${SHARD_SK}${shard}` };
}

function fromItem(item: Record<string, unknown>): TaskLogEntry {
  const { pk: _pk, sk: _sk, ...entry } = item;
  return entry as unknown as TaskLogEntry;
}

export class DynamoDbTaskLog implements TaskLog {
  private readonly doc: DynamoDBDocumentClient;
  private readonly table: string;

  constructor(doc: DynamoDBDocumentClient, tableName: string) {
    this.doc = doc;
    this.table = tableName;
  }

  async begin(
    period: AuditPeriod,
    shard: string,
    run: { runId: string; leaseUntil: Date; message: string },
    now: Date,
  ): Promise<BeginResult> {
    const fresh = newEntry(period, shard, run, now);
    const started = await conditionalWrite(
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: key(period, shard),
          UpdateExpression:
            'SET task_name = :task, #state = :running, #shard = :shard, host = :host, ' +
            'period_beginning = :pb, period_ending = :pe, message = :message, task_items = :zero, ' +
            'errors = :zero, run_id = :run, lease_until = :lease, checksum = :empty, ' +
            'manifest_sent = :false, ' +
            'created_at = if_not_exists(created_at, :now), updated_at = :now ADD attempts :one',
          // Absent, or RUNNING with a lapsed lease (its run crashed): never DONE, never leased.
          ConditionExpression:
            'attribute_not_exists(pk) OR (#state = :running AND lease_until < :now)',
          ExpressionAttributeNames: { '#state': 'state', '#shard': 'shard' },
          ExpressionAttributeValues: {
            ':task': fresh.task_name,
            ':running': 'RUNNING',
            ':shard': shard,
            ':host': fresh.host,
            ':pb': fresh.period_beginning,
            ':pe': fresh.period_ending,
            ':message': fresh.message,
            ':zero': 0,
            ':run': run.runId,
            ':lease': fresh.lease_until,
            ':false': false,
            ':empty': '',
            ':now': now.toISOString(),
            ':one': 1,
          },
        }),
      ),
    );
    const entry = await this.get(period, shard);
    if (!entry) throw new Error(`task_log entry for ${shard} vanished`);
    return { started: started && entry.run_id === run.runId, entry };
  }

  async renew(period: AuditPeriod, shard: string, runId: string, leaseUntil: Date) {
    return conditionalWrite(
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: key(period, shard),
          UpdateExpression: 'SET lease_until = :lease',
          ConditionExpression: '#state = :running AND run_id = :run',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: {
            ':lease': leaseUntil.toISOString(),
            ':running': 'RUNNING',
            ':run': runId,
          },
        }),
      ),
    );
  }

  async finish(period: AuditPeriod, shard: string, runId: string, result: FinishResult, now: Date) {
    return conditionalWrite(
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: key(period, shard),
          UpdateExpression:
            'SET #state = :done, task_items = :items, errors = :errors, message = :message, ' +
            'checksum = :checksum, updated_at = :now',
          ConditionExpression: '#state = :running AND run_id = :run',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: {
            ':done': 'DONE',
            ':running': 'RUNNING',
            ':run': runId,
            ':items': result.task_items,
            ':errors': result.errors,
            ':message': result.message,
            ':checksum': result.checksum,
            ':now': now.toISOString(),
          },
        }),
      ),
    );
  }

  async release(period: AuditPeriod, shard: string, runId: string, now: Date) {
    await conditionalWrite(
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: key(period, shard),
          UpdateExpression: 'SET lease_until = :lapsed',
          ConditionExpression: '#state = :running AND run_id = :run',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: {
            ':lapsed': new Date(now.getTime() - 1).toISOString(),
            ':running': 'RUNNING',
            ':run': runId,
          },
        }),
      ),
    );
  }

  async markManifestSent(period: AuditPeriod, shard: string) {
    await conditionalWrite(
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: key(period, shard),
          UpdateExpression: 'SET manifest_sent = :true',
          ConditionExpression: '#state = :done',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: { ':true': true, ':done': 'DONE' },
        }),
      ),
    );
  }

  async expectShards(period: AuditPeriod, shards: readonly string[], now: Date) {
    // ADD to a string set is a union: concurrent fan-outs of one period cannot lose a shard.
    const out = await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { pk: periodKey(period), sk: EXPECTED_SK },
        UpdateExpression: 'ADD expected_shards :shards SET updated_at = :now',
        ExpressionAttributeValues: { ':shards': new Set(shards), ':now': now.toISOString() },
        ReturnValues: 'ALL_NEW',
      }),
    );
    return [...((out.Attributes?.expected_shards as Set<string> | undefined) ?? [])].sort();
  }

  async get(period: AuditPeriod, shard: string) {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: key(period, shard), ConsistentRead: true }),
    );
    return out.Item ? fromItem(out.Item) : null;
  }

  async list(period: AuditPeriod): Promise<PeriodLog> {
    const items = await queryAll(this.doc, {
      TableName: this.table,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': periodKey(period) },
      ConsistentRead: true,
    });
    const expected = items.find((i) => i.sk === EXPECTED_SK)?.expected_shards as
      Set<string> | undefined;
    return {
      expectedShards: [...(expected ?? [])].sort(),
      entries: items
        .filter((i) => String(i.sk).startsWith(SHARD_SK))
        .map(fromItem)
        .sort((a, b) => a.shard.localeCompare(b.shard)),
    };
  }
}
