// The usage audit (docs/usage-audit.md): the scheduled fan-out (rate, input, retry policy, DLQ),
// the shard queue and its worker (visibility, redrive, batch size), their least-privilege roles
// and their alarms.

import { describe, expect, it } from 'vitest';
import { CfnResource, Stack } from 'aws-cdk-lib';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { AUDIT_QUEUE_URL_ENV } from '../../lib/audit/compose.ts';
import { TABLES, USAGE_AUDIT, auditQueueName } from '../../lib/topology.ts';
import { ITEM_READ_ACTIONS, ITEM_WRITE_ACTIONS } from '../../cdk/constructs/data-access.ts';
import {
  SCHEDULE_MAX_EVENT_AGE,
  SCHEDULE_RETRY_ATTEMPTS,
} from '../../cdk/constructs/scheduled-function.ts';
import { resourcesOfType, synth } from './support.ts';

const defaults = synth();
const audit = defaults.stack.usageAudit;
const { fanOut, shards } = audit;

function logicalId(construct: IConstruct): string {
  const stack = Stack.of(construct);
  const resource = CfnResource.isCfnResource(construct)
    ? construct
    : (construct.node.defaultChild as CfnResource);
  return stack.resolve(stack.getLogicalId(resource)) as string;
}

type Statement = { Action: string | string[]; Resource: unknown; Effect: string };
const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);
const arnOf = (construct: IConstruct) => ({ 'Fn::GetAtt': [logicalId(construct), 'Arn'] });

/** Statements of the policies attached to a role (by its logical id) in a template. */
function statementsOfRole(template: Template, roleId: string): Statement[] {
  return resourcesOfType([template], 'AWS::IAM::Policy')
    .filter(([, p]) => JSON.stringify(p.Properties?.Roles) === JSON.stringify([{ Ref: roleId }]))
    .flatMap(([, p]) => (p.Properties?.PolicyDocument as { Statement: Statement[] }).Statement);
}

type Resource = { Type: string; Properties: Record<string, unknown> };
const resourceOf = (construct: IConstruct) =>
  defaults.root.toJSON().Resources[logicalId(construct)] as Resource;

const alarmTopicRef = { Ref: logicalId(defaults.stack.alarmTopic as unknown as IConstruct) };

describe('usage audit fan-out', () => {
  const fnId = logicalId(fanOut.fn);

  it('is invoked every 5 minutes by EventBridge Scheduler with the scheduled time, retries and a DLQ', () => {
    expect(USAGE_AUDIT.fanOut.scheduleMinutes).toBe(5);
    defaults.root.hasResourceProperties('AWS::Scheduler::Schedule', {
      Name: 'stratus-usage-audit',
      ScheduleExpression: 'rate(5 minutes)',
      State: 'ENABLED',
      FlexibleTimeWindow: { Mode: 'OFF' },
      Target: {
        Arn: { 'Fn::GetAtt': [fnId, 'Arn'] },
        Input: JSON.stringify({ scheduled_time: '<aws.scheduler.scheduled-time>' }),
        RetryPolicy: {
          MaximumRetryAttempts: SCHEDULE_RETRY_ATTEMPTS,
          MaximumEventAgeInSeconds: SCHEDULE_MAX_EVENT_AGE.toSeconds(),
        },
        DeadLetterConfig: { Arn: arnOf(fanOut.deadLetterQueue) },
      },
    });
    defaults.root.hasResourceProperties('AWS::SQS::Queue', {
      QueueName: 'stratus-usage-audit-dlq',
      MessageRetentionPeriod: 14 * 24 * 3600,
      SqsManagedSseEnabled: true,
    });
    // Lambda does not retry a failed run: the next scheduled run does the same work.
    defaults.root.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: fnId },
      MaximumRetryAttempts: 0,
    });
  });

  it('runs with USAGE_AUDIT.fanOut settings and the shard queue URL in STRATUS_AUDIT_QUEUE_URL', () => {
    expect(AUDIT_QUEUE_URL_ENV).toBe('STRATUS_AUDIT_QUEUE_URL');
    const fn = resourceOf(fanOut.fn).Properties;
    expect(fn).toMatchObject({
      Timeout: USAGE_AUDIT.fanOut.timeoutSeconds,
      MemorySize: USAGE_AUDIT.fanOut.memoryMb,
      Environment: {
        Variables: {
          POWERTOOLS_SERVICE_NAME: 'stratus-usage-audit',
          STRATUS_PREFIX: 'stratus',
          [AUDIT_QUEUE_URL_ENV]: { Ref: logicalId(shards.queue) },
        },
      },
    });
    // Only the fan-out sends shard tasks: no other function is told where the queue is.
    const told = resourcesOfType(defaults.all, 'AWS::Lambda::Function').filter(([, f]) =>
      JSON.stringify(f.Properties).includes(AUDIT_QUEUE_URL_ENV),
    );
    expect(told.map(([id]) => id)).toEqual([fnId]);
  });

  it('may send to the shard queue only, and reads and writes the state table items only', () => {
    const statements = statementsOfRole(defaults.root, logicalId(fanOut.fn.executionRole));
    const sends = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('sqs:')));
    expect(sends).toEqual([
      expect.objectContaining({ Action: 'sqs:SendMessage', Resource: arnOf(shards.queue) }),
    ]);
    const dynamo = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('dynamodb:')));
    expect(dynamo).toHaveLength(1);
    expect([...actionsOf(dynamo[0]!)].sort()).toEqual(
      [...ITEM_READ_ACTIONS, ...ITEM_WRITE_ACTIONS].sort(),
    );
    expect(dynamo[0]!.Resource).toEqual(arnOf(defaults.stack.tables.state));
    const actions = statements.flatMap(actionsOf);
    expect(actions).not.toContain('events:PutEvents');
    expect(actions).not.toContain('dynamodb:Scan');
    expect(actions.filter((a) => !a.startsWith('dynamodb:')).sort()).toEqual([
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      'sqs:SendMessage',
    ]);
  });

  it('with the EC2 driver, may also list nodes (Describe*), but run no instance calls', () => {
    const ec2 = synth({}, { driver: 'ec2' });
    const statements = statementsOfRole(
      ec2.root,
      logicalId(ec2.stack.usageAudit.fanOut.fn.executionRole),
    );
    const ec2Actions = statements.flatMap(actionsOf).filter((a) => a.startsWith('ec2:'));
    expect(ec2Actions).toContain('ec2:DescribeInstances');
    expect(ec2Actions.every((a) => a.startsWith('ec2:Describe'))).toBe(true);
    const worker = statementsOfRole(
      ec2.root,
      logicalId(ec2.stack.usageAudit.shards.fn.executionRole),
    );
    expect(worker.flatMap(actionsOf).filter((a) => a.startsWith('ec2:'))).toEqual([]);
  });

  it('alarms on failed runs, undeliverable runs and throttles, to the alarm topic', () => {
    const alarm = (metric: string, dimension: unknown) =>
      defaults.root.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: metric,
        Dimensions: [Match.objectLike({ Value: dimension })],
        Threshold: 0,
        ComparisonOperator: 'GreaterThanThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: [alarmTopicRef],
      });
    alarm('Errors', { Ref: fnId });
    alarm('Throttles', { Ref: fnId });
    alarm('ApproximateNumberOfMessagesVisible', {
      'Fn::GetAtt': [logicalId(fanOut.deadLetterQueue), 'QueueName'],
    });
    expect(fanOut.alarms).toHaveLength(3);
  });
});

