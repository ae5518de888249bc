// Creates the deployment's queues and tables on local endpoints from lib/topology.ts, the same
// definitions the CDK stack reads: every implemented operation's queue and DLQ (with the
// stack's redrive policy), the lifecycle queue, the usage audit's shard queue, the state and idempotency tables and, when an
// EventBridge endpoint is given, the notifications bus. Everything is idempotent: a restart on
// a persisted data directory finds its queues (and the messages in them) where it left them.

import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateEventBusCommand, type EventBridgeClient } from '@aws-sdk/client-eventbridge';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  type SQSClient,
  SetQueueAttributesCommand,
} from '@aws-sdk/client-sqs';
import type { Config } from '../config.ts';
import { createIdempotencyTable, createStateTable } from '../store/tables.ts';
import {
  IMPLEMENTED_OPERATIONS,
  LIFECYCLE_FUNCTION,
  type Operation,
  dlqName,
  USAGE_AUDIT,
  auditQueueName,
  lifecycleQueueName,
  operationFunction,
  queueName,
} from '../topology.ts';
import { createFakeHypervisorTable } from '../virt/fake/dynamodb-store.ts';

export interface QueuePair {
  url: string;
  arn: string;
  dlqUrl: string;
  dlqArn: string;
}

export interface LocalTopology {
  queues: Partial<Record<Operation, QueuePair>>;
  lifecycle: QueuePair;
  /** The usage audit's shard queue. */
  audit: QueuePair;
}

export interface ProvisionOptions {
  config: Config;
  sqs: SQSClient;
  dynamodb: DynamoDBClient;
  operations?: readonly Operation[];
  /** Overrides the deployed visibility timeout (6 × function timeout) for faster local retries. */
  visibilityTimeoutSeconds?: number;
  /** Overrides maxReceiveCount (tests of the DLQ path). */
  maxReceiveCount?: number;
  /** Creates the notifications bus there (an EventBridge-compatible endpoint) unless it exists. */
  eventbridge?: EventBridgeClient;
}

async function queueArn(sqs: SQSClient, url: string): Promise<string> {
  const out = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }),
  );
  const arn = out.Attributes?.QueueArn;
  if (!arn) throw new Error(`queue ${url} has no ARN`);
  return arn;
}

/**
 * Creates the queue, or brings an existing one (a restart on persisted data, perhaps with other
 * options) to the wanted attributes: SQS refuses CreateQueue with different attributes.
 */
async function ensureQueue(
  sqs: SQSClient,
  name: string,
  attributes: Record<string, string>,
): Promise<string> {
  try {
    const url = (
      await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }))
    ).QueueUrl;
    if (!url) throw new Error(`could not create queue ${name}`);
    return url;
  } catch (e) {
    const code = (e as Error).name;
    if (code !== 'QueueNameExists' && code !== 'QueueAlreadyExists') throw e;
    const url = (await sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl;
    if (!url) throw new Error(`queue ${name} exists but has no URL`, { cause: e });
    await sqs.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: attributes }));
    return url;
  }
}

export async function createQueuePair(
  sqs: SQSClient,
  name: string,
  dlq: string,
  visibilityTimeoutSeconds: number,
  maxReceiveCount: number,
): Promise<QueuePair> {
  const dlqUrl = await ensureQueue(sqs, dlq, { MessageRetentionPeriod: String(14 * 24 * 3600) });
  const dlqArn = await queueArn(sqs, dlqUrl);
  const url = await ensureQueue(sqs, name, {
    VisibilityTimeout: String(visibilityTimeoutSeconds),
    RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount }),
  });
  return { url, arn: await queueArn(sqs, url), dlqUrl, dlqArn };
}

/** The stack creates the bus in AWS; locally it is created on the configured endpoint. */
export async function ensureEventBus(eventbridge: EventBridgeClient, name: string): Promise<void> {
  try {
    await eventbridge.send(new CreateEventBusCommand({ Name: name }));
  } catch (e) {
    if ((e as Error).name !== 'ResourceAlreadyExistsException') throw e;
  }
}

export async function provisionLocal(o: ProvisionOptions): Promise<LocalTopology> {
  const { config } = o;
  await Promise.all([
    createStateTable(o.dynamodb, config.tables.state),
    createIdempotencyTable(o.dynamodb, config.tables.idempotency),
    createFakeHypervisorTable(o.dynamodb, config.tables.fakeHypervisor),
  ]);
  const queues: LocalTopology['queues'] = {};
  for (const op of o.operations ?? IMPLEMENTED_OPERATIONS) {
    const s = operationFunction(op);
    queues[op] = await createQueuePair(
      o.sqs,
      queueName(config.prefix, op),
      dlqName(config.prefix, op),
      o.visibilityTimeoutSeconds ?? s.visibilityTimeoutSeconds,
      o.maxReceiveCount ?? s.maxReceiveCount,
    );
  }
  const lifecycle = await createQueuePair(
    o.sqs,
    lifecycleQueueName(config.prefix),
    `${lifecycleQueueName(config.prefix)}-dlq`,
    o.visibilityTimeoutSeconds ?? LIFECYCLE_FUNCTION.visibilityTimeoutSeconds,
    o.maxReceiveCount ?? LIFECYCLE_FUNCTION.maxReceiveCount,
  );
  const audit = await createQueuePair(
    o.sqs,
    auditQueueName(config.prefix),
    `${auditQueueName(config.prefix)}-dlq`,
    o.visibilityTimeoutSeconds ?? USAGE_AUDIT.worker.visibilityTimeoutSeconds,
    o.maxReceiveCount ?? USAGE_AUDIT.worker.maxReceiveCount,
  );
  if (o.eventbridge) await ensureEventBus(o.eventbridge, config.event_bus);
  return { queues, lifecycle, audit };
}
