import { describe, expect, it } from 'vitest';
import { CfnResource, Stack } from 'aws-cdk-lib';
import { Annotations, Match, type Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import {
  IMPLEMENTED_OPERATIONS,
  TABLES,
  dlqName,
  operationFunction,
  operationSlug,
  queueName,
} from '../../lib/topology.ts';
import {
  EC2_STATE_CHANGE,
  FAKE_DRIVER_EVENT_SOURCE,
} from '../../cdk/constructs/lifecycle-events.ts';
import { operationChunks } from '../../cdk/constructs/operations-stack.ts';
import type { QueueConsumer } from '../../cdk/constructs/queue-consumer.ts';
import { LIFECYCLE_SOURCE } from '../../lib/compute/lifecycle-transport.ts';
import { resourcesOfType, synth } from './support.ts';

const defaults = synth();

/** The logical id of a construct's CloudFormation resource, as its own template names it. */
function logicalId(construct: IConstruct): string {
  const stack = Stack.of(construct);
  const resource = CfnResource.isCfnResource(construct)
    ? construct
    : (construct.node.defaultChild as CfnResource);
  return stack.resolve(stack.getLogicalId(resource)) as string;
}

function templateOf(consumer: QueueConsumer): Template {
  const index = defaults.stack.operationStacks.findIndex((nested) =>
    nested.pipelines.includes(consumer as never),
  );
  return index === -1 ? defaults.root : (defaults.nested[index] as Template);
}

/** Queue consumers that run ComputeManager work: the operation pipelines and lifecycle events. */
const consumers: QueueConsumer[] = [...defaults.stack.pipelines, defaults.stack.lifecycle];
/** The usage audit's shard worker: a queue consumer with settings of its own (usage-audit.test). */
const auditWorker = defaults.stack.usageAudit.shards;
/** Functions that are not queue consumers: periodic tasks and the usage audit's fan-out. */
const scheduled = [defaults.stack.periodicTasks, defaults.stack.usageAudit.fanOut];
/** Functions that run commands (answer reply_to, use the idempotency table): all but the audit. */
const computeFunctionCount = consumers.length + 1;
const functionCount = consumers.length + 1 + scheduled.length;

type Statement = { Action: string | string[]; Resource: unknown; Effect: string };
function policyStatements(templates: Template[]): Statement[] {
  return resourcesOfType(templates, 'AWS::IAM::Policy').flatMap(
    ([, policy]) => (policy.Properties?.PolicyDocument as { Statement: Statement[] }).Statement,
  );
}
const actionsOf = (statement: Statement) =>
  Array.isArray(statement.Action) ? statement.Action : [statement.Action];

describe('operation pipelines', () => {
  it('deploys exactly one pipeline per implemented operation', () => {
    expect(defaults.stack.pipelines.map((p) => p.operation)).toEqual([...IMPLEMENTED_OPERATIONS]);
  });

  it.each(IMPLEMENTED_OPERATIONS)('%s: the event source reports partial batch failures', (op) => {
    const pipeline = defaults.stack.pipelines.find((p) => p.operation === op)!;
    const settings = operationFunction(op);
    templateOf(pipeline).hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [logicalId(pipeline.queue), 'Arn'] },
      FunctionName: { Ref: logicalId(pipeline.fn) },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      BatchSize: settings.batchSize,
      MaximumBatchingWindowInSeconds: settings.maxBatchingWindowSeconds,
      ScalingConfig: { MaximumConcurrency: settings.maxConcurrency },
    });
  });

  it.each(IMPLEMENTED_OPERATIONS)('%s: queue redrives to its DLQ', (op) => {
    const pipeline = defaults.stack.pipelines.find((p) => p.operation === op)!;
    const template = templateOf(pipeline);
    template.hasResourceProperties('AWS::SQS::Queue', {
      QueueName: queueName('stratus', op),
      RedrivePolicy: {
        deadLetterTargetArn: { 'Fn::GetAtt': [logicalId(pipeline.deadLetterQueue), 'Arn'] },
        maxReceiveCount: operationFunction(op).maxReceiveCount,
      },
      SqsManagedSseEnabled: true,
    });
    template.hasResourceProperties('AWS::SQS::Queue', {
      QueueName: dlqName('stratus', op),
      MessageRetentionPeriod: 14 * 24 * 3600,
      SqsManagedSseEnabled: true,
    });
  });

  it('sets every queue visibility timeout to 6 × its function timeout', () => {
    for (const consumer of consumers) {
      const template = templateOf(consumer).toJSON();
      const queue = template.Resources[logicalId(consumer.queue)].Properties;
      const fn = template.Resources[logicalId(consumer.fn)].Properties;
      expect(fn.Timeout).toBeGreaterThan(0);
      expect(queue.VisibilityTimeout).toBe(6 * fn.Timeout);
    }
  });

  it('denies non-TLS access on every queue', () => {
    const queues = resourcesOfType(defaults.all, 'AWS::SQS::Queue').length;
    const tlsOnly = resourcesOfType(defaults.all, 'AWS::SQS::QueuePolicy').filter(([, policy]) =>
      JSON.stringify(policy.Properties).includes('"aws:SecureTransport":"false"'),
    );
    // A queue and DLQ per consumer (the audit's shard worker too), and each schedule's DLQ.
    expect(queues).toBe(2 * (consumers.length + 1) + scheduled.length);
    expect(tlsOnly).toHaveLength(queues);
  });

  it('publishes every queue URL as an exported output and an SSM parameter', () => {
    const outputs = Object.values(
      defaults.root.toJSON().Outputs as Record<string, { Export?: { Name: string } }>,
    );
    for (const pipeline of defaults.stack.pipelines) {
      const slug = operationSlug(pipeline.operation);
      const queueOutput = outputs.find((o) => o.Export?.Name === `stratus-queue-${slug}`);
      const dlqOutput = outputs.find((o) => o.Export?.Name === `stratus-dlq-${slug}`);
      expect(queueOutput).toBeDefined();
      expect(dlqOutput).toBeDefined();
      templateOf(pipeline).hasResourceProperties('AWS::SSM::Parameter', {
        Name: `/stratus/queues/${pipeline.operation}`,
        Type: 'String',
        Value: { Ref: logicalId(pipeline.queue) },
      });
    }
    expect(Object.keys(defaults.root.toJSON().Outputs)).toEqual(
      expect.arrayContaining([
        'StateTableName',
        'IdempotencyTableName',
        'FakeHypervisorTableName',
        'EventBusName',
        'EventBusArn',
        'LifecycleQueueUrl',
        'LifecycleDeadLetterQueueUrl',
        'UsageAuditQueueUrl',
        'UsageAuditDeadLetterQueueUrl',
        'SchemaRegistryName',
      ]),
    );
  });

  it('grants SendMessage on command queues to the configured producer principals', () => {
    const producer = 'arn:aws:iam::123456789012:role/nova-api';
    const { nested } = synth({}, { producer_principals: JSON.stringify([producer]) });
    const grants = resourcesOfType(nested, 'AWS::SQS::QueuePolicy').filter(([, policy]) =>
      JSON.stringify(policy.Properties).includes(producer),
    );
    expect(grants).toHaveLength(IMPLEMENTED_OPERATIONS.length);
    nested[0]!.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Allow',
            Principal: { AWS: producer },
            Action: Match.arrayWith(['sqs:SendMessage']),
          }),
        ]),
      },
    });
  });
});

