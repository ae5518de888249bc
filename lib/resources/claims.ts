// Nova's ResourceTracker claims (nova-compute.md §4.1, §4.2) as transactions on the node store.
//
// An instance has either one `instance` claim on the node it runs on, or, while it moves, a
// `move-source` claim (its old usage, held for a revert) and a `move-dest` claim (the new usage)
// that name the migration. Every change below is planned from a strongly consistent read and
// committed as one NodeStore.commit (one TransactWriteItems): claim items and node counters
// change together, the capacity rule is a condition of the write, a claim is created only if
// absent and deleted only if it is the item that was read. A commit that loses a race is
// planned again from a fresh read (jittered backoff for transaction conflicts); a plan that
// finds no room throws ComputeResourcesUnavailable, which is final. A plan that finds its work
// already done (a redelivered command) changes nothing, so every function here is idempotent.
//
//   instanceClaim       build, unshelve                 + instance@node
//   moveClaim           resize, cold migration           + move-dest@dest, instance@src → move-source@src
//   liveMigrationClaim  live migration                   as moveClaim, flavor unchanged
//   rebuildClaim        rebuild on the same node         nothing (Nova's NopClaim)
//   confirmMove         confirm / live migration done    − move-source@src, move-dest@dest → instance@dest
//   revertMove          revert / move failed             − move-dest@dest, move-source@src → instance@src
//   abortClaim          a claimed operation failed       instance: drop; move: revert
//   dropClaim           terminate, shelve offload        − the claim

import { randomUUID } from 'node:crypto';
import type { Instance, InstanceFlavor } from '../compute/instance.ts';
import type { Migration } from '../store/migration-store.ts';
import { claimResources, exceedsCapacity, exceedsTotal, maxUsageBeforeClaim } from './capacity.ts';
import { type ResourceDeps, nodeStoreOf } from './deps.ts';
import {
  ClaimConflictError,
  ClaimContentionError,
  ComputeResourcesUnavailableError,
} from './errors.ts';
import type { ClaimCommit, ClaimPut, InstanceGuard, NodeChange, NodeStore } from './node-store.ts';
import {
  type Claim,
  type ClaimKey,
  ClaimKind,
  type NopClaim,
  type Resources,
  NO_RESOURCES,
  addResources,
  claimKeyOf,
  resourcesOf,
  usageOf,
} from './types.ts';

/** Lost races are planned again this many times before the command is left to SQS. */
export const MAX_CLAIM_ATTEMPTS = 25;
const BACKOFF_BASE_MS = 5;
const BACKOFF_CAP_MS = 250;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Full jitter: contenders spread out instead of colliding again in step. */
const backoff = (attempt: number) =>
  sleep(Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt));

/** The migration fields a move claim needs (a Migration has them all). */
export type MoveRequest = Pick<
  Migration,
  'id' | 'instance_id' | 'source_node' | 'dest_node' | 'new_flavor'
>;
/** The fields confirm and revert need (a Migration, or a move claim's own record). */
export type MoveRef = Pick<Migration, 'id' | 'instance_id' | 'source_node' | 'dest_node'>;

export interface ClaimOptions {
  /** The command taking the claim (default: the instance's task_owner). */
  owner?: string | null;
  /** The flavor to claim (default: the instance's). */
  flavor?: InstanceFlavor;
}

/** What a plan wants written, before node limits are read and checked. */
interface DraftPut extends ClaimPut {
  /** New usage (Placement's max_unit applies), not usage moved from another claim. */
  fresh: boolean;
  /** The amounts of the item a replacement overwrites (they leave with it). */
  replacedAmounts?: Resources;
}

interface Draft<T> {
  puts: DraftPut[];
  deletes: { claim: Claim; updated_at?: string }[];
  renews?: { claim: Claim; updated_at: string }[];
  guards?: InstanceGuard[];
  result: T;
}

type Plan<T> = { done: T } | Draft<T>;

/**
 * Turns a draft into a commit: per node, the usage delta and, where usage grows, the limit
 * condition computed from the node just read. Throws ComputeResourcesUnavailable when the
 * read already shows no room (or a fresh claim is larger than the node).
 */
