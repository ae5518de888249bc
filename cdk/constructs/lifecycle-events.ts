// Platform lifecycle events complete the tasks long operations leave pending (ARCHITECTURE §2.5):
// EC2's state-change notifications from the default bus and the fake driver's own events from the
// Stratus bus both land on one queue that functions/lifecycle-events.ts consumes.

import { Duration } from 'aws-cdk-lib';
import { type IEventBus, Rule } from 'aws-cdk-lib/aws-events';
import { SqsQueue } from 'aws-cdk-lib/aws-events-targets';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import type { DataAccess } from './data-access.ts';
import { type ConsumerSettings, QueueConsumer } from './queue-consumer.ts';

/**
 * The `source` of the fake driver's lifecycle events on the Stratus bus. Kept here, not imported
 * from lib/compute/lifecycle-transport.ts, so synth does not load the AWS SDK; a test pins the two.
 */
export const FAKE_DRIVER_EVENT_SOURCE = 'stratus.virt';
export const EC2_STATE_CHANGE = {
  source: 'aws.ec2',
  detailType: 'EC2 Instance State-change Notification',
} as const;

const TIMEOUT_SECONDS = 60;
export const LIFECYCLE_SETTINGS: ConsumerSettings = {
  entry: 'functions/lifecycle-events.ts',
  timeoutSeconds: TIMEOUT_SECONDS,
  memoryMb: 512,
  batchSize: 10,
  maxBatchingWindowSeconds: 1,
  maxConcurrency: 20,
  visibilityTimeoutSeconds: TIMEOUT_SECONDS * 6,
  maxReceiveCount: 5,
};

// A lost lifecycle event leaves a task pending until the sweeper fails it, so EventBridge keeps
// retrying delivery for as long as it can (its maximums) before parking the event in the DLQ.
const DELIVERY_RETRY_ATTEMPTS = 185;
const DELIVERY_MAX_EVENT_AGE = Duration.hours(24);

export interface LifecycleEventsProps {
  readonly prefix: string;
  /** The Stratus bus, where the fake driver publishes. */
  readonly bus: IEventBus;
  readonly environment: Record<string, string>;
  readonly logRetention: RetentionDays;
  readonly alarmTopic: ITopic;
  readonly dataAccess: DataAccess;
}

export class LifecycleEvents extends QueueConsumer {
  readonly ec2StateChangeRule: Rule;
  readonly fakeDriverRule: Rule;

  constructor(scope: Construct, id: string, props: LifecycleEventsProps) {
    const name = `${props.prefix}-lifecycle-events`;
    super(scope, id, {
      queueName: name,
      deadLetterQueueName: `${name}-dlq`,
      settings: LIFECYCLE_SETTINGS,
      serviceName: name,
      description: `Stratus lifecycle events (consumes ${name})`,
      environment: props.environment,
      logRetention: props.logRetention,
      alarmTopic: props.alarmTopic,
    });
    props.dataAccess.grantTo(this.fn);

    // Events EventBridge cannot deliver go to the same DLQ as events the function cannot process:
    // either way a task is left pending, and one alarm and one redrive cover both.
    const target = () =>
      new SqsQueue(this.queue, {
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: DELIVERY_RETRY_ATTEMPTS,
        maxEventAge: DELIVERY_MAX_EVENT_AGE,
      });
    this.ec2StateChangeRule = new Rule(this, 'Ec2StateChange', {
      description: 'EC2 instance state changes (default bus) to the Stratus lifecycle queue',
      eventPattern: {
        source: [EC2_STATE_CHANGE.source],
        detailType: [EC2_STATE_CHANGE.detailType],
      },
      targets: [target()],
    });
    this.fakeDriverRule = new Rule(this, 'FakeDriverLifecycle', {
      description: 'Fake driver lifecycle events to the Stratus lifecycle queue',
      eventBus: props.bus,
      eventPattern: { source: [FAKE_DRIVER_EVENT_SOURCE] },
      targets: [target()],
    });
  }
}