describe('functions', () => {
  const functions = resourcesOfType(defaults.all, 'AWS::Lambda::Function');

  it('runs every function on nodejs24.x / arm64 with source maps and Powertools settings', () => {
    expect(functions).toHaveLength(functionCount);
    // The usage audit sizes its two functions itself (USAGE_AUDIT, checked in usage-audit.test).
    const auditFunctions = [auditWorker.fn, defaults.stack.usageAudit.fanOut.fn].map(logicalId);
    for (const [id, fn] of functions) {
      expect(fn.Properties).toMatchObject({
        Runtime: 'nodejs24.x',
        Architectures: ['arm64'],
        Handler: 'index.handler',
        MemorySize: auditFunctions.includes(id) ? expect.any(Number) : 512,
        Environment: {
          Variables: {
            NODE_OPTIONS: '--enable-source-maps',
            POWERTOOLS_METRICS_NAMESPACE: 'Stratus',
            POWERTOOLS_SERVICE_NAME: expect.stringMatching(/^stratus-/),
            STRATUS_PREFIX: 'stratus',
            STRATUS_EVENT_BUS_NAME: 'stratus-notifications',
          },
        },
      });
      expect(fn.Properties).not.toHaveProperty('ReservedConcurrentExecutions');
    }
  });

  it('gives each function its own log group with the configured retention', () => {
    expect(resourcesOfType(defaults.all, 'AWS::Logs::LogGroup')).toHaveLength(functionCount);
    for (const template of defaults.all) {
      template.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    }
    const custom = synth({}, { log_retention_days: '90' });
    custom.nested[0]!.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
  });

  it('passes context options to the functions as STRATUS_* variables', () => {
    const { all } = synth({}, { notify_on_state_change: 'vm_state', host: 'compute-a' });
    for (const [, fn] of resourcesOfType(all, 'AWS::Lambda::Function')) {
      expect(fn.Properties).toMatchObject({
        Environment: {
          Variables: { STRATUS_NOTIFY_ON_STATE_CHANGE: 'vm_state', STRATUS_HOST: 'compute-a' },
        },
      });
    }
  });
});

