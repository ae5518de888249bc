// Creates the deployment's queues and tables on local endpoints from lib/topology.ts, the same
// definitions the CDK stack reads: every implemented operation's queue and DLQ (with the
// stack's redrive policy), the lifecycle queue, and the state and idempotency tables.

import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateQueueCommand, GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Config } from '../config.ts';
import { createIdempotencyTable, createStateTable } from '../store/tables.ts';
import {
  IMPLEMENTED_OPERATIONS,
  LIFECYCLE_FUNCTION,
  type Operation,
  dlqName,
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
}

async function queueArn(sqs: SQSClient, url: string): Promise<string> {
  const out = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }),
  );
  const arn = out.Attributes?.QueueArn;
  if (!arn) throw new Error(`queue ${url} has no ARN`);
  return arn;
}

export async function createQueuePair(
  sqs: SQSClient,
  name: string,
  dlq: string,
  visibilityTimeoutSeconds: number,
  maxReceiveCount: number,
): Promise<QueuePair> {
  const dlqUrl = (
    await sqs.send(
      new CreateQueueCommand({
        QueueName: dlq,
        Attributes: { MessageRetentionPeriod: String(14 * 24 * 3600) },
      }),
    )
  ).QueueUrl;
  if (!dlqUrl) throw new Error(`could not create ${dlq}`);
  const dlqArn = await queueArn(sqs, dlqUrl);
  const url = (
    await sqs.send(
      new CreateQueueCommand({
        QueueName: name,
        Attributes: {
          VisibilityTimeout: String(visibilityTimeoutSeconds),
          RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount }),
        },
      }),
    )
  ).QueueUrl;
  if (!url) throw new Error(`could not create ${name}`);
  return { url, arn: await queueArn(sqs, url), dlqUrl, dlqArn };
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
  return { queues, lifecycle };
}
