// The migration status graph and how an operation finds its migration store.

import { describe, expect, it } from 'vitest';
import {
  DynamoDbMigrationStore,
  INITIAL_STATUS,
  InMemoryMigrationStore,
  MIGRATION_TRANSITIONS,
  type MigrationStatus,
  assertLegalChange,
  isFinalStatus,
  migrationStoreOf,
} from '../../../lib/store/migration-store.ts';

describe('migration statuses', () => {
  it('follow Nova’s resize path, with confirm and revert as the two ways out of finished', () => {
    const path: MigrationStatus[] = [
      'pre-migrating',
      'migrating',
      'post-migrating',
      'finished',
      'confirming',
      'confirmed',
    ];
    for (let i = 1; i < path.length; i++) {
      expect(MIGRATION_TRANSITIONS[path[i - 1]!]).toContain(path[i]);
    }
    expect(MIGRATION_TRANSITIONS.finished).toEqual(['confirming', 'reverting', 'error']);
    expect(MIGRATION_TRANSITIONS.reverting).toContain('reverted');
  });

  it('follow the live-migration path, failing or erroring from any step before the end', () => {
    expect(MIGRATION_TRANSITIONS.accepted).toContain('preparing');
    expect(MIGRATION_TRANSITIONS.preparing).toContain('running');
    expect(MIGRATION_TRANSITIONS.running).toEqual(['completed', 'failed', 'error']);
  });

  it('end in confirmed, reverted, completed, failed or error, and nowhere else', () => {
    const finals = (Object.keys(MIGRATION_TRANSITIONS) as MigrationStatus[]).filter(isFinalStatus);
    expect(finals.sort()).toEqual(['completed', 'confirmed', 'error', 'failed', 'reverted']);
    for (const [from, tos] of Object.entries(MIGRATION_TRANSITIONS)) {
      if (!isFinalStatus(from as MigrationStatus)) expect(tos, from).toContain('error');
    }
  });

  it('start pre-migrating for resizes and cold migrations, accepted for live ones', () => {
    expect(INITIAL_STATUS).toEqual({
      resize: 'pre-migrating',
      migration: 'pre-migrating',
      'live-migration': 'accepted',
    });
  });

  it('refuse a change that skips a step or names no expected status', () => {
    expect(() => assertLegalChange({ expect: ['migrating'], status: 'finished' }, 'm')).toThrow(
      /migrating cannot move to finished/,
    );
    expect(() => assertLegalChange({ expect: [], status: 'error' }, 'm')).toThrow(
      /no expected status/,
    );
    expect(() =>
      assertLegalChange({ expect: ['finished', 'confirming'], status: 'confirmed' }, 'm'),
    ).toThrow(/finished cannot move to confirmed/);
    // Same status: a field update only.
    expect(() =>
      assertLegalChange({ expect: ['migrating'], status: 'migrating' }, 'm'),
    ).not.toThrow();
  });
});

describe('migrationStoreOf', () => {
  it('uses the store the dependencies carry', () => {
    const migrations = new InMemoryMigrationStore();
    expect(migrationStoreOf({ config: { tables: { state: 't' } }, migrations })).toBe(migrations);
  });

  it('otherwise creates one DynamoDB adapter per state table, once', () => {
    const a = migrationStoreOf({ config: { tables: { state: 'table-a' } } });
    expect(a).toBeInstanceOf(DynamoDbMigrationStore);
    expect(migrationStoreOf({ config: { tables: { state: 'table-a' } } })).toBe(a);
    expect(migrationStoreOf({ config: { tables: { state: 'table-b' } } })).not.toBe(a);
  });
});
