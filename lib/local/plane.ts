// The local control plane, in-process: DynamoDB Local and the SQS emulator on loopback, the
// deployment's tables and queues from lib/topology.ts, the real function handlers consuming
// their queues as the Lambda SQS event source does, the scheduled tasks on a short clock, and
// `endpoints.json`. `npm start` (main.ts) and the integration tests both start it from here.
//
// Durability: unless `memory` is set, DynamoDB Local keeps its database and fauxqs its queues
// and messages (write-through SQLite) under the data directory, so a stop — or a crash — loses
// no accepted command: the next start on the same directory finds the messages still queued.

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SQSClient } from '@aws-sdk/client-sqs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Endpoints } from '../client/endpoints.ts';
import { type Config, envName, loadConfig } from '../config.ts';
import { AUDIT_QUEUE_URL_ENV } from '../audit/compose.ts';
import { LIFECYCLE_FUNCTION, type Operation, USAGE_AUDIT, operationFunction } from '../topology.ts';
import { type RunningEmulator, startDynamoDbLocal, startSqsEmulator } from './emulators.ts';
import { type SqsHandler, startEventSource } from './event-source.ts';
import { type LocalTopology, provisionLocal } from './provision.ts';
import { LOCAL_SCHEDULED_TASKS, type ScheduledTask, startScheduler } from './scheduled-tasks.ts';

export const LOCAL_REGION = 'us-east-1';
/** ElasticMQ's and DynamoDB Local's customary ports, so endpoints survive restarts. */
export const DEFAULT_SQS_PORT = 9324;
export const DEFAULT_DYNAMODB_PORT = 8000;
export const DEFAULT_DATA_DIR = '.stratus';

export interface LocalPlaneOptions {
  /** Where endpoints.json, the notification log and (unless `memory`) the data live. */
  dataDir?: string;
  /** Keep DynamoDB, the queues and the notification log in memory / a temporary directory. */
  memory?: boolean;
  /** 0 picks a free port. */
  sqsPort?: number;
  dynamodbPort?: number;
  /** STRATUS_* options by option name (e.g. `{ fake_async: 'true' }`), set before loading. */
  options?: Record<string, string>;
  /** Locally a failed command is retried after its function timeout, not 6 × (default). */
  visibilityTimeoutSeconds?: number;
  maxReceiveCount?: number;
  /** Long-poll wait of each event source's receive (seconds). */
  pollWaitSeconds?: number;
  scheduledTasks?: readonly ScheduledTask[];
  /** Errors of event sources and scheduled tasks (the handlers' own errors go to their logs). */
  onError?: (error: unknown) => void;
}

export interface LocalPlane {
  endpoints: Endpoints;
  endpointsFile: string;
  config: Config;
  topology: LocalTopology;
  /** Stops consuming (waiting for the batches in flight), then the emulators. */
  stop(): Promise<void>;
}

