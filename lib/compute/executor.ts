// Runs one validated command to exactly one outcome.
//
//   finished before?  → deliver what it committed (idempotent) and repeat its answer
//   new?              → authorize, check Nova's API preconditions; a failed check is `rejected`
//                       (nothing changed), otherwise start the action and perform it
//   started before?   → a redelivery after a crash: perform again; operations resume from the
//                       instance's task_state, which records which command owns it
//
// Operations raise StratusError from `prepare` to reject; `perform` records its own outcome
// (succeeded, failed with a fault, or pending on a lifecycle event).

import type { Command } from '../commands/schemas.ts';
import { ErrorCode, StratusError, isStratusError } from '../errors.ts';
import { apiFaultNotification, describeError } from '../notifications/notification.ts';
import type { ActionRecord, ActionSubject, Outcome } from '../store/state-store.ts';
import type { Operation } from '../topology.ts';
import type { LifecycleEvent } from '../virt/events.ts';
import { eventMessageId } from '../notifications/message-id.ts';
import { CommandRuntime, type ComputeDeps, deliverCommitted } from './runtime.ts';

/** Who sent the command, as SQS reports it (the message's SenderId attribute). */
export interface Sender {
  senderId: string | null;
}

export interface OperationHandler<P = unknown> {
  operation: Operation;
  /** Nova's API checks; read-only. Throw StratusError to reject. */
  prepare(rt: CommandRuntime, admin: boolean): Promise<P>;
  /** Creates the action (and whatever must be created with it). */
  start(rt: CommandRuntime, prepared: P): Promise<void>;
  /** Does the work, resuming from recorded state; records the outcome unless it is pending. */
  perform(rt: CommandRuntime): Promise<void>;
  /** Finishes a task left pending, from the driver's lifecycle event (same path as perform's finish). */
  complete?(rt: CommandRuntime, event: LifecycleEvent): Promise<void>;
  /**
   * The lifecycle event never came and the driver does not report the transition either: fail
   * the task by the operation's own failure rule (the sweeper calls this after the deadline).
   */
  abandon?(rt: CommandRuntime, error: StratusError): Promise<void>;
}

/** The error a task gets when its lifecycle event never came. */
export function lifecycleTimeout(instanceId: string, transition: string): StratusError {
  return new StratusError(
    ErrorCode.LifecycleTimeout,
    `Timed out waiting for instance ${instanceId} to report '${transition}'`,
  );
}

/** `admin` is honoured only from producers configured as admin producers (CONTRACT "Authorization"). */
export function isTrustedAdmin(
  command: Command,
  sender: Sender,
  adminProducers: readonly string[],
): boolean {
  if (!command.context.roles.includes('admin')) return false;
  const id = sender.senderId;
  if (!id) return false;
  // A role's SenderId is `<role id>:<session>`; configuring the role id trusts every session.
  return adminProducers.some((p) => id === p || id.startsWith(`${p}:`));
}

export type ExecutionResult = { outcome: Outcome | null; duplicate: boolean };

export async function executeCommand(
  deps: ComputeDeps,
  command: Command,
  sender: Sender,
  handler: OperationHandler,
): Promise<ExecutionResult> {
  const rt = new CommandRuntime(deps, command);
  const existing = await findAction(deps, command, rt.subject);
  if (existing && !sameCommand(existing, command)) {
    // Another command already owns this id. It must not run under that command's record (and
    // must not borrow its authorization), nor overwrite that record with its own rejection.
    return {
      outcome: await answerUnrecorded(deps, command, commandIdReused(command)),
      duplicate: false,
    };
  }
  if (existing && existing.status !== 'running') {
    const delivered = await deliverCommitted(deps, existing.subject, command.command_id);
    return { outcome: delivered?.outcome ?? existing.outcome, duplicate: true };
  }
  if (!existing) {
    try {
      const admin = isTrustedAdmin(command, sender, deps.config.admin_producers);
      if (command.context.roles.includes('admin') && !admin) {
        throw new StratusError(
          ErrorCode.Forbidden,
          'The admin role is not honoured from this producer',
        );
      }
      // `start` makes the command's first conditional write; if that write finds the state
      // moved on since `prepare` read it, nothing was changed and the command is rejected too.
      await handler.start(rt, await handler.prepare(rt, admin));
    } catch (e) {
      // A check that fails before anything changed is a rejection; that includes "the driver
      // cannot do this" (501). Other server errors are retried.
      if (!isStratusError(e) || (e.status >= 500 && e.code !== ErrorCode.NotSupported)) throw e;
      return { outcome: await rejectCommand(deps, command, e), duplicate: false };
    }
  }
  await handler.perform(rt);
  const action = await deliverCommitted(deps, rt.subject, command.command_id);
  return { outcome: action?.outcome ?? null, duplicate: false };
}

