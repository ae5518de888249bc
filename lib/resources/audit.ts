// The periodic resource audit: Nova's update_available_resource (nova-compute.md §4.1) on
// claims. Per node:
//
//  1. The driver's inventory is recorded again (new totals, ratios or reserved amounts move the
//     node's generation, so claims planned against the old limits are planned again).
//  2. Usage is rebuilt from the node's claims. The counters and the claims are read as one
//     consistent snapshot (the node's usage_version, which every claim change increments, is
//     the same before and after the claims were read); a difference is drift: reported (log
//     line with `metric: ResourceDrift`, and the returned report) and repaired by a write
//     conditional on that usage_version. The driver's own usage figures are compared too and
//     reported, never written (Nova also overwrites the driver's *_used with its accounting).
//  3. Claims that no live instance or migration holds are released: the instance is missing
//     or DELETED, or not on that node; a move claim whose migration ended is settled the way the
//     migration ended (confirm or revert: the crash between the migration's last write and the
//     claim's). A release deletes only the very item read (claim_id and updated_at) and only
//     while the instance is still the version the decision was made on, so a claim taken or
//     renewed concurrently is never released.
//
// A claim younger than the grace period whose instance is not (yet) on its node is kept: the
// build that took it writes the node right after its claim. No Lambda runs longer than 15
// minutes, so a claim older than that whose instance never took its node belongs to a command
// that died between the claim and the spawn; a redelivery of that command renews its claim.

import type { Instance } from '../compute/instance.ts';
import { VmState } from '../compute/states.ts';
import { type Migration, MigrationStatus, isFinalStatus } from '../store/migration-store.ts';
import type { DriverContext } from '../virt/driver.ts';
import { confirmMove, moveOf, releaseClaim, revertMove } from './claims.ts';
import { type ResourceDeps, migrationsOf, nodeStoreOf, trackerContext } from './deps.ts';
import { refreshNodes } from './nodes.ts';
import {
  type Claim,
  ClaimKind,
  type ComputeNode,
  NO_RESOURCES,
  type Resources,
  addResources,
  isZero,
  sumResources,
  usageOf,
} from './types.ts';

/** The longest a Lambda invocation can run: no claim's owner can still be on its way after it. */
export const DEFAULT_CLAIM_GRACE_SECONDS = 900;
const SNAPSHOT_ATTEMPTS = 5;

export interface AuditOptions {
  graceSeconds?: number;
  ctx?: DriverContext;
}

export type ClaimVerdict =
  | { action: 'keep'; why: string }
  | { action: 'release'; why: string }
  | { action: 'confirm' | 'revert'; why: string };

export interface ClaimAuditEntry {
  claim: Claim;
  verdict: ClaimVerdict;
  /** False when a release lost a race (the claim was taken or renewed): kept this round. */
  applied: boolean;
}

export interface NodeAudit {
  node: string;
  /** Stored counters minus the sum of the claims, before repair (all zero: no drift). */
  drift: Resources;
  driftRepaired: boolean;
  /** The driver's *_used minus the sum of the node's claims (reported only), null if unknown. */
  driverDrift: Resources | null;
  /** False when the claims kept changing while they were read (drift not judged this round). */
  snapshot: boolean;
  claims: ClaimAuditEntry[];
}

export interface AuditReport {
  nodes: NodeAudit[];
  /** Nodes whose inventory changed (generation moved). */
  inventoryChanged: string[];
  /** Nodes whose audit failed (logged one by one; the others still ran). */
  errors: number;
}

const ENDED_CONFIRMED: readonly string[] = [MigrationStatus.CONFIRMED, MigrationStatus.COMPLETED];
const ENDED_REVERTED: readonly string[] = [MigrationStatus.REVERTED, MigrationStatus.FAILED];

function alive(instance: Instance | null): instance is Instance {
  return instance !== null && !instance.deleted && instance.vm_state !== VmState.DELETED;
}

/**
 * Who holds a claim (pure: the audit's rule, tested on its own). `migration` is undefined for
 * an instance claim, null when a move claim's migration does not exist.
 */
