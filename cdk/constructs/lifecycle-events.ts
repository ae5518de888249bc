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
import {
  LIFECYCLE_EVENT_SOURCE,
  LIFECYCLE_FUNCTION,
  lifecycleQueueName,
} from '../../lib/topology.ts';

export const FAKE_DRIVER_EVENT_SOURCE = LIFECYCLE_EVENT_SOURCE;
export const EC2_STATE_CHANGE = {
  source: 'aws.ec2',
  detailType: 'EC2 Instance State-change Notification',
} as const;

export const LIFECYCLE_SETTINGS: ConsumerSettings = LIFECYCLE_FUNCTION;

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
    const name = lifecycleQueueName(props.prefix);
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
