// The state store port: instances, instance actions (one per command, Nova's
// InstanceAction + events), instance faults, and each command's notification outbox.
//
// Every instance write is a read-check-write loop: read, check Nova's expectations, write
// conditionally on the version read. A lost race re-reads and re-checks, exactly like Nova's
// `_retry_instance_update`; a write that no longer matches its expectation raises the typed
// conflict. The instance write, the action's outbox entries, its events and a fault commit
// together or not at all, so a crash can never leave state changed but its events unrecorded.

import type { Expectation } from '../compute/expectations.ts';
import type { Instance, InstanceChanges } from '../compute/instance.ts';
import type { Notification } from '../notifications/notification.ts';
import type { Operation } from '../topology.ts';

export type OutcomeStatus = 'succeeded' | 'failed' | 'rejected';
export type ActionStatus = 'running' | OutcomeStatus;

/** CONTRACT §1 "Outcome". */
export interface Outcome {
  command_id: string;
  request_id: string;
  operation: string;
  instance_id: string | null;
  status: OutcomeStatus;
  error?: { code: number; message: string };
  result?: unknown;
}

/** Nova's InstanceActionEvent (`compute_<method>` with start/finish and a result). */
export interface ActionEvent {
  event: string;
  start_time: string;
  finish_time: string | null;
  result: 'Success' | 'Error' | null;
  details?: string;
}

/**
 * A notification committed with a state change and not yet confirmed published. Each is its own
 * item (next to its action), so a command's notifications never grow one item past its limit.
 */
export interface OutboxEntry {
  commandId: string;
  seq: number;
  notification: Notification;
}

/**
 * Where an action lives: under its instance (`inst#<id>`), its node (`node#<name>`) or, for a
 * command that names nothing that exists, under the command itself (`cmd#<id>`).
 */
export interface ActionSubject {
  kind: 'instance' | 'node' | 'command';
  id: string;
}

export interface ActionRecord {
  subject: ActionSubject;
  command_id: string;
  operation: Operation | string;
  instance_id: string | null;
  request_id: string;
  user_id: string | null;
  project_id: string | null;
  status: ActionStatus;
  /** Machine-readable ErrorCode name (operators alert on it); the outcome carries code+message. */
  error_code: string | null;
  outcome: Outcome | null;
  start_time: string;
  finish_time: string | null;
  events: ActionEvent[];
  reply_to: string | null;
  reply_sent: boolean;
  /** Per-command data that must survive a crash (e.g. a pending driver task's deadline). */
  progress: Record<string, string | number | boolean | null>;
  /** While the command waits on a lifecycle event: when the sweeper may give up (ISO). */
  wait_until?: string | null;
}

/** Starts (`{ until }`) or ends (`null`) an action's wait on a lifecycle event. */
export type WaitUpdate = { until: string } | null;

/** Nova's InstanceFault. */
export interface InstanceFault {
  instance_id: string;
  command_id: string;
  code: number;
  message: string;
  details: string;
  host: string | null;
  created_at: string;
}

export interface InstanceWrite {
  instanceId: string;
  /** The action that performs this write (its outbox receives the notifications). */
  action: { subject: ActionSubject; commandId: string };
  /** Creates that action in the same commit (a command's first write starts its action). */
  startAction?: ActionRecord;
  expect: Expectation;
  /** Absolute new values, or a function of the current record (evaluated on every retry). */
  changes: InstanceChanges | ((current: Instance) => InstanceChanges);
  /** Notifications to commit with the write, built from the old and new record. */
  notifications?: (old: Instance, next: Instance) => Notification[];
  fault?: InstanceFault;
  event?: ActionEvent;
  /** Finish the action in the same commit (its final state write). */
  finish?: Outcome & { error_code?: string | null };
  progress?: ActionRecord['progress'];
  wait?: WaitUpdate;
  now: Date;
}

export interface WriteResult {
  old: Instance;
  new: Instance;
  /** False when nothing changed (no write, no notifications: Nova's save() is a no-op). */
  written: boolean;
}

export interface StateStore {
  getInstance(instanceId: string): Promise<Instance | null>;
  /** Creates the instance and its building action together; `existing` when the id is taken. */
  createInstance(
    instance: Instance,
    action: ActionRecord,
    notifications: Notification[],
  ): Promise<{ created: true } | { created: false; existing: Instance }>;
  updateInstance(write: InstanceWrite): Promise<WriteResult>;

