// The node store port: compute node inventories and the claims that make up their usage.
//
// One primitive changes claims: `commit`, an all-or-nothing change of claim items and the
// usage counters of their nodes, with the conditions that keep Nova's capacity rule and make a
// double apply impossible. The claim logic (lib/resources/claims.ts) plans a commit from what it
// read and, when the commit loses a race, reads and plans again; the DynamoDB adapter and the
// in-memory twin implement the same primitive, so the logic above them is shared.

import type { Claim, ClaimKey, ComputeNode, NodeInventory, Resources } from './types.ts';

/** How one node's counters change in a commit. */
export interface NodeChange {
  node: string;
  /** Added to vcpus_used / memory_mb_used / local_gb_used (negative to release). */
  delta: Resources;
  /** Added to claim_count. */
  claimsDelta: number;
  /**
   * Present when the commit adds usage: the inventory generation the limits were computed from
   * and, per class that grows, the highest usage at which the change still fits. The write is
   * conditional on both, so usage + request > (total − reserved) × ratio can never be stored.
   */
  capacity?: { generation: number; maxBefore: Partial<Resources> };
}

/** A claim item the commit deletes: it must still be the item that was read. */
export interface ClaimDelete {
  key: ClaimKey;
  claim_id: string;
  /** Also require this updated_at (the audit: a claim renewed since it was read is kept). */
  updated_at?: string;
}

/** Sets a claim's updated_at (an owner re-using its claim): it must still be the item read. */
export interface ClaimRenew {
  key: ClaimKey;
  claim_id: string;
  updated_at: string;
}

/** The instance record must still be at this version (null: must not exist). */
export interface InstanceGuard {
  instance_id: string;
  version: number | null;
}

/**
 * A claim item the commit writes: created only if absent (a double apply is impossible), or,
 * with `replaces`, put over the item with that claim_id (one item cannot be both deleted and
 * put in one transaction).
 */
export interface ClaimPut {
  claim: Claim;
  replaces?: string;
}

export interface ClaimCommit {
  /** Every node whose claims change, once each (usage_version is bumped on each). */
  nodes: NodeChange[];
  puts: ClaimPut[];
  deletes: ClaimDelete[];
  renews?: ClaimRenew[];
  guards?: InstanceGuard[];
  now: Date;
}

/**
 * What became of a commit. `conflict`: another transaction held an item (DynamoDB's
 * TransactionConflict) or the request was throttled: back off and try again. `condition`: a
 * condition no longer held (usage or inventory moved, a claim appeared or went): read again
 * and decide again.
 */
export type CommitResult = 'committed' | 'conflict' | 'condition';

/** Counters of what commits met (the bench reports conflicts per claim). */
export interface CommitStats {
  commits: number;
  committed: number;
  conflicts: number;
  conditionFailures: number;
}

export interface NodeStore {
  getNode(node: string): Promise<ComputeNode | null>;
  /** Several nodes at once (strongly consistent); absent nodes are missing from the map. */
  getNodes(nodes: readonly string[]): Promise<Map<string, ComputeNode>>;
  /**
   * Creates the node with `inventory` and no usage (`expectedGeneration` null: it must not
   * exist), or replaces its inventory and increments its generation (it must still be at
   * `expectedGeneration`). Usage is never touched. False when the condition failed.
   */
  saveInventory(
    node: string,
    inventory: NodeInventory,
    expectedGeneration: number | null,
    now: Date,
  ): Promise<boolean>;

  getClaim(key: ClaimKey): Promise<Claim | null>;
  /** Several claims at once (strongly consistent); absent ones are left out. */
  getClaims(keys: readonly ClaimKey[]): Promise<Claim[]>;
  /** Every claim on a node. */
  listClaims(node: string): Promise<Claim[]>;
  commit(commit: ClaimCommit): Promise<CommitResult>;
  /**
   * Sets the node's usage counters (the audit's drift repair), only if its claims have not
   * changed since `expectedUsageVersion` was read. False when they have.
   */
  resetUsage(
    node: string,
    expectedUsageVersion: number,
    usage: Resources,
    claimCount: number,
    now: Date,
  ): Promise<boolean>;
  readonly stats: CommitStats;
}

export function newCommitStats(): CommitStats {
  return { commits: 0, committed: 0, conflicts: 0, conditionFailures: 0 };
}

export const NODE_PK_PREFIX = 'node#';
export const INVENTORY_SK = 'inventory';
export const CLAIM_SK_PREFIX = 'claim#';

/** DynamoDB refuses a transaction that names one item twice; the twin refuses it too. */
export function assertDistinctItems(commit: ClaimCommit): void {
  const keys = [
    ...commit.nodes.map((n) => `${nodePk(n.node)}|${INVENTORY_SK}`),
    ...[
      ...commit.puts.map((p) => p.claim),
      ...commit.deletes.map((d) => d.key),
      ...(commit.renews ?? []).map((r) => r.key),
    ].map((k) => {
      const { pk, sk } = claimItemKey(k);
      return `${pk}|${sk}`;
    }),
    ...(commit.guards ?? []).map((g) => `inst#${g.instance_id}|instance`),
  ];
  if (new Set(keys).size !== keys.length) {
    throw new Error(`A claim commit names an item twice: ${keys.join(', ')}`);
  }
}

export const nodePk = (node: string) => `${NODE_PK_PREFIX}${node}`;
export const inventoryKey = (node: string) => ({ pk: nodePk(node), sk: INVENTORY_SK });
export const claimItemKey = (k: ClaimKey) => ({
  pk: nodePk(k.node),
  sk: `${CLAIM_SK_PREFIX}${k.instance_id}#${k.kind}`,
});
