// Alarms for a queue-driven function, all sent to one SNS topic. Each one means "a person should
// look": a message gave up (DLQ), the backlog is stuck (age), the code crashed (errors) or Lambda
// refused to run it (throttles).

import { Duration } from 'aws-cdk-lib';
import {
  Alarm,
  ComparisonOperator,
  TreatMissingData,
  type IMetric,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { type ITopic, Topic } from 'aws-cdk-lib/aws-sns';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** The backlog age past which commands are considered stuck. */
export const OLDEST_MESSAGE_ALARM_AGE = Duration.minutes(15);

/** The stack's alarm topic: an existing one when an ARN is configured, else a new one. */
export function alarmTopic(scope: Construct, existingTopicArn: string | undefined): ITopic {
  if (existingTopicArn !== undefined) {
    return Topic.fromTopicArn(scope, 'AlarmTopic', existingTopicArn);
  }
  return new Topic(scope, 'AlarmTopic', { displayName: 'Stratus alarms', enforceSSL: true });
}

export interface ConsumerAlarmsProps {
  /** Human name of what is watched, e.g. the queue name; used in descriptions. */
  readonly label: string;
  readonly queue: IQueue;
  readonly deadLetterQueue: IQueue;
  readonly fn: IFunction;
  readonly topic: ITopic;
}

export class ConsumerAlarms extends Construct {
  readonly alarms: readonly Alarm[];

  constructor(scope: Construct, id: string, props: ConsumerAlarmsProps) {
    super(scope, id);
    const period = Duration.minutes(1);
    const action = new SnsAction(props.topic);
    const above = (alarmId: string, metric: IMetric, threshold: number, description: string) => {
      const alarm = new Alarm(this, alarmId, {
        metric,
        threshold,
        evaluationPeriods: 1,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        // No data points means no messages or no invocations: healthy, not unknown.
        treatMissingData: TreatMissingData.NOT_BREACHING,
        alarmDescription: `${props.label}: ${description}`,
      });
      alarm.addAlarmAction(action);
      return alarm;
    };
    this.alarms = [
      above(
        'DeadLetters',
        props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
          period,
          statistic: 'Maximum',
        }),
        0,
        'messages in the dead-letter queue; inspect, fix, then redrive',
      ),
      above(
        'OldestMessageAge',
        props.queue.metricApproximateAgeOfOldestMessage({ period, statistic: 'Maximum' }),
        OLDEST_MESSAGE_ALARM_AGE.toSeconds(),
        `oldest message waiting more than ${OLDEST_MESSAGE_ALARM_AGE.toMinutes()} minutes`,
      ),
      above(
        'Errors',
        props.fn.metricErrors({ period, statistic: 'Sum' }),
        0,
        'function invocations failed (crash or timeout returns the whole batch)',
      ),
      above(
        'Throttles',
        props.fn.metricThrottles({ period, statistic: 'Sum' }),
        0,
        'function invocations throttled (account or regional concurrency exhausted)',
      ),
    ];
  }
}
