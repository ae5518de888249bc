// How periodic tasks act: as Nova's periodic tasks call the compute API with an admin context,
// these send a command through the whole pipeline (executeCommand: Nova's API checks, the task
// CAS, notifications, outcome). Command ids are deterministic — the task, the instance and the
// record version the decision was made on — so two schedulers that make the same decision run
// one command, and a command whose state moved on is never re-sent under the same id.

import { parseCommand, requestIdForCommand } from '../../commands/parse.ts';
import type { Command } from '../../commands/schemas.ts';
import type { Operation } from '../../topology.ts';
import { type OperationHandler, type Sender, executeCommand } from '../executor.ts';
import type { Instance } from '../instance.ts';
import { OPERATION_HANDLERS } from '../operations/registry.ts';
import { CommandRuntime, type ComputeDeps } from '../runtime.ts';
import type { PeriodicTaskName } from './report.ts';

/** The requester periodic commands are recorded under (Nova's admin context has no user). */
export const PERIODIC_USER = 'stratus-periodic-tasks';

/**
 * The sender periodic commands present. It is trusted as an admin producer for these commands
 * only (see asPeriodicAdmin); SQS never reports such a SenderId, so no producer can borrow it.
 */
export const PERIODIC_SENDER: Sender = { senderId: 'stratus:periodic-tasks' };

export const PERIODIC_COMMAND_PREFIX = 'periodic:';

/** A handler as the registry holds it. */
export type RegisteredHandler = NonNullable<(typeof OPERATION_HANDLERS)[Operation]>;

/** `periodic:<task>:<instance>:v<version>`: one decision on one state of one instance. */
export function periodicCommandId(task: PeriodicTaskName, instance: Instance): string {
  return `${PERIODIC_COMMAND_PREFIX}${task}:${instance.instance_id}:v${instance.version}`;
}

export function isPeriodicCommandId(commandId: string | null): boolean {
  return commandId?.startsWith(PERIODIC_COMMAND_PREFIX) ?? false;
}

/** Deps whose admin producers include the periodic sender (never handed to anything else). */
function asPeriodicAdmin(deps: ComputeDeps): ComputeDeps {
  const producers = deps.config.admin_producers;
  if (producers.includes(PERIODIC_SENDER.senderId!)) return deps;
  return {
    ...deps,
    config: { ...deps.config, admin_producers: [...producers, PERIODIC_SENDER.senderId!] },
  };
}

/** The command a periodic task sends, validated exactly as one arriving on SQS would be. */
export function periodicCommand(
  commandId: string,
  operation: Operation,
  instance: Instance,
  args: Record<string, unknown> = {},
): Command {
  const parsed = parseCommand(
    JSON.stringify({
      version: 1,
      command_id: commandId,
      operation,
      context: { user_id: PERIODIC_USER, project_id: instance.project_id, roles: ['admin'] },
      instance_id: instance.instance_id,
      args,
    }),
    operation,
  );
  if (!parsed.ok) throw parsed.error;
  return parsed.command;
}

export interface PeriodicCommandRequest {
  task: PeriodicTaskName;
  commandId: string;
  operation: Operation;
  instance: Instance;
  args?: Record<string, unknown>;
  /** Adapts the registered handler (e.g. Nova's force_stop skips stop's vm_state check). */
  adapt?: (handler: RegisteredHandler) => RegisteredHandler;
}

/**
 * Runs one periodic command to its outcome; returns its status (`running` while it waits on a
 * lifecycle event), or `unavailable` when the operation is not implemented in this release.
 */
export async function runPeriodicCommand(
  deps: ComputeDeps,
  request: PeriodicCommandRequest,
): Promise<string> {
  const registered = OPERATION_HANDLERS[request.operation];
  if (!registered) {
    deps.logger.warn('periodic task skipped: its operation is not implemented yet', {
      task: request.task,
      operation: request.operation,
      instance_id: request.instance.instance_id,
    });
    return 'unavailable';
  }
  const handler = request.adapt ? request.adapt(registered) : registered;
  const command = periodicCommand(
    request.commandId,
    request.operation,
    request.instance,
    request.args,
  );
  deps.logger.info('periodic task sends a command', {
    task: request.task,
    operation: request.operation,
    command_id: command.command_id,
    instance_id: command.instance_id,
  });
  const { outcome } = await executeCommand(
    asPeriodicAdmin(deps),
    command,
    PERIODIC_SENDER,
    handler as OperationHandler,
  );
  return outcome?.status ?? 'running';
}

/**
 * A runtime for a write a periodic task makes on its own (no operation owns it: a power state
 * it records, a build it errors out that no command owns). Its action is created and finished
 * in that write, and carries the write's notifications.
 */
export function periodicRuntime(
  deps: ComputeDeps,
  task: PeriodicTaskName,
  instance: Instance,
): CommandRuntime {
  const commandId = periodicCommandId(task, instance);
  return new CommandRuntime(deps, {
    version: 1,
    command_id: commandId,
    // Not an operation of the contract: the runtime uses the name only in the outcome it records.
    operation: task as unknown as Operation,
    context: {
      user_id: PERIODIC_USER,
      project_id: instance.project_id,
      request_id: requestIdForCommand(commandId),
      roles: ['admin'],
    },
    instance_id: instance.instance_id,
    args: {} as Command['args'],
  });
}
