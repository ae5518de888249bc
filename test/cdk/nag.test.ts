// cdk-nag's AwsSolutions pack runs as a CDK validation plugin: `app.synth()` throws on any finding
// that is not individually acknowledged, exactly as `npm run synth` fails.

import { describe, expect, it } from 'vitest';
import { type App, Validations } from 'aws-cdk-lib';
import { Queue } from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { OPERATIONS, operationFunction } from '../../lib/topology.ts';
import { buildApp } from '../../cdk/app.ts';
import { StratusStack, type StratusStackProps } from '../../cdk/stack.ts';
import { testApp } from './support.ts';

function checkedApp(props: StratusStackProps, context: Record<string, unknown> = {}) {
  const app = testApp(context);
  const stack = new StratusStack(app, 'Stratus', props);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack };
}

/** Synthesizes and returns the validation error text, or '' when synth succeeds. */
function findings(app: App): string {
  try {
    app.synth();
    return '';
  } catch (error) {
    return String(error);
  }
}

describe('cdk-nag AwsSolutions', () => {
  it('passes the app as cdk/app.ts builds it', () => {
    const { app } = buildApp(testApp());
    expect(findings(app)).toBe('');
  });

  it('passes with all 40 operations, the EC2 driver and reply queue patterns', () => {
    const { app } = checkedApp(
      {
        operations: OPERATIONS,
        functionSettings: (op) => ({
          ...operationFunction(op),
          entry: 'functions/lifecycle-events.ts',
        }),
      },
      {
        driver: 'ec2',
        reply_queue_arns: '["arn:aws:sqs:us-east-1:123456789012:replies-*"]',
        producer_principals: '["arn:aws:iam::123456789012:role/nova-api"]',
      },
    );
    expect(findings(app)).toBe('');
  });

  it('fails synth on an unacknowledged finding (the check is live)', () => {
    const { app, stack } = checkedApp({});
    new Queue(stack, 'Unprotected', { enforceSSL: false });
    const report = findings(app);
    expect(report).toContain('AwsSolutions-SQS3');
    expect(report).toContain('AwsSolutions-SQS4');
    expect(report).toContain('Stratus/Unprotected/Resource');
  });
});