export function judgeClaim(
  claim: Claim,
  instance: Instance | null,
  migration: Migration | null | undefined,
  now: Date,
  graceSeconds: number,
): ClaimVerdict {
  const young = now.getTime() - Date.parse(claim.updated_at) < graceSeconds * 1000;
  if (instance !== null && !alive(instance)) return { action: 'release', why: 'instance deleted' };
  if (instance === null) {
    return young
      ? { action: 'keep', why: 'instance not found yet (within grace)' }
      : { action: 'release', why: 'instance not found' };
  }
  if (claim.kind === ClaimKind.INSTANCE) {
    if (instance.node === claim.node) return { action: 'keep', why: 'instance on node' };
    return young
      ? { action: 'keep', why: 'instance not on node yet (within grace)' }
      : { action: 'release', why: `instance on ${instance.node ?? 'no node'}` };
  }
  if (!migration) {
    return young
      ? { action: 'keep', why: 'migration not found yet (within grace)' }
      : { action: 'release', why: 'migration not found' };
  }
  if (!isFinalStatus(migration.status))
    return { action: 'keep', why: `migration ${migration.status}` };
  if (ENDED_CONFIRMED.includes(migration.status)) {
    return { action: 'confirm', why: `migration ${migration.status}` };
  }
  if (ENDED_REVERTED.includes(migration.status)) {
    return { action: 'revert', why: `migration ${migration.status}` };
  }
  // `error`: the move stopped wherever the instance is now.
  if (instance.node === migration.dest_node && instance.node !== migration.source_node) {
    return { action: 'confirm', why: 'migration error, instance at the destination' };
  }
  return { action: 'revert', why: 'migration error, instance not at the destination' };
}

/** A move claim's migration (null: not found); undefined for an instance claim. */
async function migrationOf(
  deps: ResourceDeps,
  claim: Claim,
): Promise<Migration | null | undefined> {
  if (claim.kind === ClaimKind.INSTANCE) return undefined;
  if (!claim.migration_id) return null;
  return migrationsOf(deps).get(claim.instance_id, claim.migration_id);
}

/** The node's counters and claims as of one instant (no claim change in between). */
async function snapshot(
  deps: ResourceDeps,
  name: string,
): Promise<{ node: ComputeNode; claims: Claim[]; consistent: boolean } | null> {
  const store = nodeStoreOf(deps);
  let last: { node: ComputeNode; claims: Claim[] } | null = null;
  for (let attempt = 0; attempt < SNAPSHOT_ATTEMPTS; attempt++) {
    const before = await store.getNode(name);
    if (!before) return null;
    const claims = await store.listClaims(name);
    const after = await store.getNode(name);
    if (!after) return null;
    if (after.usage_version === before.usage_version) {
      return { node: after, claims, consistent: true };
    }
    last = { node: after, claims };
  }
  return last && { ...last, consistent: false };
}

