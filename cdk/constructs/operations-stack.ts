// CloudFormation allows 500 resources per stack and one operation pipeline is about 15, so the
// ~40 operations of the contract live in nested stacks of at most OPERATIONS_PER_NESTED_STACK.

import { NestedStack } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { OPERATIONS, type Operation } from '../../lib/topology.ts';
import { OperationPipeline, type OperationPipelineProps } from './operation-pipeline.ts';

export const OPERATIONS_PER_NESTED_STACK = 8;

export interface OperationChunk {
  /** Construct id of the nested stack, e.g. `Operations1`. */
  readonly id: string;
  readonly operations: readonly Operation[];
}

/**
 * Groups operations into nested stacks by their position in the contract's fixed OPERATIONS list,
 * not by position among the implemented ones. A queue has a fixed physical name, so it can never
 * move to another stack (CloudFormation would create the new one before deleting the old, and the
 * name collides); slot-by-contract-position keeps every operation in the same nested stack no
 * matter which others are implemented. Within a chunk, the given order is kept.
 */
export function operationChunks(operations: readonly Operation[]): OperationChunk[] {
  if (new Set(operations).size !== operations.length) {
    throw new Error(`Operations listed twice: ${operations.join(', ')}`);
  }
  const chunks = new Map<number, Operation[]>();
  for (const operation of operations) {
    if (!OPERATIONS.includes(operation)) throw new Error(`Unknown operation: ${operation}`);
    const slot = Math.floor(OPERATIONS.indexOf(operation) / OPERATIONS_PER_NESTED_STACK);
    chunks.set(slot, [...(chunks.get(slot) ?? []), operation]);
  }
  return [...chunks.entries()]
    .sort(([a], [b]) => a - b)
    .map(([slot, ops]) => ({ id: `Operations${slot + 1}`, operations: ops }));
}

export interface OperationsStackProps {
  readonly operations: readonly Operation[];
  /** Everything a pipeline needs but its operation and settings. */
  readonly pipeline: Omit<OperationPipelineProps, 'operation' | 'settings'>;
  readonly settingsOf: (operation: Operation) => OperationPipelineProps['settings'];
}

export class OperationsStack extends NestedStack {
  readonly pipelines: readonly OperationPipeline[];

  constructor(scope: Construct, id: string, props: OperationsStackProps) {
    super(scope, id, { description: `Stratus command pipelines: ${props.operations.join(', ')}` });
    this.pipelines = props.operations.map(
      (operation) =>
        new OperationPipeline(this, pascalCase(operation), {
          ...props.pipeline,
          operation,
          settings: props.settingsOf(operation),
        }),
    );
  }
}

/** `build_and_run_instance` → `BuildAndRunInstance`: construct ids and output names. */
export function pascalCase(operation: Operation): string {
  return operation
    .split('_')
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join('');
}
