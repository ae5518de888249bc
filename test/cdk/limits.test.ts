// CloudFormation's per-template quotas, checked for today's stack and for the full contract
// (every operation implemented), so the nested-stack split is proven before it is needed.

import { describe, expect, it } from 'vitest';
import type { Template } from 'aws-cdk-lib/assertions';
import { OPERATIONS, type Operation, operationFunction } from '../../lib/topology.ts';
import { OPERATIONS_PER_NESTED_STACK } from '../../cdk/constructs/operations-stack.ts';
import { resourceCount, synth } from './support.ts';

// https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html
const MAX_RESOURCES = 500;
const MAX_OUTPUTS = 200;
const MAX_PARAMETERS = 200;
const MAX_TEMPLATE_BYTES = 1_000_000; // template uploaded to S3

function expectWithinQuotas(template: Template) {
  const json = template.toJSON();
  expect(resourceCount(template)).toBeLessThan(MAX_RESOURCES);
  expect(Object.keys(json.Outputs ?? {}).length).toBeLessThanOrEqual(MAX_OUTPUTS);
  expect(Object.keys(json.Parameters ?? {}).length).toBeLessThanOrEqual(MAX_PARAMETERS);
  expect(JSON.stringify(json).length).toBeLessThan(MAX_TEMPLATE_BYTES);
}

describe('CloudFormation quotas', () => {
  it('holds for the implemented operations', () => {
    const { all } = synth();
    for (const template of all) expectWithinQuotas(template);
  });

  it('holds with all 40 operations of the contract implemented', () => {
    // Every operation's handler file does not exist yet; point them all at one that does (bundling
    // is skipped in tests, so only the path is checked).
    const settings = (operation: Operation) => ({
      ...operationFunction(operation),
      entry: 'functions/terminate-instance.ts',
    });
    const { stack, root, nested, all } = synth({
      operations: OPERATIONS,
      functionSettings: settings,
    });

    expect(OPERATIONS).toHaveLength(40);
    expect(stack.pipelines.map((p) => p.operation)).toEqual([...OPERATIONS]);
    expect(nested).toHaveLength(Math.ceil(OPERATIONS.length / OPERATIONS_PER_NESTED_STACK));
    for (const nestedStack of stack.operationStacks) {
      expect(nestedStack.pipelines.length).toBeLessThanOrEqual(OPERATIONS_PER_NESTED_STACK);
    }
    for (const template of all) expectWithinQuotas(template);

    // Every pipeline is complete at full size: one queue pair, function and four alarms each.
    const perNested = nested.map((t) => Object.values(t.toJSON().Resources) as { Type: string }[]);
    const count = (type: string) =>
      perNested.flat().filter((resource) => resource.Type === type).length;
    expect(count('AWS::Lambda::Function')).toBe(40);
    expect(count('AWS::SQS::Queue')).toBe(80);
    expect(count('AWS::CloudWatch::Alarm')).toBe(160);
    expect(count('AWS::SSM::Parameter')).toBe(40);
    expect(Object.keys(root.toJSON().Outputs).filter((o) => o.endsWith('QueueUrl'))).toHaveLength(
      80 + 2 + 2, // every queue and DLQ, plus the lifecycle and usage-audit pairs
    );
  });
});
