// Usage-audit shards. Nova audits per compute host, so an instance whose host was cleared
// (shelved offloaded, never placed) is reported by nobody. Stratus audits per node AND per key
// segment: an instance with a node belongs to that node's shard; one without belongs to the
// segment its id hashes to. Every instance record is in exactly one shard at any time, and
// the by-node index (`index_node`) lists a shard's members.

import { createHash } from 'node:crypto';
import { AUDIT_SEGMENTS } from '../topology.ts';

/** The prefix of segment shard keys. `#` never starts a node name (nodes are validated). */
const SEGMENT_PREFIX = '#segment-';

export type AuditShard = { kind: 'node'; node: string } | { kind: 'segment'; segment: number };

/** The segment of a node-less instance: stable for its id, evenly spread (SHA-1, not a toy hash). */
export function segmentOf(instanceId: string): number {
  return createHash('sha1').update(instanceId).digest().readUInt32BE(0) % AUDIT_SEGMENTS;
}

/** The index key of the shard an instance record belongs to. */
export function auditShardKey(instance: { instance_id: string; node: string | null }): string {
  return instance.node ?? `${SEGMENT_PREFIX}${segmentOf(instance.instance_id)}`;
}

export function shardKey(shard: AuditShard): string {
  return shard.kind === 'node' ? shard.node : `${SEGMENT_PREFIX}${shard.segment}`;
}

/** The shard a key names (the inverse of shardKey). */
export function parseShardKey(key: string): AuditShard {
  if (key.startsWith(SEGMENT_PREFIX)) {
    const segment = Number(key.slice(SEGMENT_PREFIX.length));
    if (Number.isInteger(segment) && segment >= 0 && segment < AUDIT_SEGMENTS) {
      return { kind: 'segment', segment };
    }
  }
  return { kind: 'node', node: key };
}

/** How people see a shard (task_log `host`, the audit log, manifests): `node-1`, `segment-3`. */
export function shardName(key: string): string {
  const shard = parseShardKey(key);
  return shard.kind === 'node' ? shard.node : `segment-${shard.segment}`;
}

/** Every shard of a deployment: its nodes, then every segment. Sorted, so manifests agree. */
export function allShardKeys(nodes: readonly string[]): string[] {
  const segments = Array.from({ length: AUDIT_SEGMENTS }, (_, segment) =>
    shardKey({ kind: 'segment', segment }),
  );
  return [...[...new Set(nodes)].sort(), ...segments];
}
