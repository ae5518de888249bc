// What operators set on a compute node: whether it takes new instances (set_host_enabled) and
// whether it is in maintenance (host_maintenance_mode). The resource tracker reads these flags
// when it picks nodes. One item per node on the state table, beside the node's actions:
//
//   node state   pk node#<name>   sk state
//
// Writes are read-check-write on a version, like instance writes: a change is a function of the
// record it lands on, and a lost race re-reads and re-applies it. A node that was never written
// is enabled and not in maintenance (Nova's defaults for a new compute service).

import {
  BatchGetCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
} from '@aws-sdk/lib-dynamodb';
import { subjectKey } from './state-store.ts';

export interface NodeState {
  node: string;
  /** Accepts new instances (set_host_enabled). */
  enabled: boolean;
  /** In a maintenance window (host_maintenance_mode). */
  maintenance: boolean;
  /** ISO-8601 time of the last change; null until the node is first written. */
  updated_at: string | null;
  /** The command that made the last change. */
  updated_by: string | null;
  /** Incremented by every write; 0 for a node never written. The concurrency token. */
  version: number;
}

export type NodeFlags = Partial<Pick<NodeState, 'enabled' | 'maintenance'>>;

export interface NodeStateWrite {
  node: string;
  /** New flag values, or a function of the current record (evaluated again after a lost race). */
  changes: NodeFlags | ((current: NodeState) => NodeFlags);
  commandId: string;
  now: Date;
}

export interface NodeStateWriteResult {
  old: NodeState;
  new: NodeState;
  /** False when the flags already had these values (nothing written). */
  written: boolean;
}

export interface NodeStateStore {
  /** The node's flags (the defaults for a node never written). */
  get(node: string): Promise<NodeState>;
  /** Several nodes at once, in the order asked. */
  getMany(nodes: readonly string[]): Promise<NodeState[]>;
  update(write: NodeStateWrite): Promise<NodeStateWriteResult>;
}

export function defaultNodeState(node: string): NodeState {
  return {
    node,
    enabled: true,
    maintenance: false,
    updated_at: null,
    updated_by: null,
    version: 0,
  };
}

/** The record `write` makes of `current`, or null when it changes no flag. */
export function applyNodeFlags(current: NodeState, write: NodeStateWrite): NodeState | null {
  const flags = typeof write.changes === 'function' ? write.changes(current) : write.changes;
  const next: NodeState = {
    ...current,
    ...(flags.enabled === undefined ? {} : { enabled: flags.enabled }),
    ...(flags.maintenance === undefined ? {} : { maintenance: flags.maintenance }),
  };
  if (next.enabled === current.enabled && next.maintenance === current.maintenance) return null;
  return {
    ...next,
    updated_at: write.now.toISOString(),
    updated_by: write.commandId,
    version: current.version + 1,
  };
}

/** The in-memory twin: same semantics (versions, defaults, no-op writes), no I/O. */
export class InMemoryNodeStateStore implements NodeStateStore {
  private readonly nodes = new Map<string, NodeState>();

  async get(node: string): Promise<NodeState> {
    return { ...(this.nodes.get(node) ?? defaultNodeState(node)) };
  }

  async getMany(nodes: readonly string[]): Promise<NodeState[]> {
    return Promise.all(nodes.map((node) => this.get(node)));
  }

  async update(write: NodeStateWrite): Promise<NodeStateWriteResult> {
    // Read and write without yielding in between: the twin's equivalent of the version check.
    const current = { ...(this.nodes.get(write.node) ?? defaultNodeState(write.node)) };
    const next = applyNodeFlags(current, write);
    if (!next) return { old: current, new: current, written: false };
    this.nodes.set(write.node, { ...next });
    return { old: current, new: { ...next }, written: true };
  }
}

const STATE_SK = 'state';
const MAX_WRITE_ATTEMPTS = 8;
/** BatchGetItem reads at most 100 keys a call. */
const BATCH_GET_MAX_KEYS = 100;

const nodeKey = (node: string) => ({ pk: subjectKey({ kind: 'node', id: node }), sk: STATE_SK });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Full-jitter backoff for lost races and unprocessed batch keys. */
const backoff = (attempt: number) => sleep(Math.random() * Math.min(200, 10 * 2 ** attempt));

function fromItem(item: Record<string, unknown>): NodeState {
  return {
    node: item.node as string,
    enabled: item.enabled as boolean,
    maintenance: item.maintenance as boolean,
    updated_at: (item.updated_at as string | null | undefined) ?? null,
    updated_by: (item.updated_by as string | null | undefined) ?? null,
    version: item.version as number,
  };
}

/** NodeStateStore on the state table (TABLES.state). */
export class DynamoDbNodeStateStore implements NodeStateStore {
  private readonly doc: DynamoDBDocumentClient;
  private readonly table: string;

  constructor(doc: DynamoDBDocumentClient, tableName: string) {
    this.doc = doc;
    this.table = tableName;
  }

  async get(node: string): Promise<NodeState> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: nodeKey(node), ConsistentRead: true }),
    );
    return out.Item ? fromItem(out.Item) : defaultNodeState(node);
  }

  async getMany(nodes: readonly string[]): Promise<NodeState[]> {
    const found = new Map<string, NodeState>();
    const unique = [...new Set(nodes)];
    for (let i = 0; i < unique.length; i += BATCH_GET_MAX_KEYS) {
      let keys: Record<string, unknown>[] = unique.slice(i, i + BATCH_GET_MAX_KEYS).map(nodeKey);
      for (let attempt = 0; keys.length > 0; attempt++) {
        const out = await this.doc.send(
          new BatchGetCommand({
            RequestItems: { [this.table]: { Keys: keys, ConsistentRead: true } },
          }),
        );
        for (const item of out.Responses?.[this.table] ?? []) {
          const state = fromItem(item);
          found.set(state.node, state);
        }
        keys = out.UnprocessedKeys?.[this.table]?.Keys ?? [];
        if (keys.length > 0) await backoff(attempt);
      }
    }
    return nodes.map((node) => found.get(node) ?? defaultNodeState(node));
  }

  async update(write: NodeStateWrite): Promise<NodeStateWriteResult> {
    for (let attempt = 0; ; attempt++) {
      const current = await this.get(write.node);
      const next = applyNodeFlags(current, write);
      if (!next) return { old: current, new: current, written: false };
      try {
        await this.doc.send(
          new PutCommand({
            TableName: this.table,
            Item: { ...nodeKey(write.node), ...next },
            // The version names the exact record this write was computed from.
            ...(current.version === 0
              ? { ConditionExpression: 'attribute_not_exists(pk)' }
              : {
                  ConditionExpression: 'version = :v',
                  ExpressionAttributeValues: { ':v': current.version },
                }),
          }),
        );
        return { old: current, new: next, written: true };
      } catch (e) {
        if ((e as Error).name !== 'ConditionalCheckFailedException') throw e;
        if (attempt + 1 >= MAX_WRITE_ATTEMPTS) {
          // Named as DynamoDB's own conflict, so callers retry it as they retry that one.
          const conflict = new Error(`Node ${write.node} kept changing under concurrent updates`, {
            cause: e,
          });
          conflict.name = 'TransactionConflictException';
          throw conflict;
        }
        await backoff(attempt);
      }
    }
  }
}
