// One command operation end to end (CONTRACT §1): its queue and DLQ, the function that runs it,
// the alarms, who may send to it, and where producers find its URL.

import { ArnPrincipal } from 'aws-cdk-lib/aws-iam';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { StringParameter } from 'aws-cdk-lib/aws-ssm';
import type { Construct } from 'constructs';
import {
  type Operation,
  type OperationFunctionSettings,
  dlqName,
  queueName,
} from '../../lib/topology.ts';
import type { DataAccess } from './data-access.ts';
import { QueueConsumer } from './queue-consumer.ts';

export interface OperationPipelineProps {
  readonly operation: Operation;
  readonly prefix: string;
  readonly settings: OperationFunctionSettings;
  readonly environment: Record<string, string>;
  readonly logRetention: RetentionDays;
  readonly alarmTopic: ITopic;
  readonly dataAccess: DataAccess;
  /**
   * IAM principal ARNs allowed to send commands. Admin producers are not special here: the
   * function matches them by the message's SenderId (option `admin_producers`).
   */
  readonly producerPrincipals: readonly string[];
}

/** SSM parameter holding an operation's queue URL: `/<prefix>/queues/<operation>`. */
export function queueUrlParameterName(prefix: string, operation: Operation): string {
  return `/${prefix}/queues/${operation}`;
}

export class OperationPipeline extends QueueConsumer {
  readonly operation: Operation;
  readonly queueUrlParameter: StringParameter;

  constructor(scope: Construct, id: string, props: OperationPipelineProps) {
    const name = queueName(props.prefix, props.operation);
    super(scope, id, {
      queueName: name,
      deadLetterQueueName: dlqName(props.prefix, props.operation),
      settings: props.settings,
      serviceName: name,
      description: `Stratus ${props.operation} (consumes ${name})`,
      environment: props.environment,
      logRetention: props.logRetention,
      alarmTopic: props.alarmTopic,
    });
    this.operation = props.operation;

    props.dataAccess.grantTo(this.fn);
    for (const principal of props.producerPrincipals) {
      this.queue.grantSendMessages(new ArnPrincipal(principal));
    }
    this.queueUrlParameter = new StringParameter(this, 'QueueUrlParameter', {
      parameterName: queueUrlParameterName(props.prefix, props.operation),
      stringValue: this.queue.queueUrl,
      description: `SQS queue URL for Stratus ${props.operation} commands`,
    });
  }
}
