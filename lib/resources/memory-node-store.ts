// The in-memory twin of DynamoDbNodeStore: the same commit conditions (capacity against the
// generation read, claims created once, deletes of the exact item read, instance guards),
// checked all before anything changes, so a commit is all or nothing. Domain tests and the
// property test use it; test/integration/resources-contract.test.ts runs both against the same
// scenarios.

import type { StateStore } from '../store/state-store.ts';
import {
  type ClaimCommit,
  type CommitResult,
  type NodeStore,
  assertDistinctItems,
  claimItemKey,
  newCommitStats,
} from './node-store.ts';
import type { Claim, ClaimKey, ComputeNode, NodeInventory, Resources } from './types.ts';

const clone = <T>(v: T): T => structuredClone(v);
const keyString = (k: ClaimKey) => {
  const { pk, sk } = claimItemKey(k);
  return `${pk}|${sk}`;
};

const COUNTERS = [
  ['vcpus', 'vcpus_used'],
  ['memory_mb', 'memory_mb_used'],
  ['local_gb', 'local_gb_used'],
] as const;

export class InMemoryNodeStore implements NodeStore {
  private readonly nodes = new Map<string, ComputeNode>();
  private readonly claims = new Map<string, Claim>();
  /** Instance guards are checked against this store (none: guards always hold). */
  private readonly instances: Pick<StateStore, 'getInstance'> | undefined;
  readonly stats = newCommitStats();

  constructor(options: { instances?: Pick<StateStore, 'getInstance'> } = {}) {
    this.instances = options.instances;
  }

  async getNode(node: string): Promise<ComputeNode | null> {
    const n = this.nodes.get(node);
    return n ? clone(n) : null;
  }

  async getNodes(nodes: readonly string[]): Promise<Map<string, ComputeNode>> {
    const out = new Map<string, ComputeNode>();
    for (const name of nodes) {
      const n = this.nodes.get(name);
      if (n) out.set(name, clone(n));
    }
    return out;
  }

  async saveInventory(
    node: string,
    inventory: NodeInventory,
    expectedGeneration: number | null,
    now: Date,
  ): Promise<boolean> {
    const current = this.nodes.get(node);
    if (expectedGeneration === null) {
      if (current) return false;
      this.nodes.set(node, {
        node,
        ...clone(inventory),
        vcpus_used: 0,
        memory_mb_used: 0,
        local_gb_used: 0,
        claim_count: 0,
        generation: 1,
        usage_version: 0,
        created_at: now.toISOString(),
        updated_at: now.toISOString(),
      });
      return true;
    }
    if (!current || current.generation !== expectedGeneration) return false;
    this.nodes.set(node, {
      ...current,
      ...clone(inventory),
      generation: current.generation + 1,
      updated_at: now.toISOString(),
    });
    return true;
  }

  async getClaim(key: ClaimKey): Promise<Claim | null> {
    const c = this.claims.get(keyString(key));
    return c ? clone(c) : null;
  }

  async getClaims(keys: readonly ClaimKey[]): Promise<Claim[]> {
    const seen = new Set<string>();
    const out: Claim[] = [];
    for (const k of keys) {
      const s = keyString(k);
      const c = this.claims.get(s);
      if (c && !seen.has(s)) out.push(clone(c));
      seen.add(s);
    }
    return out;
  }

  async listClaims(node: string): Promise<Claim[]> {
    return [...this.claims.values()]
      .filter((c) => c.node === node)
      .sort((a, b) => keyString(a).localeCompare(keyString(b)))
      .map(clone);
  }

  async commit(commit: ClaimCommit): Promise<CommitResult> {
    assertDistinctItems(commit);
    this.stats.commits += 1;
    // Guards read another store; everything after them is synchronous, so no other commit
    // interleaves between the checks below and the changes.
    const guardsHold = await this.guardsHold(commit);
    if (!guardsHold || !this.conditionsHold(commit)) {
      this.stats.conditionFailures += 1;
      return 'condition';
    }
    const stamp = commit.now.toISOString();
    for (const change of commit.nodes) {
      const n = this.nodes.get(change.node) as ComputeNode;
      for (const [amount, used] of COUNTERS) n[used] += change.delta[amount];
      n.claim_count += change.claimsDelta;
      n.usage_version += 1;
      n.updated_at = stamp;
    }
    for (const d of commit.deletes) this.claims.delete(keyString(d.key));
    for (const { claim } of commit.puts) this.claims.set(keyString(claim), clone(claim));
    for (const r of commit.renews ?? []) {
      (this.claims.get(keyString(r.key)) as Claim).updated_at = r.updated_at;
    }
    this.stats.committed += 1;
    return 'committed';
  }

  async resetUsage(
    node: string,
    expectedUsageVersion: number,
    usage: Resources,
    claimCount: number,
    now: Date,
  ): Promise<boolean> {
    const n = this.nodes.get(node);
    if (!n || n.usage_version !== expectedUsageVersion) return false;
    n.vcpus_used = usage.vcpus;
    n.memory_mb_used = usage.memory_mb;
    n.local_gb_used = usage.local_gb;
    n.claim_count = claimCount;
    n.usage_version += 1;
    n.updated_at = now.toISOString();
    return true;
  }

  /** Test hook: corrupts a node's counters, as a bug or a hand edit would (drift). */
  setUsageForTest(node: string, usage: Resources): void {
    const n = this.nodes.get(node);
    if (!n) throw new Error(`no node ${node}`);
    n.vcpus_used = usage.vcpus;
    n.memory_mb_used = usage.memory_mb;
    n.local_gb_used = usage.local_gb;
  }

  private async guardsHold(commit: ClaimCommit): Promise<boolean> {
    if (!this.instances) return true;
    for (const g of commit.guards ?? []) {
      const current = await this.instances.getInstance(g.instance_id);
      if ((current?.version ?? null) !== g.version) return false;
    }
    return true;
  }

  private conditionsHold(commit: ClaimCommit): boolean {
    for (const change of commit.nodes) {
      const n = this.nodes.get(change.node);
      if (!n) return false;
      if (change.capacity) {
        if (n.generation !== change.capacity.generation) return false;
        for (const [amount, used] of COUNTERS) {
          const max = change.capacity.maxBefore[amount];
          if (max !== undefined && n[used] > max) return false;
        }
      }
    }
    for (const { claim, replaces } of commit.puts) {
      const existing = this.claims.get(keyString(claim));
      if (replaces === undefined ? existing : existing?.claim_id !== replaces) return false;
    }
    for (const d of commit.deletes) {
      const c = this.claims.get(keyString(d.key));
      if (!c || c.claim_id !== d.claim_id) return false;
      if (d.updated_at !== undefined && c.updated_at !== d.updated_at) return false;
    }
    for (const r of commit.renews ?? []) {
      const c = this.claims.get(keyString(r.key));
      if (!c || c.claim_id !== r.claim_id) return false;
    }
    return true;
  }
}
