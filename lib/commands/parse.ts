// Turns an SQS message body into a validated Command, or into a specific rejection that says
// exactly what is wrong. Nothing here touches state: a bad command changes nothing.

import type { z } from 'zod';
import { ErrorCode, StratusError } from '../errors.ts';
import { uuidv5 } from '../notifications/message-id.ts';
import type { Operation } from '../topology.ts';
import {
  ARGS_SCHEMAS,
  type Command,
  EnvelopeSchema,
  MAX_BODY_BYTES,
  SQS_QUEUE_URL,
  envelopeRuleViolations,
} from './schemas.ts';

/** What could be salvaged from a rejected body, so the rejection can still be answered. */
export interface SalvagedFields {
  command_id?: string;
  instance_id?: string;
  reply_to?: string;
  request_id?: string;
  operation?: string;
}

export type ParseResult =
  { ok: true; command: Command } | { ok: false; error: StratusError; salvaged: SalvagedFields };

// Fixed namespaces so that derived ids are stable across deliveries, deployments and releases.
const INSTANCE_ID_NAMESPACE = '6f1c1a52-3c64-5b0e-9a43-5d7b0a3c2e11';
const REQUEST_ID_NAMESPACE = 'b9a0e3f4-7d2c-5e8a-8f61-2c4d9e7a1b30';

/** build_and_run_instance without instance_id: the id is derived from command_id (CONTRACT §1). */
export function instanceIdForCommand(commandId: string): string {
  return uuidv5(commandId, INSTANCE_ID_NAMESPACE);
}

/** A missing request_id is derived, not random, so every delivery of a command reports the same one. */
export function requestIdForCommand(commandId: string): string {
  return `req-${uuidv5(commandId, REQUEST_ID_NAMESPACE)}`;
}

function describeIssues(issues: readonly z.core.$ZodIssue[], prefix = ''): string {
  return issues
    .map((issue) => {
      const path = [prefix, ...issue.path.map(String)].filter((p) => p !== '').join('.');
      return `${path || '(body)'}: ${issue.message}`;
    })
    .join('; ');
}

function salvage(raw: unknown): SalvagedFields {
  if (typeof raw !== 'object' || raw === null) return {};
  const r = raw as Record<string, unknown>;
  const pick = (v: unknown, pattern: RegExp): string | undefined =>
    typeof v === 'string' && pattern.test(v) ? v : undefined;
  const context = typeof r.context === 'object' && r.context !== null ? r.context : {};
  return {
    command_id: pick(r.command_id, /^[A-Za-z0-9._:-]{1,128}$/),
    instance_id: pick(r.instance_id, /^[0-9a-f-]{36}$/i),
    reply_to: pick(r.reply_to, SQS_QUEUE_URL),
    request_id: pick((context as Record<string, unknown>).request_id, /^.{1,255}$/),
    operation: pick(r.operation, /^[a-z_]{1,64}$/),
  };
}

function reject(code: ErrorCode, message: string, raw: unknown): ParseResult {
  return { ok: false, error: new StratusError(code, message), salvaged: salvage(raw) };
}

/**
 * Parses and validates one command body for the queue of `queueOperation`.
 * Secrets in args are validated but never echoed: messages name fields, not values.
 */
export function parseCommand(body: string, queueOperation: Operation): ParseResult {
  if (Buffer.byteLength(body, 'utf8') > MAX_BODY_BYTES) {
    return reject(ErrorCode.InvalidCommand, `body: larger than ${MAX_BODY_BYTES} bytes`, undefined);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    return reject(ErrorCode.MalformedJson, 'body: not valid JSON', undefined);
  }
  const envelope = EnvelopeSchema.safeParse(raw);
  if (!envelope.success) {
    return reject(ErrorCode.InvalidCommand, describeIssues(envelope.error.issues), raw);
  }
  const e = envelope.data;
  if (e.operation !== queueOperation) {
    return reject(
      ErrorCode.WrongQueue,
      `operation: ${e.operation} was sent to the ${queueOperation} queue`,
      raw,
    );
  }
  const ruleViolations = envelopeRuleViolations(e);
  if (ruleViolations.length > 0) {
    return reject(ErrorCode.InvalidCommand, ruleViolations.join('; '), raw);
  }
  const args = ARGS_SCHEMAS[e.operation].safeParse(e.args);
  if (!args.success) {
    return reject(ErrorCode.InvalidCommand, describeIssues(args.error.issues, 'args'), raw);
  }
  const instanceId =
    e.instance_id ??
    (e.operation === 'build_and_run_instance' ? instanceIdForCommand(e.command_id) : '');
  const command: Command = {
    version: 1,
    command_id: e.command_id,
    operation: e.operation,
    context: {
      user_id: e.context.user_id,
      project_id: e.context.project_id,
      request_id: e.context.request_id ?? requestIdForCommand(e.command_id),
      roles: e.context.roles,
    },
    instance_id: instanceId,
    args: args.data as Command['args'],
    ...(e.node !== undefined ? { node: e.node } : {}),
    ...(e.reply_to !== undefined ? { reply_to: e.reply_to } : {}),
  };
  return { ok: true, command };
}
