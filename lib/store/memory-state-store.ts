// The in-memory twin of DynamoDbStateStore: same semantics (expectations, versions, atomic
// commits, running-only actions, ordered outbox), no I/O. Domain tests use it; the contract
// suite in test/integration/state-store.test.ts runs both against the same scenarios.

import { assertExpectation, changedFields } from '../compute/expectations.ts';
import type { Instance } from '../compute/instance.ts';
import { ErrorCode, InstanceNotFoundError, StratusError } from '../errors.ts';
import type { Notification } from '../notifications/notification.ts';
import { auditShardKey } from '../audit/shards.ts';
import { nextOutboxSeq } from './outbox-seq.ts';
import {
  type ActionRecord,
  type ActionSubject,
  type InstanceFault,
  type InstanceWrite,
  type OutboxEntry,
  type StateStore,
  type WriteResult,
  applyActionUpdate,
  applyChanges,
  subjectKey,
} from './state-store.ts';

const clone = <T>(v: T): T => structuredClone(v);

export class InMemoryStateStore implements StateStore {
  private readonly instances = new Map<string, Instance>();
  private readonly actions = new Map<string, ActionRecord>();
  private readonly outbox = new Map<string, OutboxEntry[]>();
  private readonly faults: InstanceFault[] = [];
  /** Who may send an action's reply until when (claimReply), by action key. */
  private readonly replyClaims = new Map<string, string>();
  /** Records out of their audit shard listing (the index key removed), until written again. */
  private readonly retired = new Set<string>();

  private key(subject: ActionSubject, commandId: string): string {
    return `${subjectKey(subject)}|${commandId}`;
  }

  private enqueue(subject: ActionSubject, commandId: string, notifications: Notification[]): void {
    const list = this.outbox.get(subjectKey(subject)) ?? [];
    for (const n of notifications)
      list.push({ commandId, seq: nextOutboxSeq(), notification: clone(n) });
    this.outbox.set(subjectKey(subject), list);
  }

  async getInstance(instanceId: string): Promise<Instance | null> {
    const i = this.instances.get(instanceId);
    return i ? clone(i) : null;
  }

  async createInstance(instance: Instance, action: ActionRecord, notifications: Notification[]) {
    const existing = this.instances.get(instance.instance_id);
    if (existing) return { created: false as const, existing: clone(existing) };
    const key = this.key(action.subject, action.command_id);
    if (this.actions.has(key)) {
      throw new StratusError(
        ErrorCode.InstanceUpdateConflict,
        `Action ${action.command_id} already exists`,
      );
    }
    this.instances.set(instance.instance_id, clone(instance));
    this.actions.set(key, clone(action));
    this.enqueue(action.subject, action.command_id, notifications);
    return { created: true as const };
  }

  async updateInstance(write: InstanceWrite): Promise<WriteResult> {
    const { subject, commandId } = write.action;
    const current = this.instances.get(write.instanceId);
    if (!current) throw new InstanceNotFoundError(write.instanceId);
    assertExpectation(current, write.expect);
    const changes =
      typeof write.changes === 'function' ? write.changes(clone(current)) : write.changes;
    const next = applyChanges(current, changes, write.now);
    const written = changedFields(current, next).length > 0;
    const notifications =
      written && write.notifications ? write.notifications(clone(current), clone(next)) : [];
    const touchesAction = Boolean(
      write.startAction ||
      notifications.length > 0 ||
      write.event ||
      write.finish ||
      write.progress ||
      write.fault,
    );
    if (!written && !touchesAction)
      return { old: clone(current), new: clone(current), written: false };
    // Check every condition before changing anything: the commit is all or nothing.
    const key = this.key(subject, commandId);
    if (write.startAction && this.actions.has(key)) {
      throw new StratusError(
        ErrorCode.InstanceUpdateConflict,
        `Action ${commandId} already exists`,
      );
    }
    if (touchesAction && !write.startAction) this.runningAction(subject, commandId);
    if (written) {
      this.instances.set(next.instance_id, clone(next));
      this.retired.delete(next.instance_id);
    }
    if (touchesAction) {
      const base = write.startAction ?? (this.actions.get(key) as ActionRecord);
      this.actions.set(key, clone(applyActionUpdate(base, write, write.now)));
    }
    this.enqueue(subject, commandId, notifications);
    if (write.fault) this.faults.push(clone(write.fault));
    return written
      ? { old: clone(current), new: clone(next), written }
      : { old: clone(current), new: clone(current), written };
  }

