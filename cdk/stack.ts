// The whole Stratus control plane as one stack: shared state and notifications at the root,
// command pipelines in nested stacks, and the outputs producers and operators read.

import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import {
  IMPLEMENTED_OPERATIONS,
  type Operation,
  type OperationFunctionSettings,
  operationFunction,
  operationSlug,
} from '../lib/topology.ts';
import { alarmTopic } from './constructs/alarms.ts';
import { DataAccess } from './constructs/data-access.ts';
import { Ec2Access } from './constructs/ec2-access.ts';
import { LifecycleEvents } from './constructs/lifecycle-events.ts';
import { NotificationBus } from './constructs/notification-bus.ts';
import type { OperationPipeline } from './constructs/operation-pipeline.ts';
import { OperationsStack, operationChunks, pascalCase } from './constructs/operations-stack.ts';
import { quotaCodesOf } from '../lib/virt/ec2/quotas.ts';
import { EventSchemas } from './constructs/event-schemas.ts';
import { PeriodicTasks } from './constructs/periodic-tasks.ts';
import { UsageAudit } from './constructs/usage-audit.ts';
import { StateTables } from './constructs/state-tables.ts';
import {
  type DeploymentOptions,
  type DeploymentOptionsInput,
  eventBusName,
  functionEnvironment,
  readContextOptions,
  resolveDeploymentOptions,
} from './options.ts';

export interface StratusStackProps extends StackProps {
  /**
   * Deployment options by their contract names (CONTRACT §4). Each one overrides the CDK context
   * key of the same name; together they are validated like context.
   */
  readonly options?: DeploymentOptionsInput;
  /** Operations to deploy a pipeline for. Default: the implemented ones. */
  readonly operations?: readonly Operation[];
  /** Function and event-source settings per operation. Default: lib/topology.ts. */
  readonly functionSettings?: (operation: Operation) => OperationFunctionSettings;
}

export class StratusStack extends Stack {
  readonly options: DeploymentOptions;
  readonly tables: StateTables;
  readonly notifications: NotificationBus;
  readonly alarmTopic: ITopic;
  readonly lifecycle: LifecycleEvents;
  readonly periodicTasks: PeriodicTasks;
  readonly usageAudit: UsageAudit;
  readonly eventSchemas: EventSchemas;
  readonly operationStacks: readonly OperationsStack[];
  readonly pipelines: readonly OperationPipeline[];

  constructor(scope: Construct, id: string, props: StratusStackProps = {}) {
    super(scope, id, {
      description: 'Stratus: OpenStack Nova compute as a serverless control plane',
      ...props,
    });
    const options = resolveDeploymentOptions({
      ...readContextOptions(this.node),
      ...props.options,
    });
    this.options = options;
    const { prefix } = options;
    this.tables = new StateTables(this, 'Tables', {
      prefix,
      fakeHypervisor: options.driver === 'fake',
    });
    this.notifications = new NotificationBus(this, 'Notifications', {
      eventBusName: eventBusName(options),
      eventSource: options.event_source,
      archiveRetentionDays: options.archive_retention_days,
    });
    this.alarmTopic = alarmTopic(this, options.alarm_topic_arn);

    const dataAccess = new DataAccess({
      state: this.tables.state,
      idempotency: this.tables.idempotency,
      fakeHypervisor: this.tables.fakeHypervisor,
      bus: this.notifications.bus,
      replyQueueArns: options.reply_queue_arns,
      ...(options.driver === 'ec2'
        ? {
            ec2: new Ec2Access({
              deployment: prefix,
              dedicatedHosts: options.ec2.dedicated_hosts,
              quotaCodes: quotaCodesOf(options.ec2),
            }),
          }
        : {}),
    });
    const shared = {
      prefix,
      environment: functionEnvironment(options),
      logRetention: options.log_retention_days,
      alarmTopic: this.alarmTopic,
      dataAccess,
    };

    this.lifecycle = new LifecycleEvents(this, 'LifecycleEvents', {
      ...shared,
      bus: this.notifications.bus,
    });

    this.periodicTasks = new PeriodicTasks(this, 'PeriodicTasks', shared);
    this.usageAudit = new UsageAudit(this, 'UsageAudit', shared);
    this.eventSchemas = new EventSchemas(this, 'EventSchemas', {
      prefix,
      eventSource: options.event_source,
    });

    const settingsOf = props.functionSettings ?? operationFunction;
    this.operationStacks = operationChunks(props.operations ?? IMPLEMENTED_OPERATIONS).map(
      (chunk) =>
        new OperationsStack(this, chunk.id, {
          operations: chunk.operations,
          settingsOf,
          pipeline: { ...shared, producerPrincipals: options.producer_principals },
        }),
    );
    this.pipelines = this.operationStacks.flatMap((nested) => nested.pipelines);

    this.addOutputs();
  }

  private addOutputs(): void {
    const { prefix } = this.options;
    const output = (id: string, value: string, description: string, exportName?: string) =>
      new CfnOutput(this, id, { value, description, ...(exportName ? { exportName } : {}) });

    for (const pipeline of this.pipelines) {
      const name = pascalCase(pipeline.operation);
      const slug = operationSlug(pipeline.operation);
      output(
        `${name}QueueUrl`,
        pipeline.queue.queueUrl,
        `Command queue for ${pipeline.operation}`,
        `${prefix}-queue-${slug}`,
      );
      output(
        `${name}DeadLetterQueueUrl`,
        pipeline.deadLetterQueue.queueUrl,
        `Dead-letter queue for ${pipeline.operation}`,
        `${prefix}-dlq-${slug}`,
      );
    }
    output('LifecycleQueueUrl', this.lifecycle.queue.queueUrl, 'Lifecycle event queue');
    output('UsageAuditQueueUrl', this.usageAudit.shards.queue.queueUrl, 'Usage audit shard queue');
    output(
      'UsageAuditDeadLetterQueueUrl',
      this.usageAudit.shards.deadLetterQueue.queueUrl,
      'Usage audit shard DLQ',
    );
    output('SchemaRegistryName', this.eventSchemas.registry.attrRegistryName, 'Event schemas');
    output('LifecycleDeadLetterQueueUrl', this.lifecycle.deadLetterQueue.queueUrl, 'Lifecycle DLQ');
    output('StateTableName', this.tables.state.tableName, 'State table', `${prefix}-state-table`);
    output(
      'IdempotencyTableName',
      this.tables.idempotency.tableName,
      'Idempotency table',
      `${prefix}-idempotency-table`,
    );
    if (this.tables.fakeHypervisor) {
      output('FakeHypervisorTableName', this.tables.fakeHypervisor.tableName, 'Fake hypervisor');
    }
    const { bus } = this.notifications;
    output('EventBusName', bus.eventBusName, 'Notification bus name', `${prefix}-event-bus-name`);
    output('EventBusArn', bus.eventBusArn, 'Notification bus ARN', `${prefix}-event-bus-arn`);
    output('AlarmTopicArn', this.alarmTopic.topicArn, 'SNS topic receiving Stratus alarms');
  }
}
