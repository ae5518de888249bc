// A whole Stratus deployment on the emulators, for end-to-end tests: tables and queues from the
// topology, the real function handlers invoked through the local SQS event source, and (with
// moto) the notifications bus with a rule whose SQS target the test reads, exactly the path a
// billing subscriber uses.

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  CreateEventBusCommand,
  EventBridgeClient,
  PutRuleCommand,
  PutTargetsCommand,
} from '@aws-sdk/client-eventbridge';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { SQSBatchResponse, SQSEvent, Context } from 'aws-lambda';
import { vi } from 'vitest';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Config, envName, loadConfig } from '../../lib/config.ts';
import { type SqsHandler, fakeLambdaContext, pollOnce } from '../../lib/local/event-source.ts';
import { type LocalTopology, provisionLocal } from '../../lib/local/provision.ts';
import { DynamoDbStateStore } from '../../lib/store/dynamodb-state-store.ts';
import {
  IMPLEMENTED_OPERATIONS,
  type Operation,
  USAGE_AUDIT,
  operationFunction,
  operationSlug,
} from '../../lib/topology.ts';
import { AUDIT_QUEUE_URL_ENV } from '../../lib/audit/compose.ts';
import { awsTestClientConfig, emulatorEndpoints, uniquePrefix } from './emulators.ts';

export interface TestStackOptions {
  label: string;
  /** STRATUS_* options (by option name) for this deployment. */
  options?: Record<string, string>;
  /** Route notifications through moto's EventBridge to an SQS queue the test reads. */
  eventbridge?: boolean;
  visibilityTimeoutSeconds?: number;
  maxReceiveCount?: number;
  /** Operations to deploy besides IMPLEMENTED_OPERATIONS (an operation whose code is landing). */
  operations?: readonly Operation[];
}

export interface TestStack {
  config: Config;
  topology: LocalTopology;
  sqs: SQSClient;
  store: DynamoDbStateStore;
  doc: DynamoDBDocumentClient;
  /** The queue on moto that receives every notification (when eventbridge is on). */
  eventsQueueUrl: string | null;
  motoSqs: SQSClient | null;
  handlers: Partial<Record<Operation | 'lifecycle' | 'audit', SqsHandler>>;
  send(operation: Operation, body: unknown): Promise<string>;
  /** Runs the operation's function until its queue has nothing visible left. */
  drain(operation: Operation | 'lifecycle' | 'audit', maxRounds?: number): Promise<number>;
  /** Invokes the usage audit's scheduled fan-out as EventBridge Scheduler would at `at`. */
  auditFanOut(at: Date): Promise<unknown>;
  /** Receives every notification that reached the events queue so far. */
  receiveEvents(): Promise<ReceivedEvent[]>;
  /** A reply queue on the SQS emulator; returns its URL. */
  createReplyQueue(): Promise<string>;
  receiveAll(queueUrl: string, client?: SQSClient): Promise<Message[]>;
}

export interface ReceivedEvent {
  source: string;
  'detail-type': string;
  resources: string[];
  detail: {
    message_id: string;
    event_type: string;
    publisher_id: string;
    priority: string;
    timestamp: string;
    request_id: string;
    command_id: string;
    payload: Record<string, unknown>;
  };
}

async function createMotoEventsRoute(prefix: string, config: Config, moto: string) {
  const eventbridge = new EventBridgeClient(awsTestClientConfig(moto));
  const motoSqs = new SQSClient({ ...awsTestClientConfig(moto), useQueueUrlAsEndpoint: false });
  await eventbridge.send(new CreateEventBusCommand({ Name: config.event_bus }));
  const queueUrl = (await motoSqs.send(new CreateQueueCommand({ QueueName: `${prefix}-events` })))
    .QueueUrl!;
  const arn = (
    await motoSqs.send(
      new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }),
    )
  ).Attributes!.QueueArn!;
  await eventbridge.send(
    new PutRuleCommand({
      Name: `${prefix}-all-notifications`,
      EventBusName: config.event_bus,
      EventPattern: JSON.stringify({ source: [config.event_source] }),
    }),
  );
  await eventbridge.send(
    new PutTargetsCommand({
      Rule: `${prefix}-all-notifications`,
      EventBusName: config.event_bus,
      Targets: [{ Id: 'events-queue', Arn: arn }],
    }),
  );
  return { queueUrl, motoSqs };
}

