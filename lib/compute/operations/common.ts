// Pieces every operation shares: the driver context of a command, lifecycle waits, and which
// errors are infrastructure faults (retried by SQS) rather than operation failures.

import {
  ErrorCode,
  type StratusError,
  type UnexpectedTaskStateError,
  isStratusError,
} from '../../errors.ts';
import type { ActionEvent } from '../../store/state-store.ts';
import type { Instance } from '../instance.ts';
import { type CommandRuntime, deliverCommitted } from '../runtime.ts';
import { PowerState } from '../states.ts';

/** The lifecycle transition a task waits for (progress key on its action). */
export const PROGRESS_PENDING_EXPECT = 'pending_expect';
export const PROGRESS_PENDING_SINCE = 'pending_since';
/** How long a task waits for its lifecycle event when the driver names no deadline. */
export const DEFAULT_WAIT_SECONDS = 900;
/** Clears a pending marker when the task finishes. */
export const NOTHING_PENDING = {
  [PROGRESS_PENDING_EXPECT]: null,
  [PROGRESS_PENDING_SINCE]: null,
};

export function driverContext(rt: CommandRuntime) {
  return { commandId: rt.command.command_id, requestId: rt.command.context.request_id };
}

/**
 * Records which lifecycle transition this command's task waits for, and since when, so the
 * lifecycle handler completes it and ignores events older than the wait.
 */
export async function expectLifecycle(
  rt: CommandRuntime,
  transition: string,
  deadlineSeconds = DEFAULT_WAIT_SECONDS,
): Promise<void> {
  const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
  // A redelivered command asks the driver again; the wait began with the first ask, and an
  // event from between the two asks is still the one it waits for.
  if (action?.progress[PROGRESS_PENDING_EXPECT] === transition) return;
  const now = rt.now();
  await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
    progress: {
      [PROGRESS_PENDING_EXPECT]: transition,
      [PROGRESS_PENDING_SINCE]: now.toISOString(),
    },
    // Until the driver says how long it needs, the sweeper waits the default.
    wait: { until: new Date(now.getTime() + deadlineSeconds * 1000).toISOString() },
  });
}

/** The driver answered "pending, finished within N seconds": the sweeper's deadline. */
export async function waitForDriver(rt: CommandRuntime, deadlineSeconds: number): Promise<void> {
  const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
  const since = action?.progress[PROGRESS_PENDING_SINCE];
  const start = typeof since === 'string' ? new Date(since) : rt.now();
  await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
    wait: { until: new Date(start.getTime() + deadlineSeconds * 1000).toISOString() },
  });
}

const RETRYABLE_ERRORS = new Set([
  'ThrottlingException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'TransactionConflictException',
  'InternalServerError',
  'InternalFailure',
  'ServiceUnavailable',
  'TimeoutError',
  'RequestTimeout',
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'NotificationPublishError',
]);

/**
 * Infrastructure faults (throttling, timeouts, 5xx, network) are retried by SQS; they are not
 * build failures. A 4xx from a service (e.g. a ValidationException) would fail the same way
 * again, so it is not retried: it fails the build with its message.
 */
export function isRetryable(e: unknown): boolean {
  if (isStratusError(e)) return false;
  const err = e as {
    name?: string;
    code?: string;
    $metadata?: { httpStatusCode?: number };
    retryable?: boolean;
  };
  if (err.name === 'NotificationPublishError') return err.retryable !== false;
  if (err.name === 'TransactionCanceledException') {
    // Lost races the store could not settle in its own retries; anything else (a
    // ValidationError, an item too large) is permanent.
    const reasons = (
      (e as { CancellationReasons?: { Code?: string }[] }).CancellationReasons ?? []
    ).map((r) => r.Code ?? 'None');
    return reasons.every((r) =>
      ['None', 'ConditionalCheckFailed', 'TransactionConflict', 'ThrottlingError'].includes(r),
    );
  }
  if (RETRYABLE_ERRORS.has(err.name ?? '') || RETRYABLE_ERRORS.has(err.code ?? '')) return true;
  return (err.$metadata?.httpStatusCode ?? 0) >= 500;
}

/** For writes to an action that a racing lifecycle event may already have finished. */
export function ignoreFinished(e: unknown): void {
  if (!(isStratusError(e) && e.status === 409)) throw e;
}

/** An instance action event (Nova's `compute_<method>` / `api_<method>`) that ran now. */
export function actionEvent(
  rt: CommandRuntime,
  event: string,
  result: 'Success' | 'Error',
): ActionEvent {
  const now = rt.now().toISOString();
  return { event, start_time: now, finish_time: now, result };
}

/** Nova's _get_power_state: the driver's view, NOSTATE for a guest it does not know. */
export async function currentPowerState(
  rt: CommandRuntime,
  instance: Instance,
): Promise<PowerState> {
  try {
    return (await rt.deps.driver.getInfo(driverContext(rt), instance)).state;
  } catch (e) {
    if (isStratusError(e) && e.code === ErrorCode.InstanceNotFound) return PowerState.NOSTATE;
    throw e;
  }
}

/** This command lost its task to another (a delete, a hard reboot): it is over, quietly. */
export async function endAsPreempted(
  rt: CommandRuntime,
  error: UnexpectedTaskStateError,
): Promise<void> {
  await rt.deps.store
    .recordOnAction(rt.subject, rt.command.command_id, { finish: rt.outcome('failed', error) })
    // It was already ended by the command that took its task.
    .catch(ignoreFinished);
}

/**
 * Ends the command whose task this one took (a delete, a hard reboot, a soft delete took it),
 * which would otherwise stay running forever when it waits for a lifecycle event that now
 * never finishes it. If it finished meanwhile, nothing changes.
 */
export async function endPreemptedCommand(
  rt: CommandRuntime,
  commandId: string,
  error: StratusError,
  message: string,
): Promise<void> {
  const subject = { kind: 'instance' as const, id: rt.command.instance_id };
  const other = await rt.deps.store.getAction(subject, commandId);
  if (!other || other.status !== 'running') return;
  try {
    await rt.deps.store.recordOnAction(subject, commandId, {
      finish: {
        command_id: commandId,
        request_id: other.request_id,
        operation: other.operation,
        instance_id: other.instance_id,
        status: 'failed',
        error: { code: error.status, message },
        error_code: error.code,
      },
    });
  } catch (e) {
    ignoreFinished(e);
    return; // it finished first
  }
  await deliverCommitted(rt.deps, subject, commandId);
}
