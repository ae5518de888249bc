// What an operation needs at run time, bound to one command: the ports, the clock, and helpers
// that build its notifications, record its outcome and deliver what it committed.

import type { Command } from '../commands/schemas.ts';
import type { Config } from '../config.ts';
import { truncateMessage } from '../errors.ts';
import { currentAuditPeriod } from '../notifications/audit-period.ts';
import {
  type ErrorNotificationAction,
  type Notification,
  describeError,
  errorNotification,
  existsNotification,
  instanceNotification,
} from '../notifications/notification.ts';
import type { NotificationPublisher } from '../notifications/publisher.ts';
import { updateNotification } from '../notifications/update.ts';
import type { ReplySender } from '../commands/reply.ts';
import {
  type ActionRecord,
  type ActionSubject,
  type InstanceFault,
  type Outcome,
  type StateStore,
} from '../store/state-store.ts';
import type { ComputeDriver } from '../virt/driver.ts';
import type { NodeStateStore } from '../store/node-state-store.ts';
import type { ImageStore } from '../images/image-store.ts';
import type { MigrationStore } from '../store/migration-store.ts';
import type { NodeStore } from '../resources/node-store.ts';
import type { FlavorCatalog } from './flavors.ts';
import type { Instance } from './instance.ts';

/** The logging port (Powertools' Logger satisfies it). Never pass command args: they may hold secrets. */
export interface Logger {
  info(message: string, ...extra: Record<string, unknown>[]): void;
  warn(message: string, ...extra: Record<string, unknown>[]): void;
  error(message: string, ...extra: Record<string, unknown>[]): void;
}

export interface ComputeDeps {
  config: Config;
  store: StateStore;
  driver: ComputeDriver;
  publisher: NotificationPublisher;
  replies: ReplySender;
  flavors: FlavorCatalog;
  clock: () => Date;
  logger: Logger;
  /** Nodes' enabled / maintenance flags (host operations, the scheduler). */
  nodeState?: NodeStateStore;
  /** Images made by snapshot, backup and shelve (Nova's Glance). */
  images?: ImageStore;
  /** Nova's Migration records (resize, cold and live migration). */
  migrations?: MigrationStore;
  /** Compute nodes' inventories, usage and resource claims (the resource tracker). */
  nodes?: NodeStore;
}

/** The subject an action is filed under (CONTRACT: instance operations under their instance). */
export function subjectOf(command: Command): ActionSubject {
  if (command.node !== undefined && command.instance_id === '')
    return { kind: 'node', id: command.node };
  return { kind: 'instance', id: command.instance_id };
}

/** A fresh running action for a command. */
export function newAction(command: Command, subject: ActionSubject, now: Date): ActionRecord {
  return {
    subject,
    command_id: command.command_id,
    operation: command.operation,
    instance_id: command.instance_id || null,
    request_id: command.context.request_id,
    user_id: command.context.user_id,
    project_id: command.context.project_id,
    status: 'running',
    error_code: null,
    outcome: null,
    start_time: now.toISOString(),
    finish_time: null,
    events: [],
    reply_to: command.reply_to ?? null,
    reply_sent: false,
    progress: {},
  };
}

export class CommandRuntime {
  readonly deps: ComputeDeps;
  readonly command: Command;
  readonly subject: ActionSubject;

  constructor(deps: ComputeDeps, command: Command) {
    this.deps = deps;
    this.command = command;
    this.subject = subjectOf(command);
  }

  get actionRef() {
    return { subject: this.subject, commandId: this.command.command_id };
  }

  now(): Date {
    return this.deps.clock();
  }

  /** `compute.instance.<suffix>` for this command. */
  notify(
    instance: Instance,
    suffix: string,
    opts: { extra?: Record<string, unknown>; includeFixedIps?: boolean } = {},
  ): Notification {
    return instanceNotification({
      instance,
      eventType: `compute.instance.${suffix}`,
      host: this.deps.config.host,
      commandId: this.command.command_id,
      requestId: this.command.context.request_id,
      now: this.now(),
      ...opts,
    });
  }

  /**
   * A mid-period `compute.instance.exists` (Nova's notify_usage_exists with current_period=True:
   * from the end of the last completed audit period until now), as rebuild, rescue, resize and
   * shelve send it. Its message_id is the natural key of CONTRACT §2.
   */
  notifyExists(instance: Instance, extra: Record<string, unknown> = {}): Notification {
    const now = this.now();
    return existsNotification({
      instance,
      period: currentAuditPeriod(this.deps.config.instance_usage_audit_period, now),
      host: this.deps.config.host,
      commandId: this.command.command_id,
      requestId: this.command.context.request_id,
      now,
      extra,
    });
  }

