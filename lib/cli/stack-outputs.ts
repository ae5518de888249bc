// A deployed stack's outputs (cdk/stack.ts: `<Operation>QueueUrl`, `<Operation>DeadLetterQueueUrl`,
// `LifecycleQueueUrl`, `StateTableName`, `EventBusName`, …) as an endpoints file, so the CLI and
// the producer client treat a deployment exactly like the local control plane.
//
//   aws cloudformation describe-stacks --stack-name stratus \
//     | npx stratus endpoints --from-stack-outputs - > stratus.json

import type { Endpoints } from '../client/endpoints.ts';
import { OPERATIONS, type Operation } from '../topology.ts';
import { CliError } from './errors.ts';

/** `build_and_run_instance` → `BuildAndRunInstance`, as the stack names its outputs. */
export function outputName(operation: Operation): string {
  return operation
    .split('_')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');
}

interface DescribeStacksOutput {
  Stacks?: { StackName?: string; Outputs?: { OutputKey?: string; OutputValue?: string }[] }[];
}

/** The region of an SQS queue URL (`https://sqs.<region>.amazonaws.com/…`). */
function regionOf(url: string | undefined): string | undefined {
  return url?.match(/^https:\/\/sqs\.([a-z0-9-]+)\.amazonaws\.com/)?.[1];
}

export function endpointsFromStackOutputs(
  described: unknown,
  options: { region?: string } = {},
): Endpoints {
  const stacks = (described as DescribeStacksOutput | null)?.Stacks;
  const stack = Array.isArray(stacks) ? stacks[0] : undefined;
  if (!stack?.Outputs) {
    throw new CliError('not `aws cloudformation describe-stacks` output: no Stacks[0].Outputs');
  }
  const outputs = new Map(
    stack.Outputs.filter((o) => o.OutputKey && o.OutputValue).map(
      (o) => [o.OutputKey!, o.OutputValue!] as const,
    ),
  );
  const queues: Partial<Record<Operation, string>> = {};
  const dlqs: Partial<Record<Operation, string>> = {};
  for (const op of OPERATIONS) {
    const url = outputs.get(`${outputName(op)}QueueUrl`);
    const dlq = outputs.get(`${outputName(op)}DeadLetterQueueUrl`);
    if (url) queues[op] = url;
    if (dlq) dlqs[op] = dlq;
  }
  const state = outputs.get('StateTableName');
  const bus = outputs.get('EventBusName');
  if (Object.keys(queues).length === 0 || !state || !bus) {
    throw new CliError(
      `stack ${stack.StackName ?? ''} has no Stratus outputs (queue URLs, StateTableName, EventBusName)`.replace(
        '  ',
        ' ',
      ),
    );
  }
  const region = options.region ?? regionOf(Object.values(queues)[0]);
  if (!region) throw new CliError('cannot tell the stack region: set AWS_REGION');
  return {
    region,
    sqs: {
      endpoint: null,
      queues,
      dlqs,
      lifecycle: outputs.get('LifecycleQueueUrl') ?? null,
      lifecycle_dlq: outputs.get('LifecycleDeadLetterQueueUrl') ?? null,
    },
    dynamodb: {
      endpoint: null,
      tables: {
        state,
        ...(outputs.has('IdempotencyTableName')
          ? { idempotency: outputs.get('IdempotencyTableName') }
          : {}),
        fakeHypervisor: outputs.get('FakeHypervisorTableName') ?? null,
      },
    },
    eventbridge: { endpoint: null, bus },
    notifications_log: null,
  };
}