async function auditNode(
  deps: ResourceDeps,
  name: string,
  now: Date,
  graceSeconds: number,
  ctx: DriverContext,
): Promise<NodeAudit | null> {
  const snap = await snapshot(deps, name);
  if (!snap) return null;
  const { node, claims, consistent } = snap;
  const sum = sumResources(claims);
  // Without a consistent snapshot a difference may be a claim in flight: judge it next round.
  const drift = consistent ? addResources(usageOf(node), sum, -1) : { ...NO_RESOURCES };
  const countDrift = consistent ? node.claim_count - claims.length : 0;
  let driftRepaired = false;
  if (!isZero(drift) || countDrift !== 0) {
    deps.logger.warn('Resource usage drifted from the sum of the claims', {
      metric: 'ResourceDrift',
      node: name,
      vcpus: drift.vcpus,
      memory_mb: drift.memory_mb,
      local_gb: drift.local_gb,
      claims: countDrift,
    });
    driftRepaired = await nodeStoreOf(deps).resetUsage(
      name,
      node.usage_version,
      sum,
      claims.length,
      now,
    );
  }

  const reported = await deps.driver.getAvailableResource(ctx, name);
  const driverDrift = reported
    ? addResources(
        {
          vcpus: reported.vcpus_used,
          memory_mb: reported.memory_mb_used,
          local_gb: reported.local_gb_used,
        },
        sum,
        -1,
      )
    : null;
  if (driverDrift && !isZero(driverDrift)) {
    deps.logger.info("The driver's usage differs from the claims", {
      metric: 'DriverUsageDrift',
      node: name,
      ...driverDrift,
    });
  }

  const instances = new Map<string, Instance | null>();
  const entries: ClaimAuditEntry[] = [];
  for (const claim of claims) {
    if (!instances.has(claim.instance_id)) {
      instances.set(claim.instance_id, await deps.store.getInstance(claim.instance_id));
    }
    const instance = instances.get(claim.instance_id) ?? null;
    const migration = await migrationOf(deps, claim);
    const verdict = judgeClaim(claim, instance, migration, now, graceSeconds);
    let applied = true;
    if (verdict.action === 'release') {
      applied = await releaseClaim(deps, claim, instance?.version ?? null);
    } else if (verdict.action !== 'keep') {
      const move = moveOf(claim);
      if (move)
        await (verdict.action === 'confirm' ? confirmMove(deps, move) : revertMove(deps, move));
      else applied = false;
    }
    if (verdict.action !== 'keep') {
      deps.logger.info('Claim settled by the resource audit', {
        node: name,
        instance_id: claim.instance_id,
        kind: claim.kind,
        action: verdict.action,
        why: verdict.why,
        applied,
      });
    }
    entries.push({ claim, verdict, applied });
  }
  return { node: name, drift, driftRepaired, driverDrift, snapshot: consistent, claims: entries };
}

/** Audits every node of the driver. */
export async function updateAvailableResource(
  deps: ResourceDeps,
  now: Date = deps.clock(),
  options: AuditOptions = {},
): Promise<AuditReport> {
  const ctx = options.ctx ?? trackerContext('audit', now);
  const graceSeconds = options.graceSeconds ?? DEFAULT_CLAIM_GRACE_SECONDS;
  const refreshed = await refreshNodes(deps, ctx);
  const nodes: NodeAudit[] = [];
  let errors = 0;
  for (const n of refreshed.nodes) {
    try {
      const audit = await auditNode(deps, n.node, now, graceSeconds, ctx);
      if (audit) nodes.push(audit);
    } catch (e) {
      // One broken node must not starve the others; the next run tries it again.
      errors += 1;
      deps.logger.error('Resource audit failed on a node', {
        node: n.node,
        error_name: (e as Error)?.name ?? 'Error',
        error_message: (e as Error)?.message ?? String(e),
      });
    }
  }
  return { nodes, inventoryChanged: refreshed.changed, errors };
}

/**
 * The report as counts, for the periodic-tasks report and its metrics: claims examined, what
 * became of them, and the drift found (nodes, and absolute amounts per class).
 */
export function auditCounts(report: AuditReport): {
  examined: number;
  counts: Record<string, number>;
  errors: number;
} {
  const counts: Record<string, number> = {
    nodes: report.nodes.length,
    inventory_changed: report.inventoryChanged.length,
    drift_nodes: 0,
    drift_vcpus: 0,
    drift_memory_mb: 0,
    drift_local_gb: 0,
    kept: 0,
    released: 0,
    confirmed: 0,
    reverted: 0,
    lost_races: 0,
  };
  const add = (k: string, n: number) => (counts[k] = (counts[k] ?? 0) + n);
  let examined = 0;
  for (const n of report.nodes) {
    if (!isZero(n.drift)) add('drift_nodes', 1);
    add('drift_vcpus', Math.abs(n.drift.vcpus));
    add('drift_memory_mb', Math.abs(n.drift.memory_mb));
    add('drift_local_gb', Math.abs(n.drift.local_gb));
    for (const c of n.claims) {
      examined += 1;
      if (!c.applied) add('lost_races', 1);
      else {
        const done = {
          keep: 'kept',
          release: 'released',
          confirm: 'confirmed',
          revert: 'reverted',
        };
        add(done[c.verdict.action], 1);
      }
    }
  }
  return { examined, counts, errors: report.errors };
}
