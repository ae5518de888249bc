// Nova's Migration object (nova/objects/migration.py): one record per move of an instance —
// resize, cold migration, live migration — with the nodes, the flavors and a status that only
// moves along Nova's paths (nova-compute.md §1.3, §1.4):
//
//   resize / migration   pre-migrating → migrating → post-migrating → finished
//                        finished → confirming → confirmed  |  finished → reverting → reverted
//   live-migration       accepted → preparing → running → completed  |  → failed
//   any non-final status → error
//
// Every status change is conditional and names the status it expects, like the instance's
// expected_task_state: a move that lost a race learns it instead of overwriting the winner.
//
// DynamoDB: the state table, next to the instance — pk `inst#<instance_id>`,
// sk `migration#<created_at>#<id>` — so an instance's migrations read newest-first in one query.
// The item carries no `command_id` attribute: that name is the by-command index's key.

import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { InstanceFlavor } from '../compute/instance.ts';
import { ErrorCode, StratusError } from '../errors.ts';
import type { LiveMigrateData } from '../virt/driver.ts';
import { queryAll } from './query-all.ts';

export const MigrationType = {
  RESIZE: 'resize',
  MIGRATION: 'migration',
  LIVE_MIGRATION: 'live-migration',
} as const;
export type MigrationType = (typeof MigrationType)[keyof typeof MigrationType];

export const MigrationStatus = {
  PRE_MIGRATING: 'pre-migrating',
  MIGRATING: 'migrating',
  POST_MIGRATING: 'post-migrating',
  FINISHED: 'finished',
  CONFIRMING: 'confirming',
  CONFIRMED: 'confirmed',
  REVERTING: 'reverting',
  REVERTED: 'reverted',
  ACCEPTED: 'accepted',
  PREPARING: 'preparing',
  RUNNING: 'running',
  COMPLETED: 'completed',
  FAILED: 'failed',
  ERROR: 'error',
} as const;
export type MigrationStatus = (typeof MigrationStatus)[keyof typeof MigrationStatus];

const S = MigrationStatus;

/** The statuses each status may move to (Nova's paths; `error` from anything not final). */
export const MIGRATION_TRANSITIONS: Readonly<Record<MigrationStatus, readonly MigrationStatus[]>> =
  {
    'pre-migrating': [S.MIGRATING, S.ERROR],
    migrating: [S.POST_MIGRATING, S.ERROR],
    'post-migrating': [S.FINISHED, S.ERROR],
    finished: [S.CONFIRMING, S.REVERTING, S.ERROR],
    confirming: [S.CONFIRMED, S.ERROR],
    reverting: [S.REVERTED, S.ERROR],
    accepted: [S.PREPARING, S.FAILED, S.ERROR],
    preparing: [S.RUNNING, S.FAILED, S.ERROR],
    running: [S.COMPLETED, S.FAILED, S.ERROR],
    confirmed: [],
    reverted: [],
    completed: [],
    failed: [],
    error: [],
  };

/** The status a new migration of each type starts in. */
export const INITIAL_STATUS: Readonly<Record<MigrationType, MigrationStatus>> = {
  resize: S.PRE_MIGRATING,
  migration: S.PRE_MIGRATING,
  'live-migration': S.ACCEPTED,
};

export function isFinalStatus(status: MigrationStatus): boolean {
  return MIGRATION_TRANSITIONS[status].length === 0;
}

export interface Migration {
  id: string;
  instance_id: string;
  source_node: string;
  dest_node: string;
  /** The compute services (Nova's source_compute / dest_compute). */
  source_host: string;
  dest_host: string;
  old_flavor: InstanceFlavor;
  /** Equal to old_flavor for a cold or live migration. */
  new_flavor: InstanceFlavor;
  migration_type: MigrationType;
  status: MigrationStatus;
  /** ISO-8601 UTC. */
  created_at: string;
  updated_at: string;
  /** migrate_disk_and_power_off's opaque result, kept for finish_migration (resize only). */
  disk_info?: string | null;
  /** The live migration's driver data, kept between its steps (live only). */
  migrate_data?: LiveMigrateData | null;
}

/** What identifies a stored migration. */
export type MigrationKey = Pick<Migration, 'instance_id' | 'id' | 'created_at'>;

