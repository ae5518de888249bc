// NodeStore on the state table (TABLES.state), beside the node's actions and operator flags:
//
//   node inventory   pk node#<name>   sk inventory                     (inventory + usage counters)
//   claim            pk node#<name>   sk claim#<instance_id>#<kind>    (the claimed amounts)
//
// A commit is one TransactWriteItems: the node updates carry the capacity condition
// (`generation = :g AND vcpus_used <= :maxBefore ...`, the limit computed into the value because
// a condition cannot add), claim puts `attribute_not_exists`, claim deletes name the claim_id
// they read, and instance guards are ConditionChecks on the instance item's version.

import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { INVENTORY_FIELDS } from './capacity.ts';
import {
  CLAIM_SK_PREFIX,
  type ClaimCommit,
  type CommitResult,
  type NodeChange,
  type NodeStore,
  assertDistinctItems,
  claimItemKey,
  inventoryKey,
  newCommitStats,
  nodePk,
} from './node-store.ts';
import type { Claim, ClaimKey, ComputeNode, NodeInventory, Resources } from './types.ts';
import { queryAll } from '../store/query-all.ts';
import { conditionalWrite } from '../store/conditional-write.ts';

/** BatchGetItem reads at most 100 keys a call. */
const BATCH_GET_MAX_KEYS = 100;
/** Reasons that mean "another writer held an item" or "slow down": back off and retry. */
const CONFLICT_REASONS = new Set(['TransactionConflict', 'ThrottlingError']);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const backoff = (attempt: number) => sleep(Math.random() * Math.min(200, 10 * 2 ** attempt));

function stripKeys<T>(item: Record<string, unknown>): T {
  const { pk: _pk, sk: _sk, ...rest } = item;
  return rest as T;
}

const COUNTERS = [
  ['vcpus', 'vcpus_used'],
  ['memory_mb', 'memory_mb_used'],
  ['local_gb', 'local_gb_used'],
] as const;

/** The Update of one node's counters in a commit, with its capacity condition. */
function nodeUpdate(table: string, change: NodeChange, now: Date) {
  const values: Record<string, unknown> = {
    ':dc': change.claimsDelta,
    ':one': 1,
    ':now': now.toISOString(),
  };
  const sets = [
    'claim_count = claim_count + :dc',
    'usage_version = usage_version + :one',
    'updated_at = :now',
  ];
  const conditions = ['attribute_exists(pk)'];
  for (const [amount, used] of COUNTERS) {
    const d = change.delta[amount];
    if (d !== 0) {
      values[`:d_${amount}`] = d;
      sets.push(`${used} = ${used} + :d_${amount}`);
    }
  }
  if (change.capacity) {
    values[':g'] = change.capacity.generation;
    conditions.push('generation = :g');
    for (const [amount, used] of COUNTERS) {
      const max = change.capacity.maxBefore[amount];
      if (max === undefined) continue;
      values[`:max_${amount}`] = max;
      conditions.push(`${used} <= :max_${amount}`);
    }
  }
  return {
    TableName: table,
    Key: inventoryKey(change.node),
    UpdateExpression: `SET ${sets.join(', ')}`,
    ConditionExpression: conditions.join(' AND '),
    ExpressionAttributeValues: values,
  };
}

export class DynamoDbNodeStore implements NodeStore {
  private readonly doc: DynamoDBDocumentClient;
  private readonly table: string;
  readonly stats = newCommitStats();

  constructor(doc: DynamoDBDocumentClient, tableName: string) {
    this.doc = doc;
    this.table = tableName;
  }

