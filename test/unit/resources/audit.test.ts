// The audit's rule for who holds a claim, and its report of the driver's view.

import { describe, expect, it } from 'vitest';
import { VmState } from '../../../lib/compute/states.ts';
import { auditCounts, judgeClaim, updateAvailableResource } from '../../../lib/resources/audit.ts';
import { instanceClaim, moveClaim } from '../../../lib/resources/claims.ts';
import { refreshNodes } from '../../../lib/resources/nodes.ts';
import type { Claim } from '../../../lib/resources/types.ts';
import type { Migration, MigrationStatus } from '../../../lib/store/migration-store.ts';
import { MEDIUM, SMALL, T0, makeDeps, makeInstance, storeInstance } from './fixtures.ts';

const GRACE = 900;
const later = new Date(T0.getTime() + (GRACE + 1) * 1000);
const soon = new Date(T0.getTime() + 1000);

function claim(overrides: Partial<Claim> = {}): Claim {
  return {
    claim_id: 'c',
    node: 'n1',
    instance_id: 'i',
    kind: 'instance',
    vcpus: 1,
    memory_mb: 1,
    local_gb: 1,
    migration_id: null,
    source_node: null,
    dest_node: null,
    flavor: 'f',
    owner: null,
    created_at: T0.toISOString(),
    updated_at: T0.toISOString(),
    ...overrides,
  };
}

function migration(status: MigrationStatus): Migration {
  return {
    id: 'm',
    instance_id: 'i',
    source_node: 'n1',
    dest_node: 'n2',
    source_host: 'h',
    dest_host: 'h',
    old_flavor: SMALL,
    new_flavor: MEDIUM,
    migration_type: 'resize',
    status,
    created_at: T0.toISOString(),
    updated_at: T0.toISOString(),
  };
}

const on = (node: string | null) => makeInstance({ instance_id: 'i', node });
const moveDest = claim({
  kind: 'move-dest',
  node: 'n2',
  migration_id: 'm',
  source_node: 'n1',
  dest_node: 'n2',
});

describe('judgeClaim', () => {
  it('keeps an instance claim while the instance is on that node, whatever its age', () => {
    expect(judgeClaim(claim(), on('n1'), undefined, later, GRACE).action).toBe('keep');
  });

  it('releases the claim of a deleted instance at once', () => {
    const deleted = makeInstance({
      instance_id: 'i',
      node: 'n1',
      vm_state: VmState.DELETED,
      deleted: true,
    });
    expect(judgeClaim(claim(), deleted, undefined, soon, GRACE)).toEqual({
      action: 'release',
      why: 'instance deleted',
    });
  });

  it('gives a claim whose instance is not (yet) on its node the grace period, then releases it', () => {
    for (const instance of [on(null), on('n9'), null]) {
      expect(judgeClaim(claim(), instance, undefined, soon, GRACE).action).toBe('keep');
      expect(judgeClaim(claim(), instance, undefined, later, GRACE).action).toBe('release');
    }
  });

  it('counts the grace from the last renewal', () => {
    const renewed = claim({ updated_at: new Date(later.getTime() - 1000).toISOString() });
    expect(judgeClaim(renewed, on(null), undefined, later, GRACE).action).toBe('keep');
  });

  it('keeps move claims while their migration runs, however long', () => {
    for (const s of ['pre-migrating', 'migrating', 'finished', 'reverting', 'running'] as const) {
      expect(judgeClaim(moveDest, on('n1'), migration(s), later, GRACE).action, s).toBe('keep');
    }
  });

  it('settles move claims as their migration ended', () => {
    const verdict = (s: MigrationStatus, node: string) =>
      judgeClaim(moveDest, on(node), migration(s), later, GRACE).action;
    expect(verdict('confirmed', 'n2')).toBe('confirm');
    expect(verdict('completed', 'n2')).toBe('confirm');
    expect(verdict('reverted', 'n1')).toBe('revert');
    expect(verdict('failed', 'n1')).toBe('revert');
    expect(verdict('error', 'n2')).toBe('confirm');
    expect(verdict('error', 'n1')).toBe('revert');
  });

  it('releases a move claim whose migration never appeared, after the grace period', () => {
    expect(judgeClaim(moveDest, on('n1'), null, soon, GRACE).action).toBe('keep');
    expect(judgeClaim(moveDest, on('n1'), null, later, GRACE).action).toBe('release');
  });
});

