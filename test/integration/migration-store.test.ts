// The MigrationStore contract, run against DynamoDB Local and the in-memory twin, so the twin
// cannot drift from the adapter that runs in Lambda.

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../lib/errors.ts';
import { DynamoDbStateStore } from '../../lib/store/dynamodb-state-store.ts';
import {
  DynamoDbMigrationStore,
  InMemoryMigrationStore,
  type Migration,
  MigrationStatusConflictError,
  type MigrationStore,
} from '../../lib/store/migration-store.ts';
import { createStateTable } from '../../lib/store/tables.ts';
import { TABLES } from '../../lib/topology.ts';
import { awsTestClientConfig, emulatorEndpoints, uniquePrefix } from '../support/emulators.ts';

const tiny = {
  name: 'm1.tiny',
  flavorid: '1',
  id: 1,
  vcpus: 1,
  memory_mb: 512,
  root_gb: 1,
  ephemeral_gb: 0,
};
const small = { ...tiny, name: 'm1.small', flavorid: '2', id: 2, memory_mb: 2048, root_gb: 20 };

let counter = 0;
function migration(overrides: Partial<Migration> = {}): Migration {
  counter += 1;
  return {
    id: `00000000-0000-4000-9000-${String(counter).padStart(12, '0')}`,
    instance_id: `00000000-0000-4000-8000-${String(counter).padStart(12, '0')}`,
    source_node: 'fake-node-1',
    dest_node: 'fake-node-2',
    source_host: 'stratus',
    dest_host: 'stratus',
    old_flavor: tiny,
    new_flavor: small,
    migration_type: 'resize',
    status: 'pre-migrating',
    created_at: `2026-11-22T10:00:${String(counter % 60).padStart(2, '0')}.000Z`,
    updated_at: '2026-11-22T10:00:00.000Z',
    disk_info: null,
    ...overrides,
  };
}

const now = new Date('2026-11-22T11:00:00.000Z');