/** Fields a status change may set besides the status. */
export type MigrationFields = Partial<Pick<Migration, 'disk_info' | 'migrate_data'>>;

export interface MigrationStatusChange {
  migration: MigrationKey;
  /** The statuses the migration must be in now (Nova's expected state). */
  expect: readonly MigrationStatus[];
  /** The new status; it may equal the current one to change only `set`. */
  status: MigrationStatus;
  set?: MigrationFields;
  now: Date;
}

/** A status change whose expectation did not hold (the migration moved on meanwhile). */
export class MigrationStatusConflictError extends StratusError {
  readonly expected: readonly MigrationStatus[];
  readonly actual: MigrationStatus | null;

  constructor(id: string, expected: readonly MigrationStatus[], actual: MigrationStatus | null) {
    super(
      ErrorCode.InstanceUpdateConflict,
      `Conflict updating migration ${id}. Expected: {'status': ${JSON.stringify(expected)}}. ` +
        `Actual: {'status': ${JSON.stringify(actual)}}`,
    );
    this.expected = expected;
    this.actual = actual;
  }
}

export interface MigrationStore {
  /** Stores a new migration; `existing` when one with the same key is already there. */
  create(
    migration: Migration,
  ): Promise<{ created: true; migration: Migration } | { created: false; existing: Migration }>;
  get(instanceId: string, id: string): Promise<Migration | null>;
  /** The instance's migrations, newest first. */
  list(instanceId: string): Promise<Migration[]>;
  /** A conditional status change; throws MigrationStatusConflictError when `expect` fails. */
  changeStatus(change: MigrationStatusChange): Promise<Migration>;
}

function invalid(message: string): StratusError {
  return new StratusError(ErrorCode.InternalError, message);
}

/** Rejects a change that leaves Nova's paths (a programming error, not a race). */
export function assertLegalChange(
  change: Pick<MigrationStatusChange, 'expect' | 'status'>,
  id: string,
): void {
  if (change.expect.length === 0) throw invalid(`Migration ${id}: no expected status`);
  for (const from of change.expect) {
    if (from !== change.status && !MIGRATION_TRANSITIONS[from].includes(change.status)) {
      throw invalid(`Migration ${id}: ${from} cannot move to ${change.status}`);
    }
  }
}

function assertNewMigration(m: Migration): void {
  if (m.status !== INITIAL_STATUS[m.migration_type]) {
    throw invalid(
      `Migration ${m.id}: a ${m.migration_type} starts ${INITIAL_STATUS[m.migration_type]}`,
    );
  }
}

const SK_PREFIX = 'migration#';

function migrationKey(m: MigrationKey) {
  return { pk: `inst#${m.instance_id}`, sk: `${SK_PREFIX}${m.created_at}#${m.id}` };
}

function fromItem(item: Record<string, unknown>): Migration {
  const { pk: _pk, sk: _sk, ...rest } = item;
  return rest as unknown as Migration;
}

export class DynamoDbMigrationStore implements MigrationStore {
  private readonly doc: DynamoDBDocumentClient;
  private readonly table: string;

  constructor(doc: DynamoDBDocumentClient, tableName: string) {
    this.doc = doc;
    this.table = tableName;
  }

