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
import { CommandRuntime, type ComputeDeps, deliverCommitted, newAction } from './runtime.ts';

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
  if (existing && existing.status !== 'running') {
    const delivered = await deliverCommitted(deps, existing.subject, command.command_id);
    return { outcome: delivered?.outcome ?? existing.outcome, duplicate: true };
  }
  if (!existing) {
    let prepared: unknown;
    try {
      if (
        command.context.roles.includes('admin') &&
        !isTrustedAdmin(command, sender, deps.config.admin_producers)
      ) {
        throw new StratusError(
          ErrorCode.Forbidden,
          'The admin role is not honoured from this producer',
        );
      }
      prepared = await handler.prepare(
        rt,
        isTrustedAdmin(command, sender, deps.config.admin_producers),
      );
    } catch (e) {
      if (!isStratusError(e)) throw e;
      return { outcome: await rejectCommand(deps, command, e), duplicate: false };
    }
    await handler.start(rt, prepared);
  }
  await handler.perform(rt);
  const action = await deliverCommitted(deps, rt.subject, command.command_id);
  return { outcome: action?.outcome ?? null, duplicate: false };
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

/**
 * Records a rejection: an action whose outcome is `rejected`, an `api.fault` when enabled, and the
 * answer to reply_to. The instance is not touched, so its actions list shows only what ran.
 */
export async function rejectCommand(
  deps: ComputeDeps,
  command: Pick<Command, 'command_id' | 'operation' | 'instance_id' | 'reply_to'> & {
    context: Pick<Command['context'], 'request_id'> & Partial<Command['context']>;
  },
  error: StratusError,
): Promise<Outcome> {
  const now = deps.clock();
  const subject: ActionSubject = { kind: 'command', id: command.command_id };
  const info = describeError(error);
  const outcome: Outcome = {
    command_id: command.command_id,
    request_id: command.context.request_id,
    operation: command.operation,
    instance_id: command.instance_id || null,
    status: 'rejected',
    error: { code: info.code, message: info.message },
  };
  const action: ActionRecord = {
    ...newAction(
      {
        ...command,
        version: 1,
        args: {},
        context: { user_id: '', project_id: '', roles: [], ...command.context },
      } as Command,
      subject,
      now,
    ),
    user_id: command.context.user_id ?? null,
    project_id: command.context.project_id ?? null,
  };
  const started = await deps.store.startAction(action);
  if (started.action.status === 'running') {
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
    await deps.store.recordOnAction(subject, command.command_id, {
      notifications,
      finish: { ...outcome, error_code: error.code },
    });
  }
  deps.logger.warn('command rejected', {
    command_id: command.command_id,
    operation: command.operation,
    error_code: error.code,
    reason: error.message,
  });
  const delivered = await deliverCommitted(deps, subject, command.command_id);
  return delivered?.outcome ?? outcome;
}