async function toCommit<T>(store: NodeStore, draft: Draft<T>, now: Date): Promise<ClaimCommit> {
  const deltas = new Map<string, { delta: Resources; claims: number }>();
  const touch = (node: string, r: Resources, sign: number, claims: number) => {
    const cur = deltas.get(node) ?? { delta: { ...NO_RESOURCES }, claims: 0 };
    deltas.set(node, { delta: addResources(cur.delta, r, sign), claims: cur.claims + claims });
  };
  for (const p of draft.puts) {
    touch(p.claim.node, p.claim, 1, p.replaces === undefined ? 1 : 0);
    if (p.replacedAmounts) touch(p.claim.node, p.replacedAmounts, -1, 0);
  }
  for (const d of draft.deletes) touch(d.claim.node, d.claim, -1, -1);
  const nodes = await store.getNodes([...deltas.keys()]);
  const changes: NodeChange[] = [];
  for (const [name, d] of deltas) {
    const node = nodes.get(name);
    const grows = d.delta.vcpus > 0 || d.delta.memory_mb > 0 || d.delta.local_gb > 0;
    if (!node) {
      // Nova's instance_claim refuses an unknown node with ComputeResourcesUnavailable.
      if (grows) throw new ComputeResourcesUnavailableError(name, [`Node ${name} is not known`]);
      throw new ClaimConflictError(`Node ${name} of a claim is not known`);
    }
    const change: NodeChange = { node: name, delta: d.delta, claimsDelta: d.claims };
    if (grows) {
      const reasons = [
        ...draft.puts
          .filter((p) => p.fresh && p.claim.node === name)
          .flatMap((p) => exceedsTotal(node, p.claim)),
        ...exceedsCapacity(node, usageOf(node), d.delta),
      ];
      if (reasons.length > 0) throw new ComputeResourcesUnavailableError(name, reasons);
      change.capacity = {
        generation: node.generation,
        maxBefore: maxUsageBeforeClaim(node, d.delta),
      };
    }
    changes.push(change);
  }
  return {
    nodes: changes,
    puts: draft.puts.map((p) => ({
      claim: p.claim,
      ...(p.replaces === undefined ? {} : { replaces: p.replaces }),
    })),
    deletes: draft.deletes.map((d) => ({
      key: claimKeyOf(d.claim),
      claim_id: d.claim.claim_id,
      ...(d.updated_at === undefined ? {} : { updated_at: d.updated_at }),
    })),
    renews: (draft.renews ?? []).map((r) => ({
      key: claimKeyOf(r.claim),
      claim_id: r.claim.claim_id,
      updated_at: r.updated_at,
    })),
    guards: draft.guards ?? [],
    now,
  };
}

/** Plans, commits, and on a lost race plans again from a fresh read. */
async function change<T>(
  deps: ResourceDeps,
  what: string,
  plan: (now: Date) => Promise<Plan<T>>,
): Promise<T> {
  const store = nodeStoreOf(deps);
  for (let attempt = 0; attempt < MAX_CLAIM_ATTEMPTS; attempt++) {
    const now = deps.clock();
    const p = await plan(now);
    if ('done' in p) return p.done;
    const commit = await toCommit(store, p, now);
    const result = await store.commit(commit);
    if (result === 'committed') return p.result;
    await backoff(attempt);
  }
  throw new ClaimContentionError(what, MAX_CLAIM_ATTEMPTS);
}

function sameAmounts(a: Resources, b: Resources): boolean {
  return a.vcpus === b.vcpus && a.memory_mb === b.memory_mb && a.local_gb === b.local_gb;
}

function newClaim(fields: Omit<Claim, 'claim_id' | 'created_at' | 'updated_at'>, now: Date): Claim {
  return {
    claim_id: randomUUID(),
    ...fields,
    created_at: now.toISOString(),
    updated_at: now.toISOString(),
  };
}