  async getNode(node: string): Promise<ComputeNode | null> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: inventoryKey(node), ConsistentRead: true }),
    );
    return out.Item ? stripKeys<ComputeNode>(out.Item) : null;
  }

  async getNodes(nodes: readonly string[]): Promise<Map<string, ComputeNode>> {
    const items = await this.batchGet([...new Set(nodes)].map(inventoryKey));
    const found = new Map<string, ComputeNode>();
    for (const item of items) {
      const n = stripKeys<ComputeNode>(item);
      found.set(n.node, n);
    }
    return found;
  }

  async saveInventory(
    node: string,
    inventory: NodeInventory,
    expectedGeneration: number | null,
    now: Date,
  ): Promise<boolean> {
    if (expectedGeneration === null) {
      const item: ComputeNode = {
        node,
        ...inventory,
        vcpus_used: 0,
        memory_mb_used: 0,
        local_gb_used: 0,
        claim_count: 0,
        generation: 1,
        usage_version: 0,
        created_at: now.toISOString(),
        updated_at: now.toISOString(),
      };
      return conditionalWrite(
        this.doc.send(
          new PutCommand({
            TableName: this.table,
            Item: { ...inventoryKey(node), ...item },
            ConditionExpression: 'attribute_not_exists(pk)',
          }),
        ),
      );
    }
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {
      ':g': expectedGeneration,
      ':one': 1,
      ':now': now.toISOString(),
    };
    const sets = INVENTORY_FIELDS.map((f, i) => {
      names[`#f${i}`] = f;
      values[`:f${i}`] = inventory[f];
      return `#f${i} = :f${i}`;
    });
    return conditionalWrite(
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: inventoryKey(node),
          UpdateExpression: `SET ${sets.join(', ')}, generation = generation + :one, updated_at = :now`,
          ConditionExpression: 'generation = :g',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      ),
    );
  }

  async getClaim(key: ClaimKey): Promise<Claim | null> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: claimItemKey(key), ConsistentRead: true }),
    );
    return out.Item ? stripKeys<Claim>(out.Item) : null;
  }

  async getClaims(keys: readonly ClaimKey[]): Promise<Claim[]> {
    const unique = new Map(keys.map((k) => [JSON.stringify(claimItemKey(k)), claimItemKey(k)]));
    const items = await this.batchGet([...unique.values()]);
    return items.map((i) => stripKeys<Claim>(i));
  }

  async listClaims(node: string): Promise<Claim[]> {
    const items = await queryAll(this.doc, {
      TableName: this.table,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :p)',
      ExpressionAttributeValues: { ':pk': nodePk(node), ':p': CLAIM_SK_PREFIX },
      ConsistentRead: true,
    });
    return items.map((i) => stripKeys<Claim>(i));
  }

  async commit(commit: ClaimCommit): Promise<CommitResult> {
    assertDistinctItems(commit);
    const t = this.table;
    const items = [
      ...commit.nodes.map((change) => ({ Update: nodeUpdate(t, change, commit.now) })),
      ...commit.puts.map(({ claim, replaces }) => ({
        Put: {
          TableName: t,
          Item: { ...claimItemKey(claim), ...claim },
          // A claim is applied once: a second apply finds it and changes nothing. A
          // replacement lands only on the very item that was read.
          ...(replaces === undefined
            ? { ConditionExpression: 'attribute_not_exists(pk)' }
            : {
                ConditionExpression: 'claim_id = :id',
                ExpressionAttributeValues: { ':id': replaces },
              }),
        },
      })),
      ...commit.deletes.map((d) => ({
        Delete: {
          TableName: t,
          Key: claimItemKey(d.key),
          // Only the very item that was read: never one taken again since.
          ConditionExpression:
            d.updated_at === undefined ? 'claim_id = :id' : 'claim_id = :id AND updated_at = :u',
          ExpressionAttributeValues: {
            ':id': d.claim_id,
            ...(d.updated_at === undefined ? {} : { ':u': d.updated_at }),
          },
        },
      })),
      ...(commit.renews ?? []).map((r) => ({
        Update: {
          TableName: t,
          Key: claimItemKey(r.key),
          UpdateExpression: 'SET updated_at = :u',
          ConditionExpression: 'claim_id = :id',
          ExpressionAttributeValues: { ':id': r.claim_id, ':u': r.updated_at },
        },
      })),
      ...(commit.guards ?? []).map((g) => ({
        ConditionCheck: {
          TableName: t,
          Key: { pk: `inst#${g.instance_id}`, sk: 'instance' },
          ...(g.version === null
            ? { ConditionExpression: 'attribute_not_exists(pk)' }
            : {
                ConditionExpression: 'version = :v',
                ExpressionAttributeValues: { ':v': g.version },
              }),
        },
      })),
    ];
    this.stats.commits += 1;
    try {
      await this.doc.send(new TransactWriteCommand({ TransactItems: items }));
      this.stats.committed += 1;
      return 'committed';
    } catch (e) {
      const name = (e as Error).name;
      if (name === 'TransactionConflictException' || name === 'ThrottlingException') {
        this.stats.conflicts += 1;
        return 'conflict';
      }
      if (!(e instanceof TransactionCanceledException)) throw e;
      const reasons = (e.CancellationReasons ?? []).map((r) => r.Code ?? 'None');
      if (reasons.some((r) => CONFLICT_REASONS.has(r))) {
        this.stats.conflicts += 1;
        return 'conflict';
      }
      if (reasons.includes('ConditionalCheckFailed')) {
        this.stats.conditionFailures += 1;
        return 'condition';
      }
      // Anything else (a ValidationError, an item too large) fails the same way again.
      throw e;
    }
  }

  async resetUsage(
    node: string,
    expectedUsageVersion: number,
    usage: Resources,
    claimCount: number,
    now: Date,
  ): Promise<boolean> {
    return conditionalWrite(
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: inventoryKey(node),
          UpdateExpression:
            'SET vcpus_used = :v, memory_mb_used = :m, local_gb_used = :d, claim_count = :c, ' +
            'usage_version = usage_version + :one, updated_at = :now',
          ConditionExpression: 'usage_version = :uv',
          ExpressionAttributeValues: {
            ':v': usage.vcpus,
            ':m': usage.memory_mb,
            ':d': usage.local_gb,
            ':c': claimCount,
            ':one': 1,
            ':now': now.toISOString(),
            ':uv': expectedUsageVersion,
          },
        }),
      ),
    );
  }

  private async batchGet(allKeys: Record<string, unknown>[]): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    for (let i = 0; i < allKeys.length; i += BATCH_GET_MAX_KEYS) {
      let keys = allKeys.slice(i, i + BATCH_GET_MAX_KEYS);
      for (let attempt = 0; keys.length > 0; attempt++) {
        const out = await this.doc.send(
          new BatchGetCommand({
            RequestItems: { [this.table]: { Keys: keys, ConsistentRead: true } },
          }),
        );
        items.push(...(out.Responses?.[this.table] ?? []));
        keys = out.UnprocessedKeys?.[this.table]?.Keys ?? [];
        if (keys.length > 0) await backoff(attempt);
      }
    }
    return items;
  }
}
