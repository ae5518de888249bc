// Builds a command body (CONTRACT §1) and validates it with the very schemas the functions
// parse it with (lib/commands/schemas.ts), so a producer learns about a bad command before it
// is sent instead of from a `rejected` outcome. Errors name fields, never values: a secret in
// a bad field is never echoed.

import type * as z from 'zod/mini';
import { instanceIdForCommand } from '../commands/parse.ts';
import {
  ARGS_SCHEMAS,
  EnvelopeSchema,
  MAX_BODY_BYTES,
  envelopeRuleViolations,
} from '../commands/schemas.ts';
import { OPERATIONS, type Operation, isOperation } from '../topology.ts';

/** What a caller writes as args: optional and defaulted fields may be left out. */
export type ArgsInput<O extends Operation> = z.input<(typeof ARGS_SCHEMAS)[O]>;

/** Who sends the command (CONTRACT §1 `context`). */
export interface CommandContext {
  user_id: string;
  project_id: string;
  roles?: string[];
  request_id?: string;
}

/** The JSON body on the queue. */
export interface CommandBody {
  version: 1;
  command_id: string;
  operation: Operation;
  context: CommandContext;
  instance_id?: string;
  node?: string;
  args: Record<string, unknown>;
  reply_to?: string;
}

export interface CommandInput<O extends Operation = Operation> {
  /** Required for instance operations; optional for a build (then derived from the command id). */
  instanceId?: string;
  /** Host operations (`set_host_enabled`, `host_maintenance_mode`) only. */
  node?: string;
  args?: ArgsInput<O>;
  /** The idempotency key. Generated when absent; a retry of the same command MUST reuse it. */
  commandId?: string;
  /** An SQS queue URL that receives the outcome. */
  replyTo?: string;
}

export interface ValidationIssue {
  /** Dotted path in the body, e.g. `args.reboot_type`, `instance_id`, `context.user_id`. */
  field: string;
  message: string;
}

/** A command that would be rejected: nothing was sent. */
export class CommandValidationError extends Error {
  readonly operation: string;
  readonly issues: readonly ValidationIssue[];

  constructor(operation: string, issues: readonly ValidationIssue[]) {
    super(
      `invalid ${operation} command: ${issues.map((i) => `${i.field}: ${i.message}`).join('; ')}`,
    );
    this.name = 'CommandValidationError';
    this.operation = operation;
    this.issues = issues;
  }

  /** The fields at fault, e.g. `['args.reboot_type']`. */
  get fields(): string[] {
    return [...new Set(this.issues.map((i) => i.field))];
  }
}

function issuesOf(
  issues: readonly { path: readonly PropertyKey[]; message: string }[],
  prefix: string,
): ValidationIssue[] {
  return issues.map((i) => ({
    field: [prefix, ...i.path.map(String)].filter((p) => p !== '').join('.') || '(body)',
    message: i.message,
  }));
}

/** A fresh idempotency key. */
export function newCommandId(): string {
  return crypto.randomUUID();
}

/**
 * The validated body of one command, and the instance it addresses (for a build without an
 * instance id, the id the functions will derive from the command id).
 * Throws CommandValidationError naming every field at fault.
 */
export function buildCommandBody<O extends Operation>(
  operation: O,
  input: CommandInput<O>,
  context: CommandContext,
): { body: CommandBody; instanceId: string | null } {
  if (!isOperation(operation)) {
    throw new CommandValidationError(String(operation), [
      { field: 'operation', message: `must be one of ${OPERATIONS.join(', ')}` },
    ]);
  }
  const commandId = input.commandId ?? newCommandId();
  const body: CommandBody = {
    version: 1,
    command_id: commandId,
    operation,
    context: {
      user_id: context.user_id,
      project_id: context.project_id,
      ...(context.roles !== undefined ? { roles: context.roles } : {}),
      ...(context.request_id !== undefined ? { request_id: context.request_id } : {}),
    },
    ...(input.instanceId !== undefined ? { instance_id: input.instanceId } : {}),
    ...(input.node !== undefined ? { node: input.node } : {}),
    args: (input.args ?? {}) as Record<string, unknown>,
    ...(input.replyTo !== undefined ? { reply_to: input.replyTo } : {}),
  };

  const issues: ValidationIssue[] = [];
  const envelope = EnvelopeSchema.safeParse(body);
  if (!envelope.success) {
    issues.push(...issuesOf(envelope.error.issues, ''));
  } else {
    for (const violation of envelopeRuleViolations(envelope.data)) {
      const at = violation.indexOf(': ');
      issues.push(
        at > 0
          ? { field: violation.slice(0, at), message: violation.slice(at + 2) }
          : { field: '(body)', message: violation },
      );
    }
  }
  const args = ARGS_SCHEMAS[operation].safeParse(body.args);
  if (!args.success) issues.push(...issuesOf(args.error.issues, 'args'));
  if (issues.length === 0 && Buffer.byteLength(JSON.stringify(body)) > MAX_BODY_BYTES) {
    issues.push({ field: '(body)', message: `larger than ${MAX_BODY_BYTES} bytes` });
  }
  if (issues.length > 0) throw new CommandValidationError(operation, issues);

  const instanceId =
    body.instance_id ??
    (operation === 'build_and_run_instance' ? instanceIdForCommand(commandId) : null);
  return { body, instanceId };
}