function contract(name: string, makeStore: () => Promise<MigrationStore>) {
  describe(name, () => {
    let store: MigrationStore;
    beforeAll(async () => {
      store = await makeStore();
    });

    it('creates once: the same key again returns the stored record', async () => {
      const m = migration();
      expect(await store.create(m)).toEqual({ created: true, migration: m });
      const again = await store.create({ ...m, dest_node: 'elsewhere' });
      expect(again).toEqual({ created: false, existing: m });
      expect(await store.get(m.instance_id, m.id)).toEqual(m);
      expect(await store.get(m.instance_id, 'no-such-id')).toBeNull();
    });

    it('refuses a migration that does not start where its type starts', async () => {
      await expect(store.create(migration({ status: 'finished' }))).rejects.toMatchObject({
        code: ErrorCode.InternalError,
      });
      await expect(
        store.create(migration({ migration_type: 'live-migration', status: 'pre-migrating' })),
      ).rejects.toMatchObject({ code: ErrorCode.InternalError });
    });

    it('walks a resize to confirmed, each change naming the status it expects', async () => {
      const m = migration();
      await store.create(m);
      const path = ['migrating', 'post-migrating', 'finished', 'confirming', 'confirmed'] as const;
      let from: Migration['status'] = m.status;
      for (const to of path) {
        const next = await store.changeStatus({ migration: m, expect: [from], status: to, now });
        expect(next).toMatchObject({ status: to, updated_at: now.toISOString() });
        from = to;
      }
      expect((await store.get(m.instance_id, m.id))?.status).toBe('confirmed');
    });

    it('reports the actual status when the expectation does not hold, changing nothing', async () => {
      const m = migration();
      await store.create(m);
      await store.changeStatus({
        migration: m,
        expect: ['pre-migrating'],
        status: 'migrating',
        now,
      });
      const lost = store.changeStatus({
        migration: m,
        expect: ['pre-migrating'],
        status: 'error',
        now,
      });
      await expect(lost).rejects.toBeInstanceOf(MigrationStatusConflictError);
      await expect(lost).rejects.toMatchObject({
        expected: ['pre-migrating'],
        actual: 'migrating',
        status: 409,
      });
      expect((await store.get(m.instance_id, m.id))?.status).toBe('migrating');
    });

    it('refuses changes off Nova’s paths and out of final statuses', async () => {
      const m = migration();
      await store.create(m);
      await expect(
        store.changeStatus({ migration: m, expect: ['pre-migrating'], status: 'finished', now }),
      ).rejects.toMatchObject({ code: ErrorCode.InternalError });
      await store.changeStatus({ migration: m, expect: ['pre-migrating'], status: 'error', now });
      await expect(
        store.changeStatus({ migration: m, expect: ['error'], status: 'migrating', now }),
      ).rejects.toMatchObject({ code: ErrorCode.InternalError });
    });

    it('keeps fields set with a status change, also without moving the status', async () => {
      const m = migration();
      await store.create(m);
      await store.changeStatus({
        migration: m,
        expect: ['pre-migrating'],
        status: 'migrating',
        now,
      });
      const kept = await store.changeStatus({
        migration: m,
        expect: ['migrating'],
        status: 'migrating',
        set: { disk_info: '[{"path":"disk"}]' },
        now,
      });
      expect(kept).toMatchObject({ status: 'migrating', disk_info: '[{"path":"disk"}]' });
      expect((await store.get(m.instance_id, m.id))?.disk_info).toBe('[{"path":"disk"}]');
    });

    it('walks a live migration, keeping its driver data', async () => {
      const m = migration({
        migration_type: 'live-migration',
        status: 'accepted',
        new_flavor: tiny,
      });
      await store.create(m);
      const data = {
        source_node: 'fake-node-1',
        dest_node: 'fake-node-2',
        block_migration: false,
        disk_over_commit: false,
        is_shared_block_storage: true,
        is_shared_instance_path: true,
        disk_available_mb: 1024,
        driver_data: { filename: 'fake' },
      };
      await store.changeStatus({
        migration: m,
        expect: ['accepted'],
        status: 'preparing',
        set: { migrate_data: data },
        now,
      });
      await store.changeStatus({ migration: m, expect: ['preparing'], status: 'running', now });
      await store.changeStatus({ migration: m, expect: ['running'], status: 'failed', now });
      expect(await store.get(m.instance_id, m.id)).toMatchObject({
        status: 'failed',
        migrate_data: data,
      });
    });

    it('lists an instance’s migrations newest first', async () => {
      const first = migration({ created_at: '2026-11-22T09:00:00.000Z' });
      const second = migration({
        instance_id: first.instance_id,
        created_at: '2026-11-22T09:30:00.000Z',
      });
      const other = migration();
      for (const m of [second, other, first]) await store.create(m);
      expect((await store.list(first.instance_id)).map((m) => m.id)).toEqual([second.id, first.id]);
    });
  });
}

const endpoints = () => emulatorEndpoints();
let dynamo: { doc: DynamoDBDocumentClient; table: string } | undefined;

async function dynamoTable() {
  if (dynamo) return dynamo;
  const client = new DynamoDBClient(awsTestClientConfig(endpoints().dynamodb));
  const table = `${uniquePrefix('migrations')}-state`;
  await createStateTable(client, table);
  const doc = DynamoDBDocumentClient.from(client, {
    marshallOptions: { removeUndefinedValues: true },
  });
  dynamo = { doc, table };
  return dynamo;
}

contract('DynamoDbMigrationStore (DynamoDB Local)', async () => {
  const { doc, table } = await dynamoTable();
  return new DynamoDbMigrationStore(doc, table);
});
contract('InMemoryMigrationStore', async () => new InMemoryMigrationStore());

describe('migration items in the state table', () => {
  it('live beside the instance under its key scheme, out of the by-command index', async () => {
    const { doc, table } = await dynamoTable();
    const store = new DynamoDbMigrationStore(doc, table);
    const m = migration();
    await store.create(m);
    const items = await doc.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': `inst#${m.instance_id}` },
      }),
    );
    expect(items.Items?.map((i) => i.sk)).toEqual([`migration#${m.created_at}#${m.id}`]);
    expect(items.Items?.[0]).not.toHaveProperty(TABLES.state.indexes.byCommand.partitionKey);
    // The instance store's readers of the same partition do not mistake it for theirs.
    const state = new DynamoDbStateStore(doc, table);
    expect(await state.listActions(m.instance_id)).toEqual([]);
    expect(await state.listFaults(m.instance_id)).toEqual([]);
  });
});