  getAction(subject: ActionSubject, commandId: string): Promise<ActionRecord | null>;
  /**
   * Creates the action unless it exists (with its first notifications); returns the stored one
   * either way. An action created final (a rejection) is complete in this one write.
   */
  startAction(
    action: ActionRecord,
    notifications?: Notification[],
  ): Promise<{ created: boolean; action: ActionRecord }>;
  /** Adds notifications / an event / progress to a running action without an instance write. */
  recordOnAction(
    subject: ActionSubject,
    commandId: string,
    update: {
      notifications?: Notification[];
      event?: ActionEvent;
      progress?: ActionRecord['progress'];
      finish?: Outcome & { error_code?: string | null };
      wait?: WaitUpdate;
    },
  ): Promise<ActionRecord>;
  /** Committed, unpublished notifications under a subject (of one command, or all), in order. */
  pendingNotifications(subject: ActionSubject, commandId?: string): Promise<OutboxEntry[]>;
  /** Removes published entries from the outbox. */
  clearOutbox(subject: ActionSubject, entries: readonly OutboxEntry[]): Promise<void>;
  markReplySent(subject: ActionSubject, commandId: string): Promise<void>;
  /**
   * Takes the right to send the action's reply until `until` (two deliverers of one finished
   * command, such as its own run and a lifecycle event, must not both send it). False when the
   * reply was sent, or another deliverer holds an unexpired claim. A claim that lapses (its
   * holder died before sending) can be taken again, so a reply is never lost.
   */
  claimReply(
    subject: ActionSubject,
    commandId: string,
    now: Date,
    until: Date | null,
  ): Promise<boolean>;

  listActions(instanceId: string): Promise<ActionRecord[]>;
  /**
   * Every instance record in a usage-audit shard (lib/audit/shards.ts): a node's name lists
   * the instances on it, deleted ones included until the audit retires them.
   */
  listInstancesByNode(shard: string): Promise<Instance[]>;
  /** The same records a page at a time (DynamoDB's 1 MB pages), for shards of any size. */
  shardPages(shard: string): AsyncIterable<Instance[]>;
  /**
   * Takes a record out of its audit shard listing (it can be active in no period the audit
   * will run again), if it is still at `version`. False when it changed since.
   */
  retireFromAudit(instanceId: string, version: number): Promise<boolean>;
  /** Running actions waiting on a lifecycle event whose deadline is at or before `until`. */
  listWaitingActions(until: Date): Promise<ActionRecord[]>;
  listFaults(instanceId: string): Promise<InstanceFault[]>;
  /** Looks an action up by command id alone (eventually consistent; for people, not logic). */
  findActionByCommand(commandId: string): Promise<ActionRecord | null>;
}

export function subjectKey(subject: ActionSubject): string {
  const prefix = { instance: 'inst', node: 'node', command: 'cmd' }[subject.kind];
  return `${prefix}#${subject.id}`;
}

/** Applies changes to a record, producing the next version. */
export function applyChanges(current: Instance, changes: InstanceChanges, now: Date): Instance {
  return { ...current, ...changes, updated_at: now.toISOString(), version: current.version + 1 };
}

/** An action after an update (event, progress, final outcome): the twin and inline starts use it. */
export function applyActionUpdate(
  action: ActionRecord,
  update: {
    event?: ActionEvent;
    progress?: ActionRecord['progress'];
    finish?: InstanceWrite['finish'];
    wait?: WaitUpdate;
  },
  now: Date,
): ActionRecord {
  const next: ActionRecord = {
    ...action,
    events: update.event ? [...action.events, update.event] : action.events,
    progress: { ...action.progress, ...update.progress },
  };
  if (update.wait !== undefined) next.wait_until = update.wait?.until ?? null;
  // A finished command waits for nothing.
  if (update.finish) next.wait_until = null;
  if (update.finish) {
    const { error_code, ...outcome } = update.finish;
    next.status = outcome.status;
    next.outcome = outcome;
    next.error_code = error_code ?? null;
    next.finish_time = now.toISOString();
  }
  return next;
}
