// `npm start`: the control plane on one machine. DynamoDB Local and the SQS emulator start on
// loopback, the deployment's tables and queues are created from lib/topology.ts, and the real
// function handlers consume their queues exactly as the Lambda SQS event source would.
// Notifications go to AWS_ENDPOINT_URL_EVENTBRIDGE when it is set, and to
// .stratus/notifications.jsonl (printed as they happen) otherwise.

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type Config, loadConfig } from '../config.ts';
import {
  IMPLEMENTED_OPERATIONS,
  LIFECYCLE_FUNCTION,
  type Operation,
  operationFunction,
  operationSlug,
} from '../topology.ts';
import { type RunningEmulator, startDynamoDbLocal, startSqsEmulator } from './emulators.ts';
import { type SqsHandler, startEventSource } from './event-source.ts';
import { type LocalTopology, provisionLocal } from './provision.ts';

const REGION = 'us-east-1';

function usage(): string {
  return [
    'usage: npm start [-- --memory] [--data-dir DIR]',
    '  --memory      keep DynamoDB data in memory only (default: under .stratus/dynamodb)',
    '  --data-dir    where local state lives (default: .stratus)',
  ].join('\n');
}

export interface Endpoints {
  region: string;
  sqs: {
    endpoint: string;
    queues: Partial<Record<Operation, string>>;
    dlqs: Partial<Record<Operation, string>>;
    lifecycle: string;
  };
  dynamodb: { endpoint: string; tables: Config['tables'] };
  eventbridge: { endpoint: string | null; bus: string };
  notifications_log: string | null;
}

function endpointsOf(
  config: Config,
  topology: LocalTopology,
  dynamodb: string,
  sqs: string,
  log: string | null,
): Endpoints {
  const ops = Object.entries(topology.queues) as [Operation, { url: string; dlqUrl: string }][];
  return {
    region: REGION,
    sqs: {
      endpoint: sqs,
      queues: Object.fromEntries(ops.map(([op, q]) => [op, q.url])),
      dlqs: Object.fromEntries(ops.map(([op, q]) => [op, q.dlqUrl])),
      lifecycle: topology.lifecycle.url,
    },
    dynamodb: { endpoint: dynamodb, tables: config.tables },
    eventbridge: {
      endpoint: process.env.AWS_ENDPOINT_URL_EVENTBRIDGE ?? null,
      bus: config.event_bus,
    },
    notifications_log: log,
  };
}

