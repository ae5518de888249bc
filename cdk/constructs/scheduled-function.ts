// A function EventBridge Scheduler invokes at a fixed rate with the scheduled time as its input
// (so a retried invocation decides as the first did), with the schedule's DLQ and the alarms
// that watch both: Nova's periodic tasks and the usage audit's fan-out are built from it. The
// schedule retries an invocation Lambda refused and parks what it could not deliver in the DLQ;
// a run that fails is not retried by Lambda (the next run does the same work, idempotently),
// it raises the Errors alarm instead.

import { Duration, Validations } from 'aws-cdk-lib';
import {
  Alarm,
  ComparisonOperator,
  type IMetric,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { type IRole, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import {
  ContextAttribute,
  Schedule,
  ScheduleExpression,
  ScheduleTargetInput,
} from 'aws-cdk-lib/aws-scheduler';
import { LambdaInvoke } from 'aws-cdk-lib/aws-scheduler-targets';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DEAD_LETTER_RETENTION } from './queue-consumer.ts';
import { StratusFunction } from './stratus-function.ts';

/** Scheduler retries an invocation Lambda refused (throttled, unavailable) this many times. */
export const SCHEDULE_RETRY_ATTEMPTS = 3;
/** A run older than this is not worth starting: a newer one is already due. */
export const SCHEDULE_MAX_EVENT_AGE = Duration.minutes(5);

/**
 * LambdaInvoke, granting the schedule's role InvokeFunction on the function itself only (the
 * stock target also grants every version and alias, `<arn>:*`, which this schedule never calls).
 */
class InvokeUnqualified extends LambdaInvoke {
  private readonly invoked: IFunction;

  constructor(fn: IFunction, props: ConstructorParameters<typeof LambdaInvoke>[1]) {
    super(fn, props);
    this.invoked = fn;
  }

  protected override addTargetActionToRole(role: IRole): void {
    role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['lambda:InvokeFunction'],
        resources: [this.invoked.functionArn],
      }),
    );
  }
}

export interface ScheduledFunctionProps {
  /** The function's, schedule's and DLQ's name (`<name>-dlq`). */
  readonly name: string;
  readonly entry: string;
  readonly description: string;
  readonly timeoutSeconds: number;
  readonly memoryMb: number;
  readonly scheduleMinutes: number;
  readonly environment: Record<string, string>;
  readonly logRetention: RetentionDays;
  readonly alarmTopic: ITopic;
}

export class ScheduledFunction extends Construct {
  readonly fn: StratusFunction;
  readonly schedule: Schedule;
  readonly deadLetterQueue: Queue;
  readonly alarms: readonly Alarm[];

  constructor(scope: Construct, id: string, props: ScheduledFunctionProps) {
    super(scope, id);
    const { name } = props;

    this.fn = new StratusFunction(this, 'Function', {
      entry: props.entry,
      serviceName: name,
      description: props.description,
      timeout: Duration.seconds(props.timeoutSeconds),
      memorySize: props.memoryMb,
      logRetention: props.logRetention,
      environment: props.environment,
    });
    this.fn.configureAsyncInvoke({ retryAttempts: 0, maxEventAge: SCHEDULE_MAX_EVENT_AGE });

    this.deadLetterQueue = new Queue(this, 'DeadLetterQueue', {
      queueName: `${name}-dlq`,
      retentionPeriod: DEAD_LETTER_RETENTION,
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: `This queue is the dead-letter queue of the ${name} schedule; a DLQ needs no DLQ of its own.`,
    });

    this.schedule = new Schedule(this, 'Schedule', {
      scheduleName: name,
      description: `Runs ${name}`,
      schedule: ScheduleExpression.rate(Duration.minutes(props.scheduleMinutes)),
      target: new InvokeUnqualified(this.fn, {
        input: ScheduleTargetInput.fromObject({ scheduled_time: ContextAttribute.scheduledTime }),
        retryAttempts: SCHEDULE_RETRY_ATTEMPTS,
        maxEventAge: SCHEDULE_MAX_EVENT_AGE,
        deadLetterQueue: this.deadLetterQueue,
      }),
    });

    const period = Duration.minutes(1);
    const action = new SnsAction(props.alarmTopic);
    const above = (alarmId: string, metric: IMetric, description: string) => {
      const alarm = new Alarm(this, alarmId, {
        metric,
        threshold: 0,
        evaluationPeriods: 1,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
        alarmDescription: `${name}: ${description}`,
      });
      alarm.addAlarmAction(action);
      return alarm;
    };
    this.alarms = [
      above(
        'Errors',
        this.fn.metricErrors({ period, statistic: 'Sum' }),
        'a run failed (see the function log for why)',
      ),
      above(
        'DeadLetters',
        this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
          period,
          statistic: 'Maximum',
        }),
        'the schedule could not invoke the function; runs were skipped',
      ),
      above(
        'Throttles',
        this.fn.metricThrottles({ period, statistic: 'Sum' }),
        'runs throttled (account or regional concurrency exhausted)',
      ),
    ];
  }
}
