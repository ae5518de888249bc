// The in-memory twin of DynamoDbStateStore: same semantics (expectations, versions, atomic
// commits, running-only actions), no I/O. Domain tests use it; the contract suite in
// test/integration/state-store.test.ts runs both against the same scenarios.

import { assertExpectation, changedFields } from '../compute/expectations.ts';
import type { Instance } from '../compute/instance.ts';
import { ErrorCode, InstanceNotFoundError, StratusError } from '../errors.ts';
import type { Notification } from '../notifications/notification.ts';
import { nextOutboxSeq } from './outbox-seq.ts';
import {
  type ActionRecord,
  type ActionSubject,
  type InstanceFault,
  type InstanceWrite,
  type StateStore,
  type WriteResult,
  applyChanges,
  subjectKey,
} from './state-store.ts';

const clone = <T>(v: T): T => structuredClone(v);

export class InMemoryStateStore implements StateStore {
  private readonly instances = new Map<string, Instance>();
  private readonly actions = new Map<string, ActionRecord>();
  private readonly faults: InstanceFault[] = [];

  private key(subject: ActionSubject, commandId: string): string {
    return `${subjectKey(subject)}|${commandId}`;
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
    const outbox = Object.fromEntries(
      notifications.map((n) => [n.message_id, { seq: nextOutboxSeq(), notification: n }]),
    );
    this.actions.set(key, clone({ ...action, outbox }));
    return { created: true as const };
  }

  async updateInstance(write: InstanceWrite): Promise<WriteResult> {
    const current = this.instances.get(write.instanceId);
    if (!current) throw new InstanceNotFoundError(write.instanceId);
    assertExpectation(current, write.expect);
    const changes =
      typeof write.changes === 'function' ? write.changes(clone(current)) : write.changes;
    const next = applyChanges(current, changes, write.now);
    const written = changedFields(current, next).length > 0;
    const notifications =
      written && write.notifications ? write.notifications(clone(current), clone(next)) : [];
    const touchesAction =
      notifications.length > 0 || write.event || write.finish || write.progress || write.fault;
    if (touchesAction) this.runningAction(write.action.subject, write.action.commandId);
    if (written) this.instances.set(next.instance_id, clone(next));
    if (touchesAction) {
      this.applyToAction(
        write.action.subject,
        write.action.commandId,
        { ...write, notifications },
        write.now,
      );
    }
    if (write.fault) this.faults.push(clone(write.fault));
    return written
      ? { old: clone(current), new: clone(next), written }
      : { old: clone(current), new: clone(current), written };
  }

  async getAction(subject: ActionSubject, commandId: string): Promise<ActionRecord | null> {
    const a = this.actions.get(this.key(subject, commandId));
    return a ? clone(a) : null;
  }

  async startAction(action: ActionRecord) {
    const key = this.key(action.subject, action.command_id);
    const existing = this.actions.get(key);
    if (existing) return { created: false, action: clone(existing) };
    this.actions.set(key, clone(action));
    return { created: true, action: clone(action) };
  }

  async recordOnAction(
    subject: ActionSubject,
    commandId: string,
    update: Parameters<StateStore['recordOnAction']>[2],
  ) {
    this.runningAction(subject, commandId);
    return clone(this.applyToAction(subject, commandId, update, new Date()));
  }

  async clearOutbox(
    subject: ActionSubject,
    commandId: string,
    messageIds: string[],
  ): Promise<void> {
    const a = this.actions.get(this.key(subject, commandId));
    if (!a) return;
    for (const id of messageIds) delete a.outbox[id];
  }

  async markReplySent(subject: ActionSubject, commandId: string): Promise<void> {
    const a = this.actions.get(this.key(subject, commandId));
    if (a) a.reply_sent = true;
  }

  async listActions(instanceId: string): Promise<ActionRecord[]> {
    return [...this.actions.values()]
      .filter((a) => a.subject.kind === 'instance' && a.subject.id === instanceId)
      .sort((a, b) => a.start_time.localeCompare(b.start_time))
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

  private applyToAction(
    subject: ActionSubject,
    commandId: string,
    update: Parameters<StateStore['recordOnAction']>[2],
    now: Date,
  ): ActionRecord {
    const a = this.runningAction(subject, commandId);
    for (const n of update.notifications ?? [])
      a.outbox[n.message_id] = { seq: nextOutboxSeq(), notification: clone(n) };
    if (update.event) a.events.push(clone(update.event));
    Object.assign(a.progress, update.progress ?? {});
    if (update.finish) {
      const { error_code, ...outcome } = update.finish;
      a.status = outcome.status;
      a.outcome = clone(outcome);
      a.error_code = error_code ?? null;
      a.finish_time = now.toISOString();
    }
    return a;
  }
}