/** The stored action belongs to this command (same operation, target and requester). */
function sameCommand(action: ActionRecord, command: Command): boolean {
  return (
    action.operation === command.operation &&
    (action.instance_id ?? '') === command.instance_id &&
    action.project_id === command.context.project_id &&
    action.user_id === command.context.user_id
  );
}

function commandIdReused(command: Command): StratusError {
  return new StratusError(
    ErrorCode.CommandIdReused,
    `command_id ${command.command_id} already belongs to another command; use a new id`,
  );
}

/** A command's action lives under its instance, or under the command when it was rejected early. */
async function findAction(
  deps: ComputeDeps,
  command: Command,
  subject: ActionSubject,
): Promise<ActionRecord | null> {
  return (
    (await deps.store.getAction(subject, command.command_id)) ??
    (await deps.store.getAction({ kind: 'command', id: command.command_id }, command.command_id))
  );
}

type RejectableCommand = Pick<Command, 'command_id' | 'operation' | 'instance_id' | 'reply_to'> & {
  context: Pick<Command['context'], 'request_id'> & Partial<Command['context']>;
};

function rejectionOf(
  deps: ComputeDeps,
  command: RejectableCommand,
  error: StratusError,
  now: Date,
) {
  const info = describeError(error);
  const outcome: Outcome = {
    command_id: command.command_id,
    request_id: command.context.request_id,
    operation: command.operation,
    instance_id: command.instance_id || null,
    status: 'rejected',
    error: { code: info.code, message: info.message },
  };
  const notifications = deps.config.notify_api_faults
    ? [
        apiFaultNotification({
          host: deps.config.host,
          commandId: command.command_id,
          requestId: command.context.request_id,
          operation: command.operation,
          instanceId: command.instance_id || null,
          exception: info.exception,
          status: info.code,
          now,
        }),
      ]
    : [];
  return { outcome, notifications };
}

/**
 * Records a rejection in one write: an action that is final from the start (outcome `rejected`),
 * with its `api.fault` when enabled in the same commit; then answers reply_to. Filed under the
 * command, not the instance, so an instance's actions list shows only what ran on it.
 */
export async function rejectCommand(
  deps: ComputeDeps,
  command: RejectableCommand,
  error: StratusError,
): Promise<Outcome> {
  const now = deps.clock();
  const subject: ActionSubject = { kind: 'command', id: command.command_id };
  const { outcome, notifications } = rejectionOf(deps, command, error, now);
  const action: ActionRecord = {
    subject,
    command_id: command.command_id,
    operation: command.operation,
    instance_id: command.instance_id || null,
    request_id: command.context.request_id,
    user_id: command.context.user_id ?? null,
    project_id: command.context.project_id ?? null,
    status: 'rejected',
    error_code: error.code,
    outcome,
    start_time: now.toISOString(),
    finish_time: now.toISOString(),
    events: [],
    reply_to: command.reply_to ?? null,
    reply_sent: false,
    progress: {},
  };
  await deps.store.startAction(action, notifications);
  deps.logger.warn('command rejected', {
    command_id: command.command_id,
    operation: command.operation,
    error_code: error.code,
    reason: error.message,
  });
  const delivered = await deliverCommitted(deps, subject, command.command_id);
  return delivered?.outcome ?? outcome;
}

/**
 * Answers a command that cannot have a record of its own (its id is another command's): the
 * outcome goes to reply_to and, when enabled, an api.fault is published; nothing is stored.
 */
async function answerUnrecorded(
  deps: ComputeDeps,
  command: Command,
  error: StratusError,
): Promise<Outcome> {
  const { outcome, notifications } = rejectionOf(deps, command, error, deps.clock());
  // The api.fault's usual id is the taken command's: derive this one from what differs.
  const discriminator = `reused:${command.operation}:${command.instance_id}:${command.context.project_id}`;
  const faults = notifications.map((n) => ({
    ...n,
    message_id: eventMessageId(command.command_id, 'api.fault', discriminator),
  }));
  if (faults.length > 0) await deps.publisher.publish(faults);
  if (command.reply_to) await deps.replies.send(command.reply_to, outcome);
  deps.logger.warn('command rejected', {
    command_id: command.command_id,
    operation: command.operation,
    error_code: error.code,
  });
  return outcome;
}