describe('usage audit shard queue and worker', () => {
  const fnId = logicalId(shards.fn);
  const { worker } = USAGE_AUDIT;

  it('hides a message for longer than a run can take, and redrives to the DLQ after 5 receives', () => {
    const queue = resourceOf(shards.queue).Properties;
    const fn = resourceOf(shards.fn).Properties;
    expect(queue.QueueName).toBe(auditQueueName('stratus'));
    expect(fn.Timeout).toBe(worker.timeoutSeconds);
    expect(fn.MemorySize).toBe(worker.memoryMb);
    expect(queue.VisibilityTimeout).toBeGreaterThanOrEqual(fn.Timeout as number);
    expect(queue).toMatchObject({
      VisibilityTimeout: worker.visibilityTimeoutSeconds,
      SqsManagedSseEnabled: true,
      RedrivePolicy: { deadLetterTargetArn: arnOf(shards.deadLetterQueue), maxReceiveCount: 5 },
    });
    expect(resourceOf(shards.deadLetterQueue).Properties).toMatchObject({
      QueueName: 'stratus-usage-audit-shards-dlq',
      MessageRetentionPeriod: 14 * 24 * 3600,
      SqsManagedSseEnabled: true,
    });
  });

  it('consumes one shard per invocation, reporting partial batch failures', () => {
    defaults.root.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: arnOf(shards.queue),
      FunctionName: { Ref: fnId },
      BatchSize: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: worker.maxConcurrency },
    });
  });

  it('reads and writes the state table, queries its indexes and publishes, nothing more', () => {
    const statements = statementsOfRole(defaults.root, logicalId(shards.fn.executionRole));
    const stateArn = arnOf(defaults.stack.tables.state);
    const items = statements.find((s) => JSON.stringify(s.Resource) === JSON.stringify(stateArn));
    expect(items).toBeDefined();
    expect([...actionsOf(items!)].sort()).toEqual(
      [...ITEM_READ_ACTIONS, ...ITEM_WRITE_ACTIONS].sort(),
    );
    const indexes = JSON.stringify(statements.map((s) => s.Resource));
    for (const index of Object.values(TABLES.state.indexes)) {
      expect(indexes).toContain(`/index/${index.name}`);
    }
    const put = statements.find((s) => actionsOf(s).includes('events:PutEvents'));
    expect(put?.Resource).toEqual(arnOf(defaults.stack.notifications.bus));
    // No command runs here: no idempotency table, no reply_to queues, no Scan.
    expect(indexes).not.toContain(logicalId(defaults.stack.tables.idempotency));
    const actions = statements.flatMap(actionsOf);
    expect(actions).not.toContain('sqs:SendMessage');
    expect(actions).not.toContain('dynamodb:Scan');
  });

  it('alarms on its DLQ, message age, errors and throttles, to the alarm topic', () => {
    const alarm = (metric: string, dimension: unknown) =>
      defaults.root.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: metric,
        Dimensions: [Match.objectLike({ Value: dimension })],
        ComparisonOperator: 'GreaterThanThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: [alarmTopicRef],
      });
    alarm('ApproximateNumberOfMessagesVisible', {
      'Fn::GetAtt': [logicalId(shards.deadLetterQueue), 'QueueName'],
    });
    alarm('ApproximateAgeOfOldestMessage', {
      'Fn::GetAtt': [logicalId(shards.queue), 'QueueName'],
    });
    alarm('Errors', { Ref: fnId });
    alarm('Throttles', { Ref: fnId });
  });

  it('publishes the shard queue and its DLQ as stack outputs', () => {
    defaults.root.hasOutput('UsageAuditQueueUrl', { Value: { Ref: logicalId(shards.queue) } });
    defaults.root.hasOutput('UsageAuditDeadLetterQueueUrl', {
      Value: { Ref: logicalId(shards.deadLetterQueue) },
    });
  });
});