describe('updateAvailableResource', () => {
  it("reports the driver's usage against the claims without writing it", async () => {
    const deps = makeDeps(
      [
        {
          node: 'n1',
          vcpus: 8,
          memory_mb: 16384,
          local_gb: 100,
          used: { vcpus: 3, memory_mb: 2048, local_gb: 20 },
        },
      ],
      { config: { reserved_host_memory_mb: 0 } },
    );
    await refreshNodes(deps);
    const i = await storeInstance(deps.store, makeInstance({ node: 'n1' }));
    await instanceClaim(deps, i, 'n1');
    const report = await updateAvailableResource(deps, T0);
    expect(report.nodes[0]).toMatchObject({
      driverDrift: { vcpus: 2, memory_mb: 0, local_gb: 0 },
      drift: { vcpus: 0, memory_mb: 0, local_gb: 0 },
      driftRepaired: false,
    });
    expect((await deps.nodes.getNode('n1'))!.vcpus_used).toBe(1);
  });

  it('records a changed ratio as a new generation before judging claims', async () => {
    const deps = makeDeps([{ node: 'n1', vcpus: 8, memory_mb: 16384, local_gb: 100 }]);
    await refreshNodes(deps);
    deps.config.cpu_allocation_ratio = 1;
    const report = await updateAvailableResource(deps, T0);
    expect(report.inventoryChanged).toEqual(['n1']);
    expect(await deps.nodes.getNode('n1')).toMatchObject({
      generation: 2,
      cpu_allocation_ratio: 1,
    });
  });

  it('keeps both claims of a move in flight', async () => {
    const deps = makeDeps([
      { node: 'n1', vcpus: 8, memory_mb: 16384, local_gb: 100 },
      { node: 'n2', vcpus: 8, memory_mb: 16384, local_gb: 100 },
    ]);
    await refreshNodes(deps);
    const i = await storeInstance(deps.store, makeInstance({ node: 'n1' }));
    await instanceClaim(deps, i, 'n1');
    const m = { ...migration('pre-migrating'), instance_id: i.instance_id };
    await deps.migrations.create(m);
    await moveClaim(deps, i, m);
    const report = await updateAvailableResource(deps, later);
    expect(report.nodes.flatMap((n) => n.claims.map((c) => c.verdict.action))).toEqual([
      'keep',
      'keep',
    ]);
  });

  it('audits the other nodes when one fails, and counts what it did for the metrics', async () => {
    const deps = makeDeps(
      [
        { node: 'n1', vcpus: 8, memory_mb: 16384, local_gb: 100 },
        { node: 'n2', vcpus: 8, memory_mb: 16384, local_gb: 100 },
      ],
      { config: { reserved_host_memory_mb: 0 } },
    );
    await refreshNodes(deps);
    const orphan = makeInstance();
    await instanceClaim(deps, orphan, 'n2'); // its instance was never stored
    const list = deps.nodes.listClaims.bind(deps.nodes);
    deps.nodes.listClaims = async (node) => {
      if (node === 'n1') throw new Error('n1 is unreachable');
      return list(node);
    };
    const report = await updateAvailableResource(deps, later);
    expect(report.errors).toBe(1);
    expect(report.nodes.map((n) => n.node)).toEqual(['n2']);
    expect(auditCounts(report)).toEqual({
      examined: 1,
      errors: 1,
      counts: expect.objectContaining({ nodes: 1, released: 1, kept: 0, drift_nodes: 0 }),
    });
    expect(deps.logs.some((l) => l.level === 'error' && l.extra[0]?.node === 'n1')).toBe(true);
  });
});
