// A standard SQS queue with its DLQ, the function that consumes it and the alarms that watch both:
// the unit every command operation and the lifecycle-event listener are built from.

import { Duration } from 'aws-cdk-lib';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { OperationFunctionSettings } from '../../lib/topology.ts';
import { ConsumerAlarms } from './alarms.ts';
import { StratusFunction } from './stratus-function.ts';

/** Function and event-source settings; the shape lib/topology.ts uses for operations. */
export type ConsumerSettings = Omit<OperationFunctionSettings, 'operation'>;

/** How long a message that gave up stays available for inspection and redrive: SQS's maximum. */
export const DEAD_LETTER_RETENTION = Duration.days(14);

export interface QueueConsumerProps {
  readonly queueName: string;
  readonly deadLetterQueueName: string;
  readonly settings: ConsumerSettings;
  readonly serviceName: string;
  readonly description: string;
  readonly environment: Record<string, string>;
  readonly logRetention: RetentionDays;
  readonly alarmTopic: ITopic;
}

export class QueueConsumer extends Construct {
  readonly queue: Queue;
  readonly deadLetterQueue: Queue;
  readonly fn: StratusFunction;
  readonly alarms: ConsumerAlarms;

  constructor(scope: Construct, id: string, props: QueueConsumerProps) {
    super(scope, id);
    const { settings } = props;
    if (settings.visibilityTimeoutSeconds < settings.timeoutSeconds) {
      // Lambda refuses such an event source at deploy time; fail at synth instead.
      throw new Error(
        `${props.queueName}: visibility timeout ${settings.visibilityTimeoutSeconds}s is shorter ` +
          `than the function timeout ${settings.timeoutSeconds}s`,
      );
    }

    this.deadLetterQueue = new Queue(this, 'DeadLetterQueue', {
      queueName: props.deadLetterQueueName,
      retentionPeriod: DEAD_LETTER_RETENTION,
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    this.queue = new Queue(this, 'Queue', {
      queueName: props.queueName,
      // Lambda needs the message hidden for longer than a whole batch can take, retries included.
      visibilityTimeout: Duration.seconds(settings.visibilityTimeoutSeconds),
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: settings.maxReceiveCount },
    });

    this.fn = new StratusFunction(this, 'Function', {
      entry: settings.entry,
      serviceName: props.serviceName,
      description: props.description,
      timeout: Duration.seconds(settings.timeoutSeconds),
      memorySize: settings.memoryMb,
      logRetention: props.logRetention,
      environment: props.environment,
    });
    this.fn.addEventSource(
      new SqsEventSource(this.queue, {
        // One bad record must not return its whole batch to the queue.
        reportBatchItemFailures: true,
        batchSize: settings.batchSize,
        maxBatchingWindow: Duration.seconds(settings.maxBatchingWindowSeconds),
        maxConcurrency: settings.maxConcurrency,
      }),
    );

    this.alarms = new ConsumerAlarms(this, 'Alarms', {
      label: props.queueName,
      queue: this.queue,
      deadLetterQueue: this.deadLetterQueue,
      fn: this.fn,
      topic: props.alarmTopic,
    });
  }
}