describe('alarms', () => {
  it('watches every queue and function, sending to the alarm topic', () => {
    const alarms = resourcesOfType(defaults.all, 'AWS::CloudWatch::Alarm');
    expect(alarms).toHaveLength(
      4 * (consumers.length + 1) + scheduled.reduce((n, s) => n + s.alarms.length, 0),
    );
    for (const [, alarm] of alarms) {
      expect(alarm.Properties).toMatchObject({
        TreatMissingData: 'notBreaching',
        ComparisonOperator: 'GreaterThanThreshold',
        AlarmActions: [expect.anything()],
      });
    }
    defaults.root.resourceCountIs('AWS::SNS::Topic', 1);
    defaults.root.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  it.each([...consumers, auditWorker].map((c) => [c.node.path, c] as const))(
    '%s has its four alarms',
    (_, c) => {
      const template = templateOf(c);
      const alarm = (metric: string, dimension: unknown, threshold: number) =>
        template.hasResourceProperties('AWS::CloudWatch::Alarm', {
          MetricName: metric,
          Dimensions: [Match.objectLike({ Value: dimension })],
          Threshold: threshold,
        });
      alarm(
        'ApproximateNumberOfMessagesVisible',
        { 'Fn::GetAtt': [logicalId(c.deadLetterQueue), 'QueueName'] },
        0,
      );
      alarm(
        'ApproximateAgeOfOldestMessage',
        { 'Fn::GetAtt': [logicalId(c.queue), 'QueueName'] },
        15 * 60,
      );
      alarm('Errors', { Ref: logicalId(c.fn) }, 0);
      alarm('Throttles', { Ref: logicalId(c.fn) }, 0);
    },
  );

  it('uses an existing topic instead of creating one when alarm_topic_arn is set', () => {
    const topicArn = 'arn:aws:sns:eu-west-1:123456789012:ops-pager';
    const { root, all } = synth({}, { alarm_topic_arn: topicArn });
    root.resourceCountIs('AWS::SNS::Topic', 0);
    const actions = resourcesOfType(all, 'AWS::CloudWatch::Alarm').map(
      ([, a]) => (a.Properties?.AlarmActions as unknown[])[0],
    );
    expect(actions.every((action) => JSON.stringify(action) === JSON.stringify(topicArn))).toBe(
      true,
    );
  });
});

describe('tables', () => {
  it('protects every table: on-demand, PITR, deletion protection, AWS-managed key, retained', () => {
    const tables = resourcesOfType([defaults.root], 'AWS::DynamoDB::GlobalTable');
    expect(tables).toHaveLength(3);
    defaults.root.allResources('AWS::DynamoDB::GlobalTable', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: Match.objectLike({
        BillingMode: 'PAY_PER_REQUEST',
        SSESpecification: { SSEEnabled: true, SSEType: 'KMS' },
        Replicas: [
          Match.objectLike({
            DeletionProtectionEnabled: true,
            PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
          }),
        ],
      }),
    });
  });

  it('keys the state table as topology says, with TTL and every index', () => {
    defaults.root.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      TableName: 'stratus-state',
      KeySchema: [
        { AttributeName: TABLES.state.partitionKey, KeyType: 'HASH' },
        { AttributeName: TABLES.state.sortKey, KeyType: 'RANGE' },
      ],
      TimeToLiveSpecification: { AttributeName: TABLES.state.ttlAttribute, Enabled: true },
      GlobalSecondaryIndexes: Object.values(TABLES.state.indexes).map((index) => ({
        IndexName: index.name,
        KeySchema: [
          { AttributeName: index.partitionKey, KeyType: 'HASH' },
          { AttributeName: index.sortKey, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      })),
    });
    defaults.root.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      TableName: 'stratus-idempotency',
      KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
      TimeToLiveSpecification: { AttributeName: 'expiration', Enabled: true },
    });
    defaults.root.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      TableName: 'stratus-fake-hypervisor',
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
    });
  });

  it('creates the fake hypervisor table only for the fake driver', () => {
    const ec2 = synth({}, { driver: 'ec2', prefix: 'prod' });
    // The EC2 driver is implemented: no "not implemented" warning at synth.
    Annotations.fromStack(ec2.stack).hasNoWarning('*', Match.anyValue());
    Annotations.fromStack(defaults.stack).hasNoWarning('*', Match.anyValue());
    const names = resourcesOfType([ec2.root], 'AWS::DynamoDB::GlobalTable').map(
      ([, t]) => t.Properties?.TableName,
    );
    expect(names.sort()).toEqual(['prod-idempotency', 'prod-state']);
    expect(JSON.stringify(policyStatements(ec2.all))).not.toContain('FakeHypervisor');
  });
});

