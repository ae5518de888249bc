import { describe, expect, it } from 'vitest';
import { parseEndpoints } from '../../../lib/client/endpoints.ts';
import { endpointsFromStackOutputs, outputName } from '../../../lib/cli/stack-outputs.ts';

const Q = 'https://sqs.eu-west-1.amazonaws.com/123456789012';

function describeStacks(outputs: Record<string, string>) {
  return {
    Stacks: [
      {
        StackName: 'stratus',
        Outputs: Object.entries(outputs).map(([OutputKey, OutputValue]) => ({
          OutputKey,
          OutputValue,
        })),
      },
    ],
  };
}

describe('endpointsFromStackOutputs', () => {
  it('turns describe-stacks output into an endpoints file for the CLI and the client', () => {
    const endpoints = endpointsFromStackOutputs(
      describeStacks({
        BuildAndRunInstanceQueueUrl: `${Q}/stratus-build-and-run-instance`,
        BuildAndRunInstanceDeadLetterQueueUrl: `${Q}/stratus-build-and-run-instance-dlq`,
        TerminateInstanceQueueUrl: `${Q}/stratus-terminate-instance`,
        LifecycleQueueUrl: `${Q}/stratus-lifecycle-events`,
        StateTableName: 'stratus-state',
        IdempotencyTableName: 'stratus-idempotency',
        EventBusName: 'stratus-notifications',
        AlarmTopicArn: 'arn:aws:sns:eu-west-1:123456789012:alarms',
      }),
    );
    expect(endpoints).toEqual({
      region: 'eu-west-1',
      sqs: {
        endpoint: null,
        queues: {
          build_and_run_instance: `${Q}/stratus-build-and-run-instance`,
          terminate_instance: `${Q}/stratus-terminate-instance`,
        },
        dlqs: { build_and_run_instance: `${Q}/stratus-build-and-run-instance-dlq` },
        lifecycle: `${Q}/stratus-lifecycle-events`,
        lifecycle_dlq: null,
      },
      dynamodb: {
        endpoint: null,
        tables: {
          state: 'stratus-state',
          idempotency: 'stratus-idempotency',
          fakeHypervisor: null,
        },
      },
      eventbridge: { endpoint: null, bus: 'stratus-notifications' },
      notifications_log: null,
    });
    // What it writes, the readers accept.
    expect(parseEndpoints(JSON.stringify(endpoints))).toEqual(endpoints);
  });

  it('names outputs as the stack does', () => {
    expect(outputName('build_and_run_instance')).toBe('BuildAndRunInstance');
    expect(outputName('add_fixed_ip_to_instance')).toBe('AddFixedIpToInstance');
  });

  it('refuses what is not a Stratus stack', () => {
    expect(() => endpointsFromStackOutputs({})).toThrow(/describe-stacks/);
    expect(() => endpointsFromStackOutputs(describeStacks({ Foo: 'bar' }))).toThrow(
      /no Stratus outputs/,
    );
  });
});
