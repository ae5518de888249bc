// The scheduled periodic-tasks function: its schedule (rate, input, retry policy, DLQ), its
// least-privilege roles and its alarms.

import { describe, expect, it } from 'vitest';
import { CfnResource, Stack } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { TABLES } from '../../lib/topology.ts';
import {
  PERIODIC_TASKS_SETTINGS,
  SCHEDULE_MAX_EVENT_AGE,
  SCHEDULE_RETRY_ATTEMPTS,
} from '../../cdk/constructs/periodic-tasks.ts';
import { resourcesOfType, synth } from './support.ts';

const defaults = synth();
const periodic = defaults.stack.periodicTasks;

function logicalId(construct: IConstruct): string {
  const stack = Stack.of(construct);
  const resource = CfnResource.isCfnResource(construct)
    ? construct
    : (construct.node.defaultChild as CfnResource);
  return stack.resolve(stack.getLogicalId(resource)) as string;
}

type Statement = { Action: string | string[]; Resource: unknown; Effect: string };
const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);

/** Statements of the policies attached to a role (by its logical id). */
function statementsOfRole(roleId: string): Statement[] {
  return resourcesOfType([defaults.root], 'AWS::IAM::Policy')
    .filter(([, p]) => JSON.stringify(p.Properties?.Roles) === JSON.stringify([{ Ref: roleId }]))
    .flatMap(([, p]) => (p.Properties?.PolicyDocument as { Statement: Statement[] }).Statement);
}

describe('periodic tasks', () => {
  const fnId = logicalId(periodic.fn);

  it('deploys the function on the shared runtime, with the STRATUS_* options', () => {
    defaults.root.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Timeout: PERIODIC_TASKS_SETTINGS.timeoutSeconds,
      MemorySize: PERIODIC_TASKS_SETTINGS.memoryMb,
      Environment: {
        Variables: Match.objectLike({
          POWERTOOLS_SERVICE_NAME: 'stratus-periodic-tasks',
          STRATUS_PREFIX: 'stratus',
        }),
      },
    });
    const custom = synth({}, { sync_power_state_interval: '120', reclaim_instance_interval: '60' });
    custom.root.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          POWERTOOLS_SERVICE_NAME: 'stratus-periodic-tasks',
          STRATUS_SYNC_POWER_STATE_INTERVAL: '120',
          STRATUS_RECLAIM_INSTANCE_INTERVAL: '60',
        }),
      },
    });
  });

  it('is invoked every minute by EventBridge Scheduler with the scheduled time, retries and a DLQ', () => {
    // One schedule per scheduled function (the usage audit's fan-out has its own).
    const schedules = resourcesOfType([defaults.root], 'AWS::Scheduler::Schedule');
    expect(schedules.map(([, s]) => s.Properties?.Name)).toContain('stratus-periodic-tasks');
    defaults.root.hasResourceProperties('AWS::Scheduler::Schedule', {
      Name: 'stratus-periodic-tasks',
      ScheduleExpression: 'rate(1 minute)',
      State: 'ENABLED',
      FlexibleTimeWindow: { Mode: 'OFF' },
      Target: {
        Arn: { 'Fn::GetAtt': [fnId, 'Arn'] },
        Input: JSON.stringify({ scheduled_time: '<aws.scheduler.scheduled-time>' }),
        RetryPolicy: {
          MaximumRetryAttempts: SCHEDULE_RETRY_ATTEMPTS,
          MaximumEventAgeInSeconds: SCHEDULE_MAX_EVENT_AGE.toSeconds(),
        },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [logicalId(periodic.deadLetterQueue), 'Arn'] } },
      },
    });
    defaults.root.hasResourceProperties('AWS::SQS::Queue', {
      QueueName: 'stratus-periodic-tasks-dlq',
      MessageRetentionPeriod: 14 * 24 * 3600,
      SqsManagedSseEnabled: true,
    });
  });

  it('does not let Lambda retry a failed run: the next scheduled run does that work', () => {
    defaults.root.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: fnId },
      MaximumRetryAttempts: 0,
      MaximumEventAgeInSeconds: SCHEDULE_MAX_EVENT_AGE.toSeconds(),
    });
  });

  it('lets the schedule invoke this function only, and send only to its DLQ', () => {
    // The role the periodic-tasks schedule runs as: named by the schedule's target.
    const schedule = resourcesOfType([defaults.root], 'AWS::Scheduler::Schedule').find(
      ([, s]) => s.Properties?.Name === 'stratus-periodic-tasks',
    )!;
    const roleArn = (schedule[1].Properties?.Target as { RoleArn: { 'Fn::GetAtt': string[] } })
      .RoleArn;
    const roleId = roleArn['Fn::GetAtt'][0]!;
    const role = defaults.root.toJSON().Resources[roleId] as {
      Type: string;
      Properties: { AssumeRolePolicyDocument: unknown };
    };
    expect(role.Type).toBe('AWS::IAM::Role');
    const trust = JSON.stringify(role.Properties.AssumeRolePolicyDocument);
    expect(trust).toContain('scheduler.amazonaws.com');
    expect(trust).toContain('aws:SourceAccount');
    // No other schedule shares it: each scheduled function has a role of its own.
    const sharing = resourcesOfType([defaults.root], 'AWS::Scheduler::Schedule').filter(([, s]) =>
      JSON.stringify(s.Properties?.Target).includes(`"${roleId}"`),
    );
    expect(sharing).toHaveLength(1);
    const statements = statementsOfRole(roleId);
    expect(statements.flatMap(actionsOf).sort()).toEqual([
      'lambda:InvokeFunction',
      'sqs:SendMessage',
    ]);
    const invoke = statements.find((s) => actionsOf(s).includes('lambda:InvokeFunction'))!;
    expect(invoke.Resource).toEqual({ 'Fn::GetAtt': [fnId, 'Arn'] });
    const dlq = statements.find((s) => actionsOf(s).includes('sqs:SendMessage'))!;
    expect(dlq.Resource).toEqual({ 'Fn::GetAtt': [logicalId(periodic.deadLetterQueue), 'Arn'] });
  });

  it('gives the function the data access of a ComputeManager run (tables, indexes, bus)', () => {
    const statements = statementsOfRole(logicalId(periodic.fn.executionRole));
    const actions = statements.flatMap(actionsOf);
    for (const needed of [
      'dynamodb:GetItem',
      'dynamodb:Query',
      'dynamodb:UpdateItem',
      'dynamodb:PutItem',
      'events:PutEvents',
      'logs:PutLogEvents',
    ]) {
      expect(actions).toContain(needed);
    }
    expect(actions).not.toContain('dynamodb:Scan');
    const indexes = JSON.stringify(statements.map((s) => s.Resource));
    for (const index of Object.values(TABLES.state.indexes)) {
      expect(indexes).toContain(`/index/${index.name}`);
    }
  });

  it('alarms on failed runs, undeliverable runs and throttles, to the alarm topic', () => {
    const alarm = (metric: string, dimension: unknown) =>
      defaults.root.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: metric,
        Dimensions: [Match.objectLike({ Value: dimension })],
        Threshold: 0,
        ComparisonOperator: 'GreaterThanThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: [{ Ref: logicalId(defaults.stack.alarmTopic as unknown as IConstruct) }],
      });
    alarm('Errors', { Ref: fnId });
    alarm('Throttles', { Ref: fnId });
    alarm('ApproximateNumberOfMessagesVisible', {
      'Fn::GetAtt': [logicalId(periodic.deadLetterQueue), 'QueueName'],
    });
    expect(periodic.alarms).toHaveLength(3);
  });
});