  async getAction(subject: ActionSubject, commandId: string): Promise<ActionRecord | null> {
    const a = this.actions.get(this.key(subject, commandId));
    return a ? clone(a) : null;
  }

  async startAction(action: ActionRecord, notifications: Notification[] = []) {
    const key = this.key(action.subject, action.command_id);
    const existing = this.actions.get(key);
    if (existing) return { created: false, action: clone(existing) };
    this.actions.set(key, clone(action));
    this.enqueue(action.subject, action.command_id, notifications);
    return { created: true, action: clone(action) };
  }

  async recordOnAction(
    subject: ActionSubject,
    commandId: string,
    update: Parameters<StateStore['recordOnAction']>[2],
  ) {
    const a = this.runningAction(subject, commandId);
    const next = applyActionUpdate(a, update, new Date());
    this.actions.set(this.key(subject, commandId), next);
    this.enqueue(subject, commandId, update.notifications ?? []);
    return clone(next);
  }

  async pendingNotifications(subject: ActionSubject, commandId?: string): Promise<OutboxEntry[]> {
    return (this.outbox.get(subjectKey(subject)) ?? [])
      .filter((e) => commandId === undefined || e.commandId === commandId)
      .sort((a, b) => a.commandId.localeCompare(b.commandId) || a.seq - b.seq)
      .map(clone);
  }

  async clearOutbox(subject: ActionSubject, entries: readonly OutboxEntry[]): Promise<void> {
    const gone = new Set(entries.map((e) => `${e.commandId}|${e.seq}`));
    const list = this.outbox.get(subjectKey(subject)) ?? [];
    this.outbox.set(
      subjectKey(subject),
      list.filter((e) => !gone.has(`${e.commandId}|${e.seq}`)),
    );
  }

  async markReplySent(subject: ActionSubject, commandId: string): Promise<void> {
    const a = this.actions.get(this.key(subject, commandId));
    if (a) a.reply_sent = true;
  }

  async claimReply(
    subject: ActionSubject,
    commandId: string,
    now: Date,
    until: Date | null,
  ): Promise<boolean> {
    const key = this.key(subject, commandId);
    const a = this.actions.get(key);
    if (!a) return false;
    if (until === null) {
      this.replyClaims.delete(key);
      return true;
    }
    const held = this.replyClaims.get(key);
    if (a.reply_sent || (held !== undefined && held >= now.toISOString())) return false;
    this.replyClaims.set(key, until.toISOString());
    return true;
  }

  async listActions(instanceId: string): Promise<ActionRecord[]> {
    return [...this.actions.values()]
      .filter((a) => a.subject.kind === 'instance' && a.subject.id === instanceId)
      .sort((a, b) => a.start_time.localeCompare(b.start_time))
      .map(clone);
  }

  async listInstancesByNode(shard: string): Promise<Instance[]> {
    return [...this.instances.values()]
      .filter((i) => !this.retired.has(i.instance_id) && auditShardKey(i) === shard)
      .map(clone);
  }

  /** Pages of 100, so callers meet more than one page as they do on DynamoDB. */
  async *shardPages(shard: string): AsyncIterable<Instance[]> {
    const all = await this.listInstancesByNode(shard);
    for (let i = 0; i < all.length; i += 100) yield all.slice(i, i + 100);
  }

  async retireFromAudit(instanceId: string, version: number): Promise<boolean> {
    if (this.instances.get(instanceId)?.version !== version) return false;
    this.retired.add(instanceId);
    return true;
  }

  async listWaitingActions(until: Date): Promise<ActionRecord[]> {
    const limit = until.toISOString();
    return [...this.actions.values()]
      .filter(
        (a) => a.status === 'running' && typeof a.wait_until === 'string' && a.wait_until <= limit,
      )
      .map(clone);
  }

  async listFaults(instanceId: string): Promise<InstanceFault[]> {
    return this.faults.filter((f) => f.instance_id === instanceId).map(clone);
  }

  async findActionByCommand(commandId: string): Promise<ActionRecord | null> {
    const a = [...this.actions.values()].find((x) => x.command_id === commandId);
    return a ? clone(a) : null;
  }

  private runningAction(subject: ActionSubject, commandId: string): ActionRecord {
    const a = this.actions.get(this.key(subject, commandId));
    if (!a || a.status !== 'running') {
      throw new StratusError(
        ErrorCode.InstanceUpdateConflict,
        `Action ${commandId} is no longer running`,
      );
    }
    return a;
  }
}
