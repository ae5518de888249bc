// Nova's instance usage audit, fanned out (docs/usage-audit.md): a scheduled function computes
// the last completed period and sends one message per shard (a node, or a key segment of the
// node-less instances) to the shard queue; the shard worker audits one shard per invocation
// under its task_log lease. A message whose run fails is redelivered after the visibility
// timeout and, after maxReceiveCount, waits in the DLQ (alarmed) for a redrive.

import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { AUDIT_QUEUE_URL_ENV } from '../../lib/audit/compose.ts';
import { USAGE_AUDIT, auditQueueName } from '../../lib/topology.ts';
import type { DataAccess } from './data-access.ts';
import { QueueConsumer } from './queue-consumer.ts';
import { ScheduledFunction } from './scheduled-function.ts';

export function usageAuditName(prefix: string): string {
  return `${prefix}-usage-audit`;
}

export interface UsageAuditProps {
  readonly prefix: string;
  readonly environment: Record<string, string>;
  readonly logRetention: RetentionDays;
  readonly alarmTopic: ITopic;
  readonly dataAccess: DataAccess;
}

export class UsageAudit extends Construct {
  readonly fanOut: ScheduledFunction;
  readonly shards: QueueConsumer;

  constructor(scope: Construct, id: string, props: UsageAuditProps) {
    super(scope, id);
    const shardQueue = auditQueueName(props.prefix);
    this.shards = new QueueConsumer(this, 'Shards', {
      queueName: shardQueue,
      deadLetterQueueName: `${shardQueue}-dlq`,
      settings: USAGE_AUDIT.worker,
      serviceName: `${usageAuditName(props.prefix)}-shard`,
      description: `Stratus usage audit: one shard per message (consumes ${shardQueue})`,
      environment: props.environment,
      logRetention: props.logRetention,
      alarmTopic: props.alarmTopic,
    });
    // The worker reads instances (by node, through the indexes), writes its task_log entry and
    // publishes exists and the shard's manifest; it runs no driver and answers no reply_to.
    props.dataAccess.grantAuditTo(this.shards.fn, {
      readsInstances: true,
      publishes: true,
      listsNodes: false,
    });

    this.fanOut = new ScheduledFunction(this, 'FanOut', {
      ...USAGE_AUDIT.fanOut,
      name: usageAuditName(props.prefix),
      description: 'Stratus usage audit: sends each shard of the last completed period its task',
      environment: { ...props.environment, [AUDIT_QUEUE_URL_ENV]: this.shards.queue.queueUrl },
      logRetention: props.logRetention,
      alarmTopic: props.alarmTopic,
    });
    // The fan-out reads and writes the task_log (state table items), lists the driver's nodes
    // and sends to the shard queue: nothing else (no bus, no reply_to queues).
    props.dataAccess.grantAuditTo(this.fanOut.fn, {
      readsInstances: false,
      publishes: false,
      listsNodes: true,
    });
    this.fanOut.fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['sqs:SendMessage'],
        resources: [this.shards.queue.queueArn],
      }),
    );
  }
}