describe('notifications and lifecycle events', () => {
  it('creates the bus and archives everything from the event source', () => {
    defaults.root.hasResourceProperties('AWS::Events::EventBus', { Name: 'stratus-notifications' });
    const busId = logicalId(defaults.stack.notifications.bus);
    defaults.root.hasResourceProperties('AWS::Events::Archive', {
      SourceArn: { 'Fn::GetAtt': [busId, 'Arn'] },
      EventPattern: { source: ['stratus.compute'] },
      RetentionDays: 30,
    });
  });

  it('honours event_bus_name, event_source and archive_retention_days', () => {
    const { root } = synth(
      {},
      {
        event_bus_name: 'billing-feed',
        event_source: 'acme.compute',
        archive_retention_days: '365',
      },
    );
    root.hasResourceProperties('AWS::Events::EventBus', { Name: 'billing-feed' });
    root.hasResourceProperties('AWS::Events::Archive', {
      EventPattern: { source: ['acme.compute'] },
      RetentionDays: 365,
    });
  });

  it('matches the source the fake driver publishes its lifecycle events with', () => {
    expect(FAKE_DRIVER_EVENT_SOURCE).toBe(LIFECYCLE_SOURCE);
  });

  it('routes EC2 state changes (default bus) and fake driver events (Stratus bus) to one queue', () => {
    const { lifecycle, notifications } = defaults.stack;
    const target = {
      Arn: { 'Fn::GetAtt': [logicalId(lifecycle.queue), 'Arn'] },
      DeadLetterConfig: { Arn: { 'Fn::GetAtt': [logicalId(lifecycle.deadLetterQueue), 'Arn'] } },
      RetryPolicy: { MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 24 * 3600 },
    };
    defaults.root.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: Match.absent(),
      EventPattern: {
        source: [EC2_STATE_CHANGE.source],
        'detail-type': [EC2_STATE_CHANGE.detailType],
      },
      Targets: [Match.objectLike(target)],
    });
    defaults.root.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: { Ref: logicalId(notifications.bus) },
      EventPattern: { source: [FAKE_DRIVER_EVENT_SOURCE] },
      Targets: [Match.objectLike(target)],
    });
    defaults.root.hasResourceProperties('AWS::SQS::Queue', {
      QueueName: 'stratus-lifecycle-events',
      RedrivePolicy: Match.objectLike({ maxReceiveCount: 5 }),
    });
  });
});