function printTable(e: Endpoints): void {
  const rows: [string, string][] = [
    ['DynamoDB', e.dynamodb.endpoint],
    ['SQS', e.sqs.endpoint],
    ['EventBridge', e.eventbridge.endpoint ?? `(none: notifications in ${e.notifications_log})`],
    ...Object.entries(e.sqs.queues).map(([op, url]) => [`queue ${op}`, url] as [string, string]),
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log('\nStratus control plane is up\n');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
  console.log('\nEndpoints written to .stratus/endpoints.json. Ctrl-C stops.\n');
}

/** Prints notifications from the local log as they are appended. */
function followNotifications(path: string): () => void {
  let printed = 0;
  const timer = setInterval(async () => {
    const text = await readFile(path, 'utf8').catch(() => '');
    const lines = text.split('\n').filter(Boolean);
    for (const line of lines.slice(printed)) {
      const e = JSON.parse(line) as {
        'detail-type': string;
        resources: string[];
        detail: { payload: Record<string, unknown> };
      };
      const p = e.detail.payload;
      const state = typeof p.state === 'string' ? ` ${p.state}/${p.state_description || '-'}` : '';
      console.log(`  event  ${e['detail-type'].padEnd(34)} ${e.resources[0] ?? ''}${state}`);
    }
    printed = lines.length;
  }, 500);
  return () => clearInterval(timer);
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      memory: { type: 'boolean', default: false },
      'data-dir': { type: 'string', default: '.stratus' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(usage());
    return;
  }
  const dataDir = resolve(values['data-dir']);
  await mkdir(dataDir, { recursive: true });
  const emulators: RunningEmulator[] = [];
  const stopAll = async () => {
    for (const e of emulators.reverse()) await e.stop();
  };
  try {
    const dynamo = await startDynamoDbLocal(
      values.memory ? {} : { dataDir: join(dataDir, 'dynamodb') },
    );
    emulators.push(dynamo);
    const sqsEmulator = await startSqsEmulator();
    emulators.push(sqsEmulator);

    Object.assign(process.env, {
      AWS_REGION: process.env.AWS_REGION ?? REGION,
      AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? 'local',
      AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? 'local',
      AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
      AWS_ENDPOINT_URL_SQS: sqsEmulator.endpoint,
      // Locally, metrics (CloudWatch EMF lines) are noise and logs show only what needs a look.
      POWERTOOLS_METRICS_DISABLED: process.env.POWERTOOLS_METRICS_DISABLED ?? 'true',
      POWERTOOLS_LOG_LEVEL: process.env.POWERTOOLS_LOG_LEVEL ?? 'WARN',
    });
    const config = loadConfig();
    const sqs = new SQSClient({
      endpoint: sqsEmulator.endpoint,
      region: REGION,
      useQueueUrlAsEndpoint: false,
    });
    const dynamodb = new DynamoDBClient({ endpoint: dynamo.endpoint, region: REGION });
    const topology = await provisionLocal({
      config,
      sqs,
      dynamodb,
      // Locally a failed command is retried after its function timeout, not 6 ×.
      visibilityTimeoutSeconds: operationFunction('build_and_run_instance').timeoutSeconds,
    });
    process.env.STRATUS_LIFECYCLE_QUEUE_URL = topology.lifecycle.url;
    const log = process.env.AWS_ENDPOINT_URL_EVENTBRIDGE
      ? null
      : join(dataDir, 'notifications.jsonl');
    if (log) process.env.STRATUS_NOTIFICATIONS_LOG = log;

    const sources: { stop(): Promise<void> }[] = [];
    const onError = (e: unknown) => console.error(`  error  ${(e as Error).message}`);
    for (const op of IMPLEMENTED_OPERATIONS) {
      const pair = topology.queues[op];
      if (!pair) continue;
      const mod = (await import(`../../functions/${operationSlug(op)}.ts`)) as {
        handler: SqsHandler;
      };
      const s = operationFunction(op);
      sources.push(
        startEventSource({
          sqs,
          queueUrl: pair.url,
          queueArn: pair.arn,
          handler: mod.handler,
          functionName: `${config.prefix}-${operationSlug(op)}`,
          timeoutSeconds: s.timeoutSeconds,
          batchSize: s.batchSize,
          onError,
        }),
      );
    }
    const lifecycle = (await import('../../functions/lifecycle-events.ts')) as {
      handler: SqsHandler;
    };
    sources.push(
      startEventSource({
        sqs,
        queueUrl: topology.lifecycle.url,
        queueArn: topology.lifecycle.arn,
        handler: lifecycle.handler,
        functionName: `${config.prefix}-lifecycle-events`,
        timeoutSeconds: LIFECYCLE_FUNCTION.timeoutSeconds,
        batchSize: LIFECYCLE_FUNCTION.batchSize,
        onError,
      }),
    );

    const endpoints = endpointsOf(config, topology, dynamo.endpoint, sqsEmulator.endpoint, log);
    await writeFile(join(dataDir, 'endpoints.json'), `${JSON.stringify(endpoints, null, 2)}\n`);
    printTable(endpoints);
    const stopFollowing = log ? followNotifications(log) : () => undefined;

    await new Promise<void>((done) => {
      const shutdown = () => {
        console.log('\nStopping: finishing the batches in flight …');
        done();
      };
      process.once('SIGINT', shutdown);
      process.once('SIGTERM', shutdown);
    });
    stopFollowing();
    await Promise.all(sources.map((s) => s.stop()));
  } finally {
    await stopAll();
  }
}

if (import.meta.main) {
  main().catch((e: unknown) => {
    console.error(`stratus: ${(e as Error).message}`);
    process.exit(1);
  });
}
