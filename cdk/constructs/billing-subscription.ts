// The billing feed, subscribed: a rule on the Stratus notification bus that routes
// `compute.instance.exists` and the per-shard `compute.instance.exists.audit` manifests to a
// consumer's SQS queue (docs/billing.md). EventBridge retries a failed delivery for 24 hours
// and parks what it could not deliver in the DLQ, so the feed has no silent gap; the consumer
// deduplicates on `detail.message_id` and closes a period from the manifests.

import { Duration, Validations } from 'aws-cdk-lib';
import { type IEventBus, Rule } from 'aws-cdk-lib/aws-events';
import { SqsQueue } from 'aws-cdk-lib/aws-events-targets';
import { type IQueue, Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DEAD_LETTER_RETENTION } from './queue-consumer.ts';

export const BILLING_EVENT_TYPES = [
  'compute.instance.exists',
  'compute.instance.exists.audit',
] as const;

export interface BillingSubscriptionProps {
  /** The Stratus notification bus (StratusStack.notifications.bus, or EventBus.fromEventBusArn). */
  readonly bus: IEventBus;
  /** The deployment's `event_source` (default `stratus.compute`). */
  readonly eventSource?: string;
  /** The consumer's queue; one is created (encrypted, TLS only) when absent. */
  readonly queue?: IQueue;
  /**
   * Also route the lifecycle events a StackTach-style verifier checks exists against
   * (create.end, delete.end, resize.*, rebuild.*). Off by default.
   */
  readonly includeLifecycle?: boolean;
}

export class BillingSubscription extends Construct {
  readonly rule: Rule;
  readonly queue: IQueue;
  readonly deadLetterQueue: Queue;

  constructor(scope: Construct, id: string, props: BillingSubscriptionProps) {
    super(scope, id);
    this.deadLetterQueue = new Queue(this, 'DeadLetterQueue', {
      retentionPeriod: DEAD_LETTER_RETENTION,
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: "This is the billing feed's dead-letter queue; a DLQ needs no DLQ of its own.",
    });
    this.queue =
      props.queue ??
      new Queue(this, 'Queue', {
        retentionPeriod: DEAD_LETTER_RETENTION,
        encryption: QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: 10 },
      });
    const lifecycle = props.includeLifecycle
      ? [
          'compute.instance.create.end',
          'compute.instance.delete.end',
          'compute.instance.rebuild.end',
          'compute.instance.finish_resize.end',
          'compute.instance.resize.revert.end',
        ]
      : [];
    this.rule = new Rule(this, 'Rule', {
      description: 'Stratus billing feed: exists and their per-shard manifests',
      eventBus: props.bus,
      eventPattern: {
        source: [props.eventSource ?? 'stratus.compute'],
        detailType: [...BILLING_EVENT_TYPES, ...lifecycle],
      },
      targets: [
        new SqsQueue(this.queue, {
          deadLetterQueue: this.deadLetterQueue,
          retryAttempts: 185,
          maxEventAge: Duration.hours(24),
        }),
      ],
    });
  }
}