  notifyError(instance: Instance, action: ErrorNotificationAction, error: unknown): Notification {
    return errorNotification({
      instance,
      action,
      error,
      host: this.deps.config.host,
      commandId: this.command.command_id,
      requestId: this.command.context.request_id,
      now: this.now(),
    });
  }

  /** `compute.instance.update` for a save, under `notify_on_state_change` (none when off). */
  updates(old: Instance | null, next: Instance): Notification[] {
    const now = this.now();
    const n = updateNotification({
      mode: this.deps.config.notify_on_state_change,
      old,
      new: next,
      host: this.deps.config.host,
      commandId: this.command.command_id,
      requestId: this.command.context.request_id,
      now,
      auditPeriod: currentAuditPeriod(this.deps.config.instance_usage_audit_period, now),
    });
    return n ? [n] : [];
  }

  fault(instance: Instance, error: unknown): InstanceFault {
    const info = describeError(error);
    return {
      instance_id: instance.instance_id,
      command_id: this.command.command_id,
      code: info.code,
      message: truncateMessage(info.message),
      // Nova keeps a traceback for 500s; we keep the error class, never arguments (secrets).
      details: info.code === 500 ? info.exception : '',
      host: instance.host,
      created_at: this.now().toISOString(),
    };
  }

  outcome(
    status: Outcome['status'],
    error?: unknown,
    result?: unknown,
  ): Outcome & { error_code: string | null } {
    const info = error === undefined ? undefined : describeError(error);
    return {
      command_id: this.command.command_id,
      request_id: this.command.context.request_id,
      operation: this.command.operation,
      instance_id: this.command.instance_id || null,
      status,
      ...(info ? { error: { code: info.code, message: info.message } } : {}),
      ...(result !== undefined ? { result } : {}),
      error_code: info?.exception ?? null,
    };
  }
}

/**
 * Publishes what an action committed and, once it is final, answers reply_to. Safe to repeat:
 * message ids are deterministic, entries leave the outbox only after they were published, and
 * the reply is marked sent only after it was sent.
 */
/** How long a deliverer may take to send a reply before another may (SendMessage is ms). */
export const REPLY_CLAIM_MS = 30_000;

export async function deliverCommitted(
  deps: ComputeDeps,
  subject: ActionSubject,
  commandId: string,
): Promise<ActionRecord | null> {
  await publishPending(deps, subject, commandId);
  const action = await deps.store.getAction(subject, commandId);
  if (action?.outcome && action.reply_to && !action.reply_sent) {
    // Claimed first, so two deliverers of one command (its own run and a lifecycle event, say)
    // do not both send it; a claim whose holder died lapses, so the reply is never lost.
    const now = deps.clock();
    const until = new Date(now.getTime() + REPLY_CLAIM_MS);
    if (await deps.store.claimReply(subject, commandId, now, until)) {
      try {
        await deps.replies.send(action.reply_to, action.outcome);
      } catch (e) {
        await deps.store.claimReply(subject, commandId, now, null).catch(() => undefined);
        throw e;
      }
      await deps.store.markReplySent(subject, commandId);
    }
  }
  return action;
}

async function publishPending(
  deps: ComputeDeps,
  subject: ActionSubject,
  commandId?: string,
): Promise<void> {
  const pending = await deps.store.pendingNotifications(subject, commandId);
  if (pending.length === 0) return;
  await deps.publisher.publish(pending.map((e) => e.notification));
  await deps.store.clearOutbox(subject, pending);
}

/**
 * Delivers whatever any command left undelivered under a subject (outbox entries, replies of
 * finished actions): the catch-up path when the process that committed them died.
 */
export async function deliverAllPending(deps: ComputeDeps, subject: ActionSubject): Promise<void> {
  const pending = await deps.store.pendingNotifications(subject);
  const commands = new Set(pending.map((e) => e.commandId));
  if (subject.kind === 'instance') {
    for (const a of await deps.store.listActions(subject.id)) {
      if (a.outcome && a.reply_to && !a.reply_sent) commands.add(a.command_id);
    }
  }
  for (const commandId of commands) await deliverCommitted(deps, subject, commandId);
}