/** Imports a function's handler by its topology entry (`functions/<name>.ts`). */
async function loadHandler(entry: string): Promise<SqsHandler> {
  const name = entry.replace(/^functions\//, '').replace(/\.ts$/, '');
  const mod = (await import(`../../functions/${name}.ts`)) as { handler: SqsHandler };
  return mod.handler;
}

function endpointsOf(
  config: Config,
  topology: LocalTopology,
  dynamodb: string,
  sqs: string,
  log: string,
): Endpoints {
  const ops = Object.entries(topology.queues) as [Operation, { url: string; dlqUrl: string }][];
  return {
    region: LOCAL_REGION,
    sqs: {
      endpoint: sqs,
      queues: Object.fromEntries(ops.map(([op, q]) => [op, q.url])),
      dlqs: Object.fromEntries(ops.map(([op, q]) => [op, q.dlqUrl])),
      lifecycle: topology.lifecycle.url,
      lifecycle_dlq: topology.lifecycle.dlqUrl,
      audit: topology.audit.url,
      audit_dlq: topology.audit.dlqUrl,
    },
    dynamodb: { endpoint: dynamodb, tables: config.tables },
    eventbridge: {
      endpoint: process.env.AWS_ENDPOINT_URL_EVENTBRIDGE || null,
      bus: config.event_bus,
    },
    notifications_log: log,
    audit_period: config.instance_usage_audit_period,
    fake_nodes: config.fake_nodes,
  };
}

/** Another plane that wrote this directory's endpoints.json and still answers on its SQS port. */
async function runningPlane(endpointsFile: string): Promise<string | null> {
  const text = await readFile(endpointsFile, 'utf8').catch(() => null);
  if (text === null) return null;
  try {
    const sqs = (JSON.parse(text) as Endpoints).sqs.endpoint;
    if (!sqs) return null;
    const answer = await fetch(sqs, { signal: AbortSignal.timeout(1000) });
    await answer.body?.cancel();
    return sqs;
  } catch {
    return null; // stale: written by a plane that is gone
  }
}

/** Two planes on one data directory would corrupt each other's databases. */
export class DataDirInUseError extends Error {
  readonly dataDir: string;
  constructor(dataDir: string, endpoint: string) {
    super(`another control plane is running on ${dataDir} (its SQS answers at ${endpoint})`);
    this.name = 'DataDirInUseError';
    this.dataDir = dataDir;
  }
}

export async function startLocalPlane(o: LocalPlaneOptions = {}): Promise<LocalPlane> {
  const dataDir = resolve(o.dataDir ?? DEFAULT_DATA_DIR);
  await mkdir(dataDir, { recursive: true });
  const running = await runningPlane(join(dataDir, 'endpoints.json'));
  if (running) throw new DataDirInUseError(dataDir, running);
  // In memory mode even the notification log is thrown away at stop.
  const scratch = o.memory ? await mkdtemp(join(tmpdir(), 'stratus-')) : null;
  const log = join(scratch ?? dataDir, 'notifications.jsonl');
  const emulators: RunningEmulator[] = [];
  const stopEmulators = async () => {
    for (const e of emulators.splice(0).reverse()) await e.stop();
  };
  const stoppers: { stop(): Promise<void> }[] = [];
  try {
    const dynamoDir = o.memory ? undefined : join(dataDir, 'dynamodb');
    const sqsDir = o.memory ? undefined : join(dataDir, 'sqs');
    for (const dir of [dynamoDir, sqsDir]) if (dir) await mkdir(dir, { recursive: true });
    const dynamo = await startDynamoDbLocal({
      port: o.dynamodbPort === 0 ? undefined : (o.dynamodbPort ?? DEFAULT_DYNAMODB_PORT),
      ...(dynamoDir ? { dataDir: dynamoDir } : {}),
    });
    emulators.push(dynamo);
    const sqsEmulator = await startSqsEmulator({
      port: o.sqsPort === 0 ? undefined : (o.sqsPort ?? DEFAULT_SQS_PORT),
      ...(sqsDir ? { dataDir: sqsDir } : {}),
    });
    emulators.push(sqsEmulator);

    // The handlers compose their adapters from the environment, as in Lambda.
    Object.assign(process.env, {
      AWS_REGION: process.env.AWS_REGION ?? LOCAL_REGION,
      AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? 'local',
      AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? 'local',
      AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
      AWS_ENDPOINT_URL_SQS: sqsEmulator.endpoint,
      // Locally, metrics (CloudWatch EMF lines) are noise and logs show only what needs a look.
      POWERTOOLS_METRICS_DISABLED: process.env.POWERTOOLS_METRICS_DISABLED ?? 'true',
      POWERTOOLS_LOG_LEVEL: process.env.POWERTOOLS_LOG_LEVEL ?? 'WARN',
      ...Object.fromEntries(Object.entries(o.options ?? {}).map(([k, v]) => [envName(k), v])),
    });
    const config = loadConfig();
    const local = {
      region: LOCAL_REGION,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    };
    const sqs = new SQSClient({
      ...local,
      endpoint: sqsEmulator.endpoint,
      useQueueUrlAsEndpoint: false,
    });
    const dynamodb = new DynamoDBClient({ ...local, endpoint: dynamo.endpoint });
    const eventbridgeEndpoint = process.env.AWS_ENDPOINT_URL_EVENTBRIDGE;
    const topology = await provisionLocal({
      config,
      sqs,
      dynamodb,
      visibilityTimeoutSeconds:
        o.visibilityTimeoutSeconds ?? operationFunction('build_and_run_instance').timeoutSeconds,
      ...(o.maxReceiveCount === undefined ? {} : { maxReceiveCount: o.maxReceiveCount }),
      ...(eventbridgeEndpoint
        ? { eventbridge: new EventBridgeClient({ region: process.env.AWS_REGION ?? LOCAL_REGION }) }
        : {}),
    });
    // Driver lifecycle events go straight to their queue (no bus routes them locally), and the
    // notifications are kept in the local log (see lib/local/tee-publisher.ts for EventBridge).
    process.env.STRATUS_LIFECYCLE_QUEUE_URL = topology.lifecycle.url;
    process.env[AUDIT_QUEUE_URL_ENV] = topology.audit.url;
    process.env.STRATUS_NOTIFICATIONS_LOG = log;

    const onError = o.onError ?? (() => undefined);
    const pipelines: {
      url: string;
      arn: string;
      entry: string;
      name: string;
      timeout: number;
      batch: number;
    }[] = [
      ...(Object.keys(topology.queues) as Operation[]).map((op) => {
        const s = operationFunction(op);
        const pair = topology.queues[op]!;
        return {
          url: pair.url,
          arn: pair.arn,
          entry: s.entry,
          name: op,
          timeout: s.timeoutSeconds,
          batch: s.batchSize,
        };
      }),
      {
        url: topology.lifecycle.url,
        arn: topology.lifecycle.arn,
        entry: LIFECYCLE_FUNCTION.entry,
        name: 'lifecycle-events',
        timeout: LIFECYCLE_FUNCTION.timeoutSeconds,
        batch: LIFECYCLE_FUNCTION.batchSize,
      },
      {
        url: topology.audit.url,
        arn: topology.audit.arn,
        entry: USAGE_AUDIT.worker.entry,
        name: 'usage-audit-shard',
        timeout: USAGE_AUDIT.worker.timeoutSeconds,
        batch: USAGE_AUDIT.worker.batchSize,
      },
    ];
    for (const p of pipelines) {
      stoppers.push(
        startEventSource({
          sqs,
          queueUrl: p.url,
          queueArn: p.arn,
          handler: await loadHandler(p.entry),
          functionName: `${config.prefix}-${p.name.replaceAll('_', '-')}`,
          timeoutSeconds: p.timeout,
          batchSize: p.batch,
          waitTimeSeconds: o.pollWaitSeconds ?? 1,
          region: LOCAL_REGION,
          onError,
        }),
      );
    }
    stoppers.push(
      startScheduler({
        tasks: o.scheduledTasks ?? LOCAL_SCHEDULED_TASKS,
        config,
        intervalSeconds: config.local_tick_seconds,
        onError: (task, e) => onError(new Error(`scheduled task ${task}: ${(e as Error).message}`)),
      }),
    );

    const endpoints = endpointsOf(config, topology, dynamo.endpoint, sqsEmulator.endpoint, log);
    const endpointsFile = join(dataDir, 'endpoints.json');
    await writeFile(endpointsFile, `${JSON.stringify(endpoints, null, 2)}\n`);

    let stopped: Promise<void> | undefined;
    const stop = async () => {
      // Consumers first (each finishes its batch in flight), then the emulators they use.
      await Promise.all(stoppers.splice(0).map((s) => s.stop()));
      sqs.destroy();
      dynamodb.destroy();
      await stopEmulators();
      // endpoints.json describes a running plane; the data stays for the next start.
      await rm(endpointsFile, { force: true });
      if (scratch) await rm(scratch, { recursive: true, force: true });
    };
    return {
      endpoints,
      endpointsFile,
      config,
      topology,
      stop: () => (stopped ??= stop()),
    };
  } catch (e) {
    await Promise.all(stoppers.splice(0).map((s) => s.stop()));
    await stopEmulators();
    if (scratch) await rm(scratch, { recursive: true, force: true });
    throw e;
  }
}