/** The same usage under another kind (a conversion moves no usage). */
function convert(c: Claim, kind: ClaimKind, node: string, move: MoveRef | null, now: Date): Claim {
  return newClaim(
    {
      node,
      instance_id: c.instance_id,
      kind,
      ...resourcesOf(c),
      migration_id: move?.id ?? null,
      source_node: move?.source_node ?? null,
      dest_node: move?.dest_node ?? null,
      flavor: c.flavor,
      owner: c.owner,
    },
    now,
  );
}

function replacing(put: Claim, existing: Claim | undefined, fresh: boolean): DraftPut {
  return existing
    ? { claim: put, replaces: existing.claim_id, fresh, replacedAmounts: resourcesOf(existing) }
    : { claim: put, fresh };
}

const find = (claims: Claim[], key: ClaimKey) =>
  claims.find((c) => c.node === key.node && c.kind === key.kind);

// ── Instance claims ──────────────────────────────────────────────────────────────────────────

/**
 * Nova's instance_claim: the instance's usage on `node`. Taking it again (a redelivered build)
 * renews the same claim; a claim of other amounts is replaced. ComputeResourcesUnavailable when
 * the node has no room.
 */
export async function instanceClaim(
  deps: ResourceDeps,
  instance: Instance,
  node: string,
  options: ClaimOptions = {},
): Promise<Claim> {
  const flavor = options.flavor ?? instance.flavor;
  const amounts = claimResources(instance, flavor);
  const key: ClaimKey = { node, instance_id: instance.instance_id, kind: ClaimKind.INSTANCE };
  return change(deps, `Claim of instance ${instance.instance_id} on ${node}`, async (now) => {
    const existing = (await nodeStoreOf(deps).getClaim(key)) ?? undefined;
    if (existing && sameAmounts(existing, amounts)) {
      const renewed = { ...existing, updated_at: now.toISOString() };
      return {
        puts: [],
        deletes: [],
        renews: [{ claim: existing, updated_at: renewed.updated_at }],
        result: renewed,
      };
    }
    const claim = newClaim(
      {
        ...key,
        ...amounts,
        migration_id: null,
        source_node: null,
        dest_node: null,
        flavor: flavor.name,
        owner: options.owner !== undefined ? options.owner : instance.task_owner,
      },
      now,
    );
    return { puts: [replacing(claim, existing, true)], deletes: [], result: claim };
  });
}

/** Nova's NopClaim: a rebuild on the instance's own node claims nothing and aborts nothing. */
export function rebuildClaim(instance: Pick<Instance, 'instance_id' | 'node'>): NopClaim {
  return { kind: 'nop', node: instance.node, instance_id: instance.instance_id };
}

// ── Move claims ──────────────────────────────────────────────────────────────────────────────

/**
 * Nova's resize_claim / _move_claim: the new flavor's usage on the destination, while the
 * source's usage stays, held under the migration until confirm or revert (its instance claim
 * becomes the move-source claim in the same commit). On the same node both count, as in
 * Placement. Returns the destination claim; taking it again returns it unchanged.
 */
export async function moveClaim(
  deps: ResourceDeps,
  instance: Pick<Instance, 'instance_id' | 'image_ref' | 'block_device_mapping' | 'task_owner'>,
  migration: MoveRequest,
  options: Pick<ClaimOptions, 'owner'> = {},
): Promise<Claim> {
  const m = migration;
  const iid = m.instance_id;
  const destKey: ClaimKey = { node: m.dest_node, instance_id: iid, kind: ClaimKind.MOVE_DEST };
  const srcKey: ClaimKey = { node: m.source_node, instance_id: iid, kind: ClaimKind.INSTANCE };
  const heldKey: ClaimKey = { node: m.source_node, instance_id: iid, kind: ClaimKind.MOVE_SOURCE };
  return change(deps, `Move claim of instance ${iid} on ${m.dest_node}`, async (now) => {
    const claims = await nodeStoreOf(deps).getClaims([destKey, srcKey, heldKey]);
    const dest = find(claims, destKey);
    const src = find(claims, srcKey);
    const held = find(claims, heldKey);
    if (dest?.migration_id === m.id) return { done: dest };
    for (const other of [dest, held]) {
      if (other && other.migration_id !== m.id) {
        throw new ClaimConflictError(
          `Instance ${iid} already has a ${other.kind} claim on ${other.node} for migration ` +
            `${other.migration_id}`,
        );
      }
    }
    const claim = newClaim(
      {
        ...destKey,
        ...claimResources(instance, m.new_flavor),
        migration_id: m.id,
        source_node: m.source_node,
        dest_node: m.dest_node,
        flavor: m.new_flavor.name,
        owner: options.owner !== undefined ? options.owner : instance.task_owner,
      },
      now,
    );
    const draft: Draft<Claim> = { puts: [{ claim, fresh: true }], deletes: [], result: claim };
    // An instance with no claim at the source (tracked before claims existed) holds nothing.
    if (src && !held) {
      draft.deletes.push({ claim: src });
      draft.puts.push({
        claim: convert(src, ClaimKind.MOVE_SOURCE, src.node, m, now),
        fresh: false,
      });
    }
    return draft;
  });
}

