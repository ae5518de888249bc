// Transaction conflicts: DynamoDB cancels a transaction that meets another one on the same item
// (reason TransactionConflict); DynamoDB Local serializes them instead, so this path is tested
// with injected faults. A conflict is retried with backoff and the claim still lands once; a
// capacity failure is not retried; a permanent error is not swallowed.

import { DynamoDBClient, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { MAX_CLAIM_ATTEMPTS, instanceClaim } from '../../../lib/resources/claims.ts';
import { DynamoDbNodeStore } from '../../../lib/resources/dynamodb-node-store.ts';
import { ComputeResourcesUnavailableError } from '../../../lib/resources/errors.ts';
import { InMemoryNodeStore } from '../../../lib/resources/memory-node-store.ts';
import type { ClaimCommit, CommitResult } from '../../../lib/resources/node-store.ts';
import { refreshNodes } from '../../../lib/resources/nodes.ts';
import { T0, makeDeps, makeInstance } from './fixtures.ts';

const commit: ClaimCommit = { nodes: [], puts: [], deletes: [], now: T0 };

function cancelled(...codes: string[]): TransactionCanceledException {
  return new TransactionCanceledException({
    message: 'Transaction cancelled',
    $metadata: {},
    CancellationReasons: codes.map((Code) => ({ Code })),
  });
}

describe('DynamoDbNodeStore.commit', () => {
  const doc = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    }),
  );
  const mock = mockClient(DynamoDBDocumentClient);
  afterEach(() => mock.reset());
  afterAll(() => mock.restore());

  it('reports a TransactionConflict or throttling cancellation as a conflict', async () => {
    const store = new DynamoDbNodeStore(doc, 't');
    mock
      .on(TransactWriteCommand)
      .rejectsOnce(cancelled('None', 'TransactionConflict'))
      .rejectsOnce(cancelled('ThrottlingError', 'None'));
    expect(await store.commit(commit)).toBe('conflict');
    expect(await store.commit(commit)).toBe('conflict');
    expect(store.stats).toMatchObject({ commits: 2, conflicts: 2, committed: 0 });
  });

  it('reports a failed condition as such, and throws anything permanent', async () => {
    const store = new DynamoDbNodeStore(doc, 't');
    mock
      .on(TransactWriteCommand)
      .rejectsOnce(cancelled('ConditionalCheckFailed', 'None'))
      .rejectsOnce(cancelled('ValidationError'));
    expect(await store.commit(commit)).toBe('condition');
    await expect(store.commit(commit)).rejects.toBeInstanceOf(TransactionCanceledException);
    expect(store.stats).toMatchObject({ commits: 2, conditionFailures: 1 });
  });
});

/** A twin whose first `n` commits are cancelled by a (simulated) concurrent transaction. */
class ConflictingStore extends InMemoryNodeStore {
  conflictsLeft: number;
  constructor(n: number) {
    super();
    this.conflictsLeft = n;
  }
  override async commit(c: ClaimCommit): Promise<CommitResult> {
    if (this.conflictsLeft > 0) {
      this.conflictsLeft -= 1;
      this.stats.commits += 1;
      this.stats.conflicts += 1;
      return 'conflict';
    }
    return super.commit(c);
  }
}

describe('claims under transaction conflicts', () => {
  const spec = [{ node: 'n1', vcpus: 2, memory_mb: 8192, local_gb: 100 }];

  it('retry with backoff and land exactly once', async () => {
    const nodes = new ConflictingStore(3);
    const deps = makeDeps(spec, { nodes, config: { cpu_allocation_ratio: 1 } });
    await refreshNodes(deps);
    const claim = await instanceClaim(deps, makeInstance(), 'n1');
    expect(nodes.stats).toMatchObject({ conflicts: 3, committed: 1 });
    expect(await nodes.listClaims('n1')).toEqual([claim]);
    expect((await nodes.getNode('n1'))!.vcpus_used).toBe(1);
  });

  it('give up after the retry budget with an error SQS redelivery retries', async () => {
    const nodes = new ConflictingStore(MAX_CLAIM_ATTEMPTS);
    const deps = makeDeps(spec, { nodes });
    await refreshNodes(deps);
    await expect(instanceClaim(deps, makeInstance(), 'n1')).rejects.toMatchObject({
      name: 'TransactionConflictException',
    });
    expect(await nodes.listClaims('n1')).toEqual([]);
  });

  it('do not retry a capacity failure', async () => {
    const nodes = new InMemoryNodeStore();
    const deps = makeDeps(spec, { nodes, config: { cpu_allocation_ratio: 1 } });
    await refreshNodes(deps);
    await instanceClaim(deps, makeInstance(), 'n1');
    await instanceClaim(deps, makeInstance(), 'n1');
    const commits = nodes.stats.commits;
    await expect(instanceClaim(deps, makeInstance(), 'n1')).rejects.toBeInstanceOf(
      ComputeResourcesUnavailableError,
    );
    expect(nodes.stats.commits).toBe(commits);
  });
});