describe('least-privilege IAM', () => {
  const statements = policyStatements(defaults.all);

  it('never grants service wildcards or Scan', () => {
    const actions = statements.flatMap(actionsOf);
    expect(actions.length).toBeGreaterThan(0);
    for (const forbidden of ['*', 'dynamodb:*', 'events:*', 'sqs:*', 'dynamodb:Scan']) {
      expect(actions).not.toContain(forbidden);
    }
  });

  it('scopes PutEvents to the notification bus ARN, in the root and every nested stack', () => {
    const busArn = { 'Fn::GetAtt': [logicalId(defaults.stack.notifications.bus), 'Arn'] };
    const rootPut = policyStatements([defaults.root]).filter((s) =>
      actionsOf(s).includes('events:PutEvents'),
    );
    // The lifecycle, periodic-tasks and audit shard functions live in the root stack (the
    // audit's fan-out publishes nothing).
    expect(rootPut.map((s) => s.Resource)).toEqual([busArn, busArn, busArn]);

    defaults.stack.operationStacks.forEach((nestedStack, i) => {
      const puts = policyStatements([defaults.nested[i]!]).filter((s) =>
        actionsOf(s).includes('events:PutEvents'),
      );
      expect(puts).toHaveLength(nestedStack.pipelines.length);
      // A nested stack sees the bus ARN as a parameter: check what the root passes into it.
      const nestedResource =
        defaults.root.toJSON().Resources[logicalId(nestedStack.nestedStackResource!)];
      for (const put of puts) {
        const parameter = (put.Resource as { Ref: string }).Ref;
        expect(nestedResource.Properties.Parameters[parameter]).toEqual(busArn);
      }
    });
  });

  it('allows Query on the named indexes only, never on index/*', () => {
    const indexResources = statements
      .flatMap((s) => [s.Resource].flat())
      .map((r) => JSON.stringify(r))
      .filter((r) => r.includes('/index/'));
    const names = Object.values(TABLES.state.indexes).map((i) => i.name);
    // Every function but the audit's fan-out (which reads task_log items only) queries them.
    expect(indexResources.length).toBe((functionCount - 1) * names.length);
    for (const resource of indexResources) {
      expect(names.some((n) => resource.includes(`/index/${n}"`))).toBe(true);
      expect(resource).not.toContain('/index/*');
    }
    const indexStatements = statements.filter((s) =>
      JSON.stringify(s.Resource).includes('/index/'),
    );
    for (const s of indexStatements) expect(actionsOf(s)).toEqual(['dynamodb:Query']);
  });

  it('lets reply_to go to queues of the same account and region by default, or to the configured ARNs', () => {
    // The schedules' roles send to their DLQs and the audit's fan-out to its shard queue: not
    // replies.
    const notReplies = [
      ...scheduled.map((s) => s.deadLetterQueue),
      defaults.stack.usageAudit.shards.queue,
    ].map((queue) => JSON.stringify({ 'Fn::GetAtt': [logicalId(queue), 'Arn'] }));
    const isReply = (s: Statement) =>
      actionsOf(s).includes('sqs:SendMessage') && !notReplies.includes(JSON.stringify(s.Resource));
    const replies = statements.filter(isReply);
    // The periodic tasks answer reply_to when the sweeper settles a producer's command; the
    // usage audit answers no command.
    expect(replies).toHaveLength(computeFunctionCount);
    for (const reply of replies) {
      expect(JSON.stringify(reply.Resource)).toBe(
        JSON.stringify({
          'Fn::Join': [
            '',
            [
              'arn:',
              { Ref: 'AWS::Partition' },
              ':sqs:',
              { Ref: 'AWS::Region' },
              ':',
              { Ref: 'AWS::AccountId' },
              ':*',
            ],
          ],
        }),
      );
    }
    const arns = ['arn:aws:sqs:us-east-1:123456789012:nova-replies'];
    const narrowed = policyStatements(
      synth({}, { reply_queue_arns: JSON.stringify(arns) }).all,
    ).filter(isReply);
    for (const reply of narrowed) expect(reply.Resource).toEqual(arns[0]);
  });

  it('lets functions write only to their own log group', () => {
    const logs = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('logs:')));
    expect(logs).toHaveLength(functionCount);
    for (const s of logs) {
      expect(actionsOf(s).sort()).toEqual(['logs:CreateLogStream', 'logs:PutLogEvents']);
      expect(s.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/Logs/), 'Arn'] });
    }
    for (const [, role] of resourcesOfType(defaults.all, 'AWS::IAM::Role')) {
      expect(role.Properties).not.toHaveProperty('ManagedPolicyArns');
    }
  });
});

describe('nested stack layout', () => {
  it('keeps an operation in the same nested stack whichever others are implemented', () => {
    const alone = operationChunks(['terminate_instance']);
    const withOthers = operationChunks([
      'build_and_run_instance',
      'terminate_instance',
      'rebuild_instance',
    ]);
    expect(alone).toEqual([{ id: 'Operations1', operations: ['terminate_instance'] }]);
    expect(withOthers).toEqual([
      { id: 'Operations1', operations: ['build_and_run_instance', 'terminate_instance'] },
      { id: 'Operations2', operations: ['rebuild_instance'] },
    ]);
  });

  it('rejects unknown or repeated operations', () => {
    expect(() => operationChunks(['nope' as never])).toThrow(/Unknown operation: nope/);
    expect(() => operationChunks(['stop_instance', 'stop_instance'])).toThrow(/twice/);
  });
});
