// The consumer-side billing feed (docs/billing.md): a rule on the Stratus bus routing exists and
// their per-shard manifests to the consumer's queue, with EventBridge's retry policy and a DLQ,
// in a stack of the consumer's own, clean under cdk-nag's AwsSolutions pack.

import { describe, expect, it } from 'vitest';
import { type App, CfnResource, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { EventBus } from 'aws-cdk-lib/aws-events';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import {
  BILLING_EVENT_TYPES,
  BillingSubscription,
  type BillingSubscriptionProps,
} from '../../cdk/constructs/billing-subscription.ts';
import { PUBLISHED_EVENT_TYPES } from '../../lib/notifications/event-types.ts';
import { testApp } from './support.ts';

function logicalId(construct: IConstruct): string {
  const stack = Stack.of(construct);
  const resource = CfnResource.isCfnResource(construct)
    ? construct
    : (construct.node.defaultChild as CfnResource);
  return stack.resolve(stack.getLogicalId(resource)) as string;
}

/** A billing consumer's stack: the Stratus bus (imported by ARN, as a consumer would) and the feed. */
function buildConsumer(app: App, props: Partial<BillingSubscriptionProps> = {}) {
  const stack = new Stack(app, 'Billing', {
    env: { account: '123456789012', region: 'us-east-1' },
  });
  const bus = EventBus.fromEventBusArn(
    stack,
    'StratusBus',
    'arn:aws:events:us-east-1:123456789012:event-bus/stratus-notifications',
  );
  const subscription = new BillingSubscription(stack, 'BillingFeed', { bus, ...props });
  return { stack, subscription };
}

function consumerStack(props: Partial<BillingSubscriptionProps> = {}) {
  const { stack, subscription } = buildConsumer(testApp(), props);
  return { subscription, template: Template.fromStack(stack) };
}

type Statement = { Effect: string; Action: string | string[]; [key: string]: unknown };
type Rule = { EventPattern: { source: string[]; 'detail-type': string[] } };

describe('billing subscription', () => {
  it('routes exists and exists.audit from the Stratus source on the Stratus bus', () => {
    const { template } = consumerStack();
    template.resourceCountIs('AWS::Events::Rule', 1);
    template.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: 'stratus-notifications',
      State: 'ENABLED',
      EventPattern: {
        source: ['stratus.compute'],
        'detail-type': ['compute.instance.exists', 'compute.instance.exists.audit'],
      },
    });
    // Both are event types the bus publishes (and the registry describes).
    for (const type of BILLING_EVENT_TYPES) expect(PUBLISHED_EVENT_TYPES).toContain(type);
  });

  it('honours event_source, and adds the lifecycle events a verifier checks when asked', () => {
    const { template } = consumerStack({ eventSource: 'acme.compute', includeLifecycle: true });
    const [rule] = Object.values(template.findResources('AWS::Events::Rule')) as {
      Properties: Rule;
    }[];
    const pattern = rule!.Properties.EventPattern;
    expect(pattern.source).toEqual(['acme.compute']);
    expect(pattern['detail-type'].slice(0, 2)).toEqual([...BILLING_EVENT_TYPES]);
    expect(pattern['detail-type']).toEqual(
      expect.arrayContaining([
        'compute.instance.create.end',
        'compute.instance.delete.end',
        'compute.instance.rebuild.end',
        'compute.instance.finish_resize.end',
        'compute.instance.resize.revert.end',
      ]),
    );
    // Every routed type is one Stratus publishes: a typo would silently match nothing.
    for (const type of pattern['detail-type']) expect(PUBLISHED_EVENT_TYPES).toContain(type);
  });

  it('delivers to an encrypted queue with EventBridge retries for 24 h and a DLQ', () => {
    const { template, subscription } = consumerStack();
    const queueArn = { 'Fn::GetAtt': [logicalId(subscription.queue), 'Arn'] };
    const dlqArn = { 'Fn::GetAtt': [logicalId(subscription.deadLetterQueue), 'Arn'] };
    template.hasResourceProperties('AWS::Events::Rule', {
      Targets: [
        Match.objectLike({
          Arn: queueArn,
          DeadLetterConfig: { Arn: dlqArn },
          RetryPolicy: { MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 24 * 3600 },
        }),
      ],
    });
    template.resourceCountIs('AWS::SQS::Queue', 2);
    template.hasResourceProperties('AWS::SQS::Queue', {
      SqsManagedSseEnabled: true,
      RedrivePolicy: { deadLetterTargetArn: dlqArn, maxReceiveCount: 10 },
    });
    template.hasResourceProperties('AWS::SQS::Queue', {
      MessageRetentionPeriod: 14 * 24 * 3600,
      SqsManagedSseEnabled: true,
    });
  });

  it('lets events.amazonaws.com send to the queue and the DLQ for this rule only, over TLS only', () => {
    const { template, subscription } = consumerStack();
    const ruleArn = { 'Fn::GetAtt': [logicalId(subscription.rule), 'Arn'] };
    const policies = Object.values(template.findResources('AWS::SQS::QueuePolicy')) as {
      Properties: { Queues: unknown[]; PolicyDocument: { Statement: Statement[] } };
    }[];
    for (const queue of [subscription.queue, subscription.deadLetterQueue]) {
      const policy = policies.find(
        (p) => JSON.stringify(p.Properties.Queues) === JSON.stringify([{ Ref: logicalId(queue) }]),
      );
      expect(policy, queue.node.path).toBeDefined();
      const statements = policy!.Properties.PolicyDocument.Statement;
      expect(statements).toContainEqual(
        expect.objectContaining({
          Effect: 'Deny',
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        }),
      );
      const allows = statements.filter((st) => st.Effect === 'Allow');
      expect(allows).toHaveLength(1);
      expect(allows[0]).toMatchObject({
        Principal: { Service: 'events.amazonaws.com' },
        Condition: { ArnEquals: { 'aws:SourceArn': ruleArn } },
      });
      expect([allows[0]!.Action].flat()).toContain('sqs:SendMessage');
    }
  });

  it("delivers to the consumer's own queue when given one", () => {
    const app = testApp();
    const stack = new Stack(app, 'Own');
    const own = new Queue(stack, 'Own', { encryption: QueueEncryption.SQS_MANAGED });
    const subscription = new BillingSubscription(stack, 'BillingFeed', {
      bus: new EventBus(stack, 'Bus'),
      queue: own,
    });
    expect(subscription.queue).toBe(own);
    const template = Template.fromStack(stack);
    // The given queue and the feed's DLQ: no queue of the construct's own.
    template.resourceCountIs('AWS::SQS::Queue', 2);
    template.hasResourceProperties('AWS::Events::Rule', {
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [logicalId(own), 'Arn'] } })],
    });
  });

  it('passes cdk-nag AwsSolutions in a consumer stack', () => {
    const app = testApp();
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    buildConsumer(app, { includeLifecycle: true });
    let report = '';
    try {
      app.synth();
    } catch (error) {
      report = String(error);
    }
    expect(report).toBe('');
  });
});