  async create(migration: Migration) {
    assertNewMigration(migration);
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: { ...migrationKey(migration), ...migration },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return { created: true as const, migration: structuredClone(migration) };
    } catch (e) {
      if (!(e instanceof ConditionalCheckFailedException)) throw e;
      const existing = await this.read(migration);
      if (!existing) throw e;
      return { created: false as const, existing };
    }
  }

  private async read(key: MigrationKey): Promise<Migration | null> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: migrationKey(key), ConsistentRead: true }),
    );
    return out.Item ? fromItem(out.Item) : null;
  }

  async get(instanceId: string, id: string): Promise<Migration | null> {
    return (await this.list(instanceId)).find((m) => m.id === id) ?? null;
  }

  async list(instanceId: string): Promise<Migration[]> {
    const items = await queryAll(this.doc, {
      TableName: this.table,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :p)',
      ExpressionAttributeValues: { ':pk': `inst#${instanceId}`, ':p': SK_PREFIX },
      ConsistentRead: true,
      ScanIndexForward: false,
    });
    return items.map(fromItem);
  }

  async changeStatus(change: MigrationStatusChange): Promise<Migration> {
    const { migration: key } = change;
    assertLegalChange(change, key.id);
    const names: Record<string, string> = { '#status': 'status', '#updated': 'updated_at' };
    const values: Record<string, unknown> = {
      ':status': change.status,
      ':updated': change.now.toISOString(),
    };
    const sets = ['#status = :status', '#updated = :updated'];
    for (const [i, [field, value]] of Object.entries(change.set ?? {}).entries()) {
      names[`#f${i}`] = field;
      values[`:f${i}`] = value ?? null;
      sets.push(`#f${i} = :f${i}`);
    }
    const expected = change.expect.map((s, i) => {
      values[`:e${i}`] = s;
      return `:e${i}`;
    });
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: migrationKey(key),
          UpdateExpression: `SET ${sets.join(', ')}`,
          ConditionExpression: `attribute_exists(pk) AND #status IN (${expected.join(', ')})`,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return fromItem(out.Attributes ?? {});
    } catch (e) {
      if (!(e instanceof ConditionalCheckFailedException)) throw e;
      const current = await this.read(key);
      throw new MigrationStatusConflictError(key.id, change.expect, current?.status ?? null);
    }
  }
}

/** The in-memory twin: the same rules, no I/O (unit tests of the operations use it). */
export class InMemoryMigrationStore implements MigrationStore {
  private readonly items = new Map<string, Migration>();

  private keyOf(m: MigrationKey): string {
    const k = migrationKey(m);
    return `${k.pk}|${k.sk}`;
  }

  async create(migration: Migration) {
    assertNewMigration(migration);
    const existing = this.items.get(this.keyOf(migration));
    if (existing) return { created: false as const, existing: structuredClone(existing) };
    this.items.set(this.keyOf(migration), structuredClone(migration));
    return { created: true as const, migration: structuredClone(migration) };
  }

  async get(instanceId: string, id: string): Promise<Migration | null> {
    return (await this.list(instanceId)).find((m) => m.id === id) ?? null;
  }

  async list(instanceId: string): Promise<Migration[]> {
    return (
      [...this.items.values()]
        .filter((m) => m.instance_id === instanceId)
        // Newest first, in the sort key's code-unit order, as DynamoDB returns them.
        .sort((a, b) => {
          const x = migrationKey(a).sk;
          const y = migrationKey(b).sk;
          return x < y ? 1 : x > y ? -1 : 0;
        })
        .map((m) => structuredClone(m))
    );
  }

  async changeStatus(change: MigrationStatusChange): Promise<Migration> {
    const { migration: key } = change;
    assertLegalChange(change, key.id);
    const current = this.items.get(this.keyOf(key));
    if (!current || !change.expect.includes(current.status)) {
      throw new MigrationStatusConflictError(key.id, change.expect, current?.status ?? null);
    }
    const next: Migration = {
      ...current,
      ...structuredClone(change.set ?? {}),
      status: change.status,
      updated_at: change.now.toISOString(),
    };
    this.items.set(this.keyOf(key), next);
    return structuredClone(next);
  }
}

/** Dependencies that may already carry a migration store (once ComputeDeps has one). */
export interface MaybeMigrationDeps {
  config: { tables: { state: string } };
  migrations?: MigrationStore;
}

const lazyStores = new Map<string, MigrationStore>();

/**
 * The migration store of a deployment: the one in the dependencies when the composition root
 * provides it, otherwise a DynamoDB adapter on the state table, created once per table with its
 * own document client (endpoint and credentials from the standard AWS SDK environment).
 */
export function migrationStoreOf(deps: MaybeMigrationDeps): MigrationStore {
  if (deps.migrations) return deps.migrations;
  const table = deps.config.tables.state;
  let store = lazyStores.get(table);
  if (!store) {
    const doc = DynamoDBDocumentClient.from(new DynamoDBClient({}), {
      marshallOptions: { removeUndefinedValues: true },
    });
    store = new DynamoDbMigrationStore(doc, table);
    lazyStores.set(table, store);
  }
  return store;
}