/** Nova's live_migration_claim: a move claim at the instance's own flavor. */
export async function liveMigrationClaim(
  deps: ResourceDeps,
  instance: Pick<
    Instance,
    'instance_id' | 'image_ref' | 'block_device_mapping' | 'task_owner' | 'flavor'
  >,
  migration: Omit<MoveRequest, 'new_flavor'> & { new_flavor?: InstanceFlavor },
  options: Pick<ClaimOptions, 'owner'> = {},
): Promise<Claim> {
  return moveClaim(deps, instance, { ...migration, new_flavor: instance.flavor }, options);
}

/**
 * Nova's drop_move_claim_at_source (confirm, or a live migration that completed): the source's
 * held usage goes, the destination's claim becomes the instance's claim. Idempotent.
 */
export async function confirmMove(deps: ResourceDeps, migration: MoveRef): Promise<void> {
  const m = migration;
  const iid = m.instance_id;
  const destKey: ClaimKey = { node: m.dest_node, instance_id: iid, kind: ClaimKind.MOVE_DEST };
  const heldKey: ClaimKey = { node: m.source_node, instance_id: iid, kind: ClaimKind.MOVE_SOURCE };
  const finalKey: ClaimKey = { node: m.dest_node, instance_id: iid, kind: ClaimKind.INSTANCE };
  await change(deps, `Confirm of migration ${m.id}`, async (now) => {
    const claims = await nodeStoreOf(deps).getClaims([destKey, heldKey, finalKey]);
    const dest = find(claims, destKey);
    const held = find(claims, heldKey);
    const draft: Draft<void> = { puts: [], deletes: [], result: undefined };
    if (held?.migration_id === m.id) draft.deletes.push({ claim: held });
    if (dest?.migration_id === m.id) {
      draft.deletes.push({ claim: dest });
      const existing = find(claims, finalKey);
      draft.puts.push(
        replacing(convert(dest, ClaimKind.INSTANCE, dest.node, null, now), existing, false),
      );
    }
    if (draft.deletes.length === 0) return { done: undefined };
    return draft;
  });
}

/**
 * Nova's drop_move_claim_at_dest (revert, or a move that failed or was aborted): the
 * destination's usage goes, the held source usage becomes the instance's claim again.
 * Idempotent.
 */
export async function revertMove(deps: ResourceDeps, migration: MoveRef): Promise<void> {
  const m = migration;
  const iid = m.instance_id;
  const destKey: ClaimKey = { node: m.dest_node, instance_id: iid, kind: ClaimKind.MOVE_DEST };
  const heldKey: ClaimKey = { node: m.source_node, instance_id: iid, kind: ClaimKind.MOVE_SOURCE };
  const finalKey: ClaimKey = { node: m.source_node, instance_id: iid, kind: ClaimKind.INSTANCE };
  await change(deps, `Revert of migration ${m.id}`, async (now) => {
    const claims = await nodeStoreOf(deps).getClaims([destKey, heldKey, finalKey]);
    const dest = find(claims, destKey);
    const held = find(claims, heldKey);
    const draft: Draft<void> = { puts: [], deletes: [], result: undefined };
    if (dest?.migration_id === m.id) draft.deletes.push({ claim: dest });
    if (held?.migration_id === m.id) {
      draft.deletes.push({ claim: held });
      const existing = find(claims, finalKey);
      draft.puts.push(
        replacing(convert(held, ClaimKind.INSTANCE, held.node, null, now), existing, false),
      );
    }
    if (draft.deletes.length === 0) return { done: undefined };
    return draft;
  });
}

