// StateStore on DynamoDB (single table, TABLES.state in lib/topology.ts).
//
// Items:   instance   pk inst#<id>       sk instance
//          action     pk <subject key>   sk action#<command_id>            (+ command_id: by-command index)
//          outbox     pk <subject key>   sk outbox#<command_id>#<seq>      (one per notification)
//          fault      pk inst#<id>       sk fault#<created_at>#<command_id>

import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
  paginateQuery,
} from '@aws-sdk/lib-dynamodb';
import { assertExpectation, changedFields } from '../compute/expectations.ts';
import type { Instance } from '../compute/instance.ts';
import { ErrorCode, InstanceNotFoundError, StratusError } from '../errors.ts';
import type { Notification } from '../notifications/notification.ts';
import { auditShardKey } from '../audit/shards.ts';
import { TABLES, WAIT_SHARDS } from '../topology.ts';
import { conditionalWrite } from './conditional-write.ts';
import { nextOutboxSeq } from './outbox-seq.ts';
import {
  type ActionEvent,
  type ActionRecord,
  type ActionSubject,
  type InstanceFault,
  type InstanceWrite,
  type OutboxEntry,
  type StateStore,
  type WaitUpdate,
  type WriteResult,
  applyActionUpdate,
  applyChanges,
  subjectKey,
} from './state-store.ts';
import { queryAll } from './query-all.ts';

const INSTANCE_SK = 'instance';
const MAX_WRITE_ATTEMPTS = 8;
/** Cancellation reasons that mean "someone else wrote first": re-read and decide again. */
const RETRYABLE_REASONS = new Set([
  'ConditionalCheckFailed',
  'TransactionConflict',
  'ThrottlingError',
]);

const instanceKey = (id: string) => ({ pk: `inst#${id}`, sk: INSTANCE_SK });
const actionKey = (subject: ActionSubject, commandId: string) => ({
  pk: subjectKey(subject),
  sk: `action#${commandId}`,
});
const outboxPrefix = (commandId?: string) => (commandId ? `outbox#${commandId}#` : 'outbox#');
const outboxKey = (subject: ActionSubject, commandId: string, seq: number) => ({
  pk: subjectKey(subject),
  // Fixed width so the sort key orders entries as their sequence numbers do.
  sk: `${outboxPrefix(commandId)}${String(seq).padStart(20, '0')}`,
});

