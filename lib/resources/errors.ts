// The resource tracker's failures. A capacity failure is an answer, not a fault: it is never
// retried at the claim (the scheduler moves on to the next candidate instead). Lost races are
// retried inside the claim and surface only when they do not stop (then SQS redelivers).

import { ErrorCode, StratusError } from '../errors.ts';
import { NoValidHostError } from '../compute/node-selection.ts';

export { NoValidHostError };

/** Nova's ComputeResourcesUnavailable: "Insufficient compute resources: <reasons>". */
export class ComputeResourcesUnavailableError extends StratusError {
  readonly node: string;
  readonly reasons: readonly string[];

  constructor(node: string, reasons: readonly string[]) {
    super(
      // lib/errors.ts has no code of its own for it yet; see docs/resources.md.
      ErrorCode.BuildAbort,
      `Insufficient compute resources: ${reasons.join('; ')}.`,
    );
    this.name = 'ComputeResourcesUnavailable';
    this.node = node;
    this.reasons = reasons;
  }
}

export function isComputeResourcesUnavailable(e: unknown): e is ComputeResourcesUnavailableError {
  return e instanceof ComputeResourcesUnavailableError;
}

/** A claim's writes kept losing races (or were throttled) for longer than the retry budget. */
export class ClaimContentionError extends Error {
  constructor(what: string, attempts: number, options?: { cause?: unknown }) {
    super(`${what}: still contended after ${attempts} attempts`, options);
    // Named as DynamoDB's own conflict so callers (isRetryable) let SQS redeliver the command.
    this.name = 'TransactionConflictException';
  }
}

/** A claim that exists already but belongs to something else (another migration, say). */
export class ClaimConflictError extends StratusError {
  constructor(message: string) {
    super(ErrorCode.InstanceUpdateConflict, message);
    this.name = 'ClaimConflict';
  }
}