export async function startTestStack(o: TestStackOptions): Promise<TestStack> {
  const endpoints = emulatorEndpoints();
  const prefix = uniquePrefix(o.label);
  const env: Record<string, string> = {
    [envName('prefix')]: prefix,
    ...Object.fromEntries(Object.entries(o.options ?? {}).map(([k, v]) => [envName(k), v])),
    AWS_ENDPOINT_URL_DYNAMODB: endpoints.dynamodb,
    AWS_ENDPOINT_URL_SQS: endpoints.sqs,
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: 'us-east-1',
  };
  if (o.eventbridge && endpoints.moto) env.AWS_ENDPOINT_URL_EVENTBRIDGE = endpoints.moto;
  else delete process.env.AWS_ENDPOINT_URL_EVENTBRIDGE;
  const notificationLog = join(tmpdir(), `${prefix}-notifications.jsonl`);
  env.STRATUS_NOTIFICATIONS_LOG = notificationLog;
  Object.assign(process.env, env);
  const config = loadConfig();

  const sqs = new SQSClient({
    ...awsTestClientConfig(endpoints.sqs),
    useQueueUrlAsEndpoint: false,
  });
  const dynamodb = new DynamoDBClient(awsTestClientConfig(endpoints.dynamodb));
  const doc = DynamoDBDocumentClient.from(dynamodb, {
    marshallOptions: { removeUndefinedValues: true },
  });
  const deployed = [...new Set([...IMPLEMENTED_OPERATIONS, ...(o.operations ?? [])])];
  const topology = await provisionLocal({
    config,
    sqs,
    dynamodb,
    operations: deployed,
    visibilityTimeoutSeconds: o.visibilityTimeoutSeconds ?? 2,
    maxReceiveCount: o.maxReceiveCount ?? 5,
  });
  process.env.STRATUS_LIFECYCLE_QUEUE_URL = topology.lifecycle.url;
  process.env[AUDIT_QUEUE_URL_ENV] = topology.audit.url;

  let eventsQueueUrl: string | null = null;
  let motoSqs: SQSClient | null = null;
  if (o.eventbridge && endpoints.moto) {
    ({ queueUrl: eventsQueueUrl, motoSqs } = await createMotoEventsRoute(
      prefix,
      config,
      endpoints.moto,
    ));
  }

  // Import the real handlers now that the environment describes this deployment (fresh
  // modules: a handler reads its configuration once, at cold start).
  vi.resetModules();
  const handlers: TestStack['handlers'] = {
    lifecycle: (await import('../../functions/lifecycle-events.ts'))
      .handler as unknown as SqsHandler,
    audit: (await import('../../functions/usage-audit-shard.ts')).handler as unknown as SqsHandler,
  };
  const fanOut = (await import('../../functions/usage-audit.ts')).handler as unknown as (
    event: { scheduled_time: string },
    context: Context,
  ) => Promise<unknown>;
  for (const op of deployed) {
    const mod = (await import(`../../functions/${operationSlug(op)}.ts`)) as { handler: unknown };
    handlers[op] = mod.handler as SqsHandler;
  }

  async function receiveAll(queueUrl: string, client: SQSClient = sqs): Promise<Message[]> {
    const all: Message[] = [];
    for (;;) {
      const out = await client.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 0,
          VisibilityTimeout: 600,
        }),
      );
      if (!out.Messages?.length) return all;
      all.push(...out.Messages);
    }
  }

  let logCursor = 0;
  return {
    config,
    topology,
    sqs,
    doc,
    store: new DynamoDbStateStore(doc, config.tables.state),
    eventsQueueUrl,
    motoSqs,
    handlers,
    async send(operation, body) {
      const url = topology.queues[operation]?.url;
      if (!url) throw new Error(`no queue for ${operation}`);
      const out = await sqs.send(
        new SendMessageCommand({
          QueueUrl: url,
          MessageBody: typeof body === 'string' ? body : JSON.stringify(body),
        }),
      );
      return out.MessageId!;
    },
    async drain(operation, maxRounds = 50) {
      const pair =
        operation === 'lifecycle'
          ? topology.lifecycle
          : operation === 'audit'
            ? topology.audit
            : topology.queues[operation];
      const handler = handlers[operation];
      if (!pair || !handler) throw new Error(`no function for ${operation}`);
      const settings =
        operation === 'lifecycle'
          ? { timeoutSeconds: 30, batchSize: 10 }
          : operation === 'audit'
            ? USAGE_AUDIT.worker
            : operationFunction(operation);
      let total = 0;
      for (let round = 0; round < maxRounds; round++) {
        const n = await pollOnce({
          sqs,
          queueUrl: pair.url,
          queueArn: pair.arn,
          handler,
          functionName: `${config.prefix}-${operation}`,
          timeoutSeconds: settings.timeoutSeconds,
          batchSize: settings.batchSize,
          waitTimeSeconds: 0,
        });
        if (n === 0) return total;
        total += n;
      }
      return total;
    },
    auditFanOut: (at) =>
      fanOut(
        { scheduled_time: at.toISOString() },
        fakeLambdaContext(`${config.prefix}-usage-audit`, USAGE_AUDIT.fanOut.timeoutSeconds),
      ),
    async receiveEvents() {
      if (!eventsQueueUrl || !motoSqs) {
        // No EventBridge here: the local notification log has every event, once.
        const text = await readFile(notificationLog, 'utf8').catch(() => '');
        const all = text
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as ReceivedEvent);
        const fresh = all.slice(logCursor);
        logCursor = all.length;
        return fresh;
      }
      const messages = await receiveAll(eventsQueueUrl, motoSqs);
      return messages.map((m) => JSON.parse(m.Body!) as ReceivedEvent);
    },
    async createReplyQueue() {
      const out = await sqs.send(
        new CreateQueueCommand({
          QueueName: `${prefix}-replies-${Math.random().toString(36).slice(2, 8)}`,
        }),
      );
      return out.QueueUrl!;
    },
    receiveAll,
  };
}

/** Invokes a handler directly with a hand-built event (for crash and concurrency tests). */
export type DirectInvoke = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>;

export function buildCommand(
  overrides: Record<string, unknown> = {},
): Record<string, unknown> & { command_id: string } {
  return {
    version: 1,
    command_id: `cmd-${Math.random().toString(36).slice(2, 12)}`,
    operation: 'build_and_run_instance',
    context: { user_id: 'user-1', project_id: 'project-1' },
    args: { flavor: 'm1.small', image_ref: 'ami-12345678' },
    ...overrides,
  };
}