function stripKeys<T>(item: Record<string, unknown>): T {
  const { pk: _pk, sk: _sk, ...rest } = item;
  return rest as T;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Full-jitter backoff for lost races and transaction conflicts. */
const backoff = (attempt: number) => sleep(Math.random() * Math.min(200, 10 * 2 ** attempt));

/** Outbox items for a commit. `outbox_command` (not `command_id`) keeps them out of the index. */
function outboxPuts(
  tableName: string,
  subject: ActionSubject,
  commandId: string,
  notifications: Notification[],
) {
  return notifications.map((notification) => {
    const seq = nextOutboxSeq();
    return {
      Put: {
        TableName: tableName,
        Item: {
          ...outboxKey(subject, commandId, seq),
          outbox_command: commandId,
          seq,
          notification,
        },
      },
    };
  });
}

/** The action half of a commit: an event, progress and/or the final outcome. */
function actionUpdate(
  tableName: string,
  subject: ActionSubject,
  commandId: string,
  update: {
    event?: ActionEvent;
    progress?: ActionRecord['progress'];
    finish?: InstanceWrite['finish'];
    wait?: WaitUpdate;
  },
  now: Date,
) {
  const names: Record<string, string> = { '#status': 'status' };
  const values: Record<string, unknown> = { ':running': 'running' };
  const sets: string[] = [];
  if (update.event) {
    values[':ev'] = [update.event];
    values[':none'] = [];
    sets.push('events = list_append(if_not_exists(events, :none), :ev)');
  }
  for (const [i, [k, v]] of Object.entries(update.progress ?? {}).entries()) {
    names[`#p${i}`] = k;
    values[`:p${i}`] = v;
    sets.push(`progress.#p${i} = :p${i}`);
  }
  if (update.finish) {
    const { error_code, ...outcome } = update.finish;
    values[':final'] = outcome.status;
    values[':outcome'] = outcome;
    values[':error_code'] = error_code ?? null;
    values[':finish'] = now.toISOString();
    sets.push(
      '#status = :final',
      'outcome = :outcome',
      'error_code = :error_code',
      'finish_time = :finish',
    );
  }
  const removes: string[] = [];
  // The wait's index keys are written or removed, never set to NULL: a NULL index key is invalid.
  if (update.wait) {
    values[':wshard'] = waitShard(commandId);
    values[':wuntil'] = update.wait.until;
    sets.push('wait_shard = :wshard', 'wait_until = :wuntil');
  } else if (update.wait === null || update.finish) {
    removes.push('wait_shard', 'wait_until');
  }
  // An empty update still checks that the action is running.
  if (sets.length === 0) sets.push('#status = #status');
  return {
    TableName: tableName,
    Key: actionKey(subject, commandId),
    UpdateExpression: `SET ${sets.join(', ')}${removes.length ? ` REMOVE ${removes.join(', ')}` : ''}`,
    // Only a running action accepts changes: a finished command's record is final.
    ConditionExpression: '#status = :running',
    ExpressionAttributeNames: names,
    ExpressionAttributeValues: values,
  };
}

/** The index partition a waiting action is listed in (stable per command). */
function waitShard(commandId: string): string {
  let h = 0;
  for (const c of commandId) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `wait#${h % WAIT_SHARDS}`;
}

/**
 * The stored instance item: the record plus its usage-audit shard key (its node, or its
 * segment while it has none), which the by-node index lists. A write puts a retired record
 * back in its shard; the next audit retires it again.
 */
export function instanceItem(instance: Instance): Record<string, unknown> {
  return {
    ...instanceKey(instance.instance_id),
    ...instance,
    index_node: auditShardKey(instance),
  };
}

function fromInstanceItem(item: Record<string, unknown>): Instance {
  const { index_node: _node, ...rest } = item;
  return stripKeys<Instance>(rest);
}

function notRunning(commandId: string, cause: unknown): StratusError {
  return new StratusError(
    ErrorCode.InstanceUpdateConflict,
    `Action ${commandId} is no longer running`,
    { cause },
  );
}

export class DynamoDbStateStore implements StateStore {
  private readonly doc: DynamoDBDocumentClient;
  private readonly table: string;

  constructor(doc: DynamoDBDocumentClient, tableName: string) {
    this.doc = doc;
    this.table = tableName;
  }

  async getInstance(instanceId: string): Promise<Instance | null> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: instanceKey(instanceId), ConsistentRead: true }),
    );
    return out.Item ? fromInstanceItem(out.Item) : null;
  }

  async createInstance(instance: Instance, action: ActionRecord, notifications: Notification[]) {
    try {
      await this.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.table,
                Item: instanceItem(instance),
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
            {
              Put: {
                TableName: this.table,
                Item: this.actionItem(action),
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
            ...outboxPuts(this.table, action.subject, action.command_id, notifications),
          ],
        }),
      );
      return { created: true as const };
    } catch (e) {
      if (!(e instanceof TransactionCanceledException)) throw e;
      const existing = await this.getInstance(instance.instance_id);
      if (existing) return { created: false as const, existing };
      throw new StratusError(
        ErrorCode.InstanceUpdateConflict,
        `Could not create instance ${instance.instance_id}: its action ${action.command_id} already exists`,
        { cause: e },
      );
    }
  }

  async updateInstance(write: InstanceWrite): Promise<WriteResult> {
    const { subject, commandId } = write.action;
    for (let attempt = 0; ; attempt++) {
      const current = await this.getInstance(write.instanceId);
      if (!current) throw new InstanceNotFoundError(write.instanceId);
      assertExpectation(current, write.expect);
      const changes = typeof write.changes === 'function' ? write.changes(current) : write.changes;
      const next = applyChanges(current, changes, write.now);
      const written = changedFields(current, next).length > 0;
      const notifications =
        written && write.notifications ? write.notifications(current, next) : [];
      const touchesAction = Boolean(
        write.startAction ||
        notifications.length > 0 ||
        write.event ||
        write.finish ||
        write.progress ||
        write.fault,
      );
      if (!written && !touchesAction) return { old: current, new: current, written: false };
      const items = [
        ...(written
          ? [
              {
                Put: {
                  TableName: this.table,
                  Item: instanceItem(next),
                  // The version names the exact state this write expects.
                  ConditionExpression: 'version = :v',
                  ExpressionAttributeValues: { ':v': current.version },
                },
              },
            ]
          : []),
        ...(touchesAction
          ? [
              write.startAction
                ? {
                    Put: {
                      TableName: this.table,
                      Item: this.actionItem(applyActionUpdate(write.startAction, write, write.now)),
                      ConditionExpression: 'attribute_not_exists(pk)',
                    },
                  }
                : { Update: actionUpdate(this.table, subject, commandId, write, write.now) },
            ]
          : []),
        ...outboxPuts(this.table, subject, commandId, notifications),
        ...(write.fault
          ? [{ Put: { TableName: this.table, Item: this.faultItem(write.fault) } }]
          : []),
      ];
      try {
        await this.doc.send(new TransactWriteCommand({ TransactItems: items }));
        return written
          ? { old: current, new: next, written }
          : { old: current, new: current, written };
      } catch (e) {
        if (!(e instanceof TransactionCanceledException)) throw e;
        const reasons = (e.CancellationReasons ?? []).map((r) => r.Code ?? 'None');
        const actionReason = touchesAction ? reasons[written ? 1 : 0] : undefined;
        if (actionReason === 'ConditionalCheckFailed') {
          if (write.startAction) {
            throw new StratusError(
              ErrorCode.InstanceUpdateConflict,
              `Action ${commandId} already exists`,
              { cause: e },
            );
          }
          throw notRunning(commandId, e);
        }
        // Anything but a lost race (e.g. a ValidationError) will fail the same way again.
        const retryable =
          reasons.some((r) => RETRYABLE_REASONS.has(r)) &&
          reasons.every((r) => r === 'None' || RETRYABLE_REASONS.has(r));
        if (!retryable || attempt + 1 >= MAX_WRITE_ATTEMPTS) throw e;
        await backoff(attempt);
      }
    }
  }

  async getAction(subject: ActionSubject, commandId: string): Promise<ActionRecord | null> {
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.table,
        Key: actionKey(subject, commandId),
        ConsistentRead: true,
      }),
    );
    return out.Item ? this.fromActionItem(out.Item) : null;
  }

  async startAction(action: ActionRecord, notifications: Notification[] = []) {
    try {
      await this.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.table,
                Item: this.actionItem(action),
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
            ...outboxPuts(this.table, action.subject, action.command_id, notifications),
          ],
        }),
      );
      return { created: true, action };
    } catch (e) {
      if (
        !(e instanceof TransactionCanceledException) ||
        e.CancellationReasons?.[0]?.Code !== 'ConditionalCheckFailed'
      ) {
        throw e;
      }
      const existing = await this.getAction(action.subject, action.command_id);
      if (!existing) throw e;
      return { created: false, action: existing };
    }
  }

  async recordOnAction(
    subject: ActionSubject,
    commandId: string,
    update: Parameters<StateStore['recordOnAction']>[2],
  ): Promise<ActionRecord> {
    const notifications = update.notifications ?? [];
    try {
      if (notifications.length === 0) {
        const out = await this.doc.send(
          new UpdateCommand({
            ...actionUpdate(this.table, subject, commandId, update, new Date()),
            ReturnValues: 'ALL_NEW',
          }),
        );
        return this.fromActionItem(out.Attributes ?? {});
      }
      await this.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            { Update: actionUpdate(this.table, subject, commandId, update, new Date()) },
            ...outboxPuts(this.table, subject, commandId, notifications),
          ],
        }),
      );
    } catch (e) {
      const name = (e as Error).name;
      if (name === 'ConditionalCheckFailedException') throw notRunning(commandId, e);
      if (
        e instanceof TransactionCanceledException &&
        e.CancellationReasons?.[0]?.Code === 'ConditionalCheckFailed'
      ) {
        throw notRunning(commandId, e);
      }
      throw e;
    }
    const action = await this.getAction(subject, commandId);
    if (!action) throw notRunning(commandId, undefined);
    return action;
  }

  async pendingNotifications(subject: ActionSubject, commandId?: string): Promise<OutboxEntry[]> {
    const items = await this.queryPrefix(subjectKey(subject), outboxPrefix(commandId));
    return items.map((i) => ({
      commandId: i.outbox_command as string,
      seq: i.seq as number,
      notification: i.notification as Notification,
    }));
  }

  async clearOutbox(subject: ActionSubject, entries: readonly OutboxEntry[]): Promise<void> {
    for (let i = 0; i < entries.length; i += 25) {
      let requests = entries
        .slice(i, i + 25)
        .map((e) => ({ DeleteRequest: { Key: outboxKey(subject, e.commandId, e.seq) } }));
      for (let attempt = 0; requests.length > 0; attempt++) {
        const out = await this.doc.send(
          new BatchWriteCommand({ RequestItems: { [this.table]: requests } }),
        );
        requests = (out.UnprocessedItems?.[this.table] ?? []) as typeof requests;
        if (requests.length > 0) await backoff(attempt);
      }
    }
  }

  async markReplySent(subject: ActionSubject, commandId: string): Promise<void> {
    await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: actionKey(subject, commandId),
        UpdateExpression: 'SET reply_sent = :t',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':t': true },
      }),
    );
  }

  async claimReply(
    subject: ActionSubject,
    commandId: string,
    now: Date,
    until: Date | null,
  ): Promise<boolean> {
    return conditionalWrite(
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: actionKey(subject, commandId),
          // `until` null releases: the claim lapses at once (a send that failed).
          UpdateExpression: 'SET reply_claimed_until = :until',
          ConditionExpression:
            until === null
              ? 'attribute_exists(pk)'
              : 'attribute_exists(pk) AND reply_sent = :false AND ' +
                '(attribute_not_exists(reply_claimed_until) OR reply_claimed_until < :now)',
          ExpressionAttributeValues: {
            ':until': (until ?? new Date(now.getTime() - 1)).toISOString(),
            ...(until === null ? {} : { ':false': false, ':now': now.toISOString() }),
          },
        }),
      ),
    );
  }

  async listActions(instanceId: string): Promise<ActionRecord[]> {
    const items = await this.queryPrefix(`inst#${instanceId}`, 'action#');
    return items
      .map((i) => this.fromActionItem(i))
      .sort((a, b) => a.start_time.localeCompare(b.start_time));
  }

  async listInstancesByNode(node: string): Promise<Instance[]> {
    const items = await this.queryIndex(TABLES.state.indexes.byNode.name, 'index_node = :n', {
      ':n': node,
    });
    return items.map(fromInstanceItem);
  }

  async *shardPages(shard: string): AsyncIterable<Instance[]> {
    for await (const page of paginateQuery(
      { client: this.doc },
      {
        TableName: this.table,
        IndexName: TABLES.state.indexes.byNode.name,
        KeyConditionExpression: 'index_node = :n',
        ExpressionAttributeValues: { ':n': shard },
      },
    )) {
      if (page.Items && page.Items.length > 0) yield page.Items.map(fromInstanceItem);
    }
  }

  async retireFromAudit(instanceId: string, version: number): Promise<boolean> {
    return conditionalWrite(
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: instanceKey(instanceId),
          UpdateExpression: 'REMOVE index_node',
          // Only the version the audit read: a record written since is judged again next time.
          ConditionExpression: 'version = :v',
          ExpressionAttributeValues: { ':v': version },
        }),
      ),
    );
  }

  async listWaitingActions(until: Date): Promise<ActionRecord[]> {
    const shards = Array.from({ length: WAIT_SHARDS }, (_, i) => `wait#${i}`);
    const pages = await Promise.all(
      shards.map((shard) =>
        this.queryIndex(TABLES.state.indexes.byWait.name, 'wait_shard = :s AND wait_until <= :u', {
          ':s': shard,
          ':u': until.toISOString(),
        }),
      ),
    );
    return pages.flat().map((i) => this.fromActionItem(i));
  }

  /** Index reads are eventually consistent: callers re-read by key before acting. */
  private async queryIndex(
    indexName: string,
    keyCondition: string,
    values: Record<string, unknown>,
  ): Promise<Record<string, unknown>[]> {
    const items = await queryAll(this.doc, {
      TableName: this.table,
      IndexName: indexName,
      KeyConditionExpression: keyCondition,
      ExpressionAttributeValues: values,
    });
    return items;
  }

  async listFaults(instanceId: string): Promise<InstanceFault[]> {
    const items = await this.queryPrefix(`inst#${instanceId}`, 'fault#');
    return items.map((i) => stripKeys<InstanceFault>(i));
  }

  async findActionByCommand(commandId: string): Promise<ActionRecord | null> {
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.table,
        IndexName: TABLES.state.indexes.byCommand.name,
        KeyConditionExpression: 'command_id = :c',
        ExpressionAttributeValues: { ':c': commandId },
        Limit: 1,
      }),
    );
    const item = out.Items?.[0];
    return item ? this.fromActionItem(item) : null;
  }

  private async queryPrefix(pk: string, skPrefix: string): Promise<Record<string, unknown>[]> {
    const items = await queryAll(this.doc, {
      TableName: this.table,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :p)',
      ExpressionAttributeValues: { ':pk': pk, ':p': skPrefix },
      ConsistentRead: true,
    });
    return items;
  }

  private actionItem(action: ActionRecord): Record<string, unknown> {
    const { subject, wait_until, ...rest } = action;
    return {
      ...actionKey(subject, action.command_id),
      subject_kind: subject.kind,
      subject_id: subject.id,
      ...rest,
      // A NULL index key is invalid: only a waiting action carries the wait keys.
      ...(wait_until ? { wait_until, wait_shard: waitShard(action.command_id) } : {}),
    };
  }

  private fromActionItem(item: Record<string, unknown>): ActionRecord {
    const {
      subject_kind,
      subject_id,
      wait_shard: _shard,
      ...rest
    } = stripKeys<Record<string, unknown>>(item);
    return {
      ...(rest as Omit<ActionRecord, 'subject'>),
      subject: { kind: subject_kind as ActionSubject['kind'], id: subject_id as string },
    };
  }

  private faultItem(fault: InstanceFault): Record<string, unknown> {
    return {
      pk: `inst#${fault.instance_id}`,
      sk: `fault#${fault.created_at}#${fault.command_id}`,
      ...fault,
    };
  }
}