/** The move a move claim belongs to, from the claim alone. */
export function moveOf(claim: Claim): MoveRef | null {
  if (!claim.migration_id || !claim.source_node || !claim.dest_node) return null;
  return {
    id: claim.migration_id,
    instance_id: claim.instance_id,
    source_node: claim.source_node,
    dest_node: claim.dest_node,
  };
}

// ── Abort and drop ───────────────────────────────────────────────────────────────────────────

/**
 * Claim.abort / MoveClaim.abort: the operation that took the claim failed. An instance claim
 * is dropped; a move claim is reverted (the held source usage returns to the instance).
 */
export async function abortClaim(deps: ResourceDeps, claim: Claim | NopClaim): Promise<void> {
  if (claim.kind === 'nop') return;
  if (claim.kind === ClaimKind.INSTANCE) {
    await dropClaim(deps, claim, { claimId: claim.claim_id });
    return;
  }
  const move = moveOf(claim);
  if (move) await revertMove(deps, move);
}

/**
 * Drops a claim (terminate, shelve offload: Nova's update_usage removing the instance). With
 * `claimId`, only that very claim. True when a claim was dropped.
 */
export async function dropClaim(
  deps: ResourceDeps,
  key: ClaimKey,
  options: { claimId?: string } = {},
): Promise<boolean> {
  return change<boolean>(
    deps,
    `Drop of claim ${key.kind} ${key.instance_id} on ${key.node}`,
    async () => {
      const existing = await nodeStoreOf(deps).getClaim(claimKeyOf(key));
      if (!existing || (options.claimId !== undefined && existing.claim_id !== options.claimId)) {
        return { done: false };
      }
      return { puts: [], deletes: [{ claim: existing }], result: true };
    },
  );
}

/**
 * Drops every claim an instance holds on `nodes` (a terminate while a move is in flight: its
 * node, the migration's source and destination). True when any was dropped.
 */
export async function dropInstanceClaims(
  deps: ResourceDeps,
  instanceId: string,
  nodes: readonly string[],
): Promise<boolean> {
  const keys = [...new Set(nodes)].flatMap((node) =>
    Object.values(ClaimKind).map((kind) => ({ node, instance_id: instanceId, kind })),
  );
  return change<boolean>(deps, `Drop of the claims of instance ${instanceId}`, async () => {
    const claims = await nodeStoreOf(deps).getClaims(keys);
    if (claims.length === 0) return { done: false };
    return { puts: [], deletes: claims.map((claim) => ({ claim })), result: true };
  });
}

/**
 * The audit's release of a claim nothing holds: only the very item read (same claim_id and
 * updated_at, so a claim renewed or taken again meanwhile stays), and only while the instance
 * is still the version the decision was made on. False when anything moved: the next audit
 * decides again.
 */
export async function releaseClaim(
  deps: ResourceDeps,
  claim: Claim,
  instanceVersion: number | null,
): Promise<boolean> {
  const store = nodeStoreOf(deps);
  const draft: Draft<boolean> = {
    puts: [],
    deletes: [{ claim, updated_at: claim.updated_at }],
    guards: [{ instance_id: claim.instance_id, version: instanceVersion }],
    result: true,
  };
  for (let attempt = 0; attempt < MAX_CLAIM_ATTEMPTS; attempt++) {
    const result = await store.commit(await toCommit(store, draft, deps.clock()));
    if (result === 'committed') return true;
    if (result === 'condition') return false;
    await backoff(attempt);
  }
  throw new ClaimContentionError(`Release of claim ${claim.claim_id}`, MAX_CLAIM_ATTEMPTS);
}
