// The StateStore contract, run against DynamoDB Local and against the in-memory twin, so the
// twin the domain tests use cannot drift from the adapter that runs in Lambda.

import { auditShardKey } from '../../lib/audit/shards.ts';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Instance } from '../../lib/compute/instance.ts';
import { TaskState, VmState } from '../../lib/compute/states.ts';
import {
  ErrorCode,
  UnexpectedDeletingTaskStateError,
  UnexpectedTaskStateError,
} from '../../lib/errors.ts';
import type { Notification } from '../../lib/notifications/notification.ts';
import { DynamoDbStateStore } from '../../lib/store/dynamodb-state-store.ts';
import { InMemoryStateStore } from '../../lib/store/memory-state-store.ts';
import type { ActionRecord, StateStore } from '../../lib/store/state-store.ts';
import { createStateTable } from '../../lib/store/tables.ts';
import { buildInstance } from '../unit/notifications/fixtures.ts';
import { awsTestClientConfig, emulatorEndpoints, uniquePrefix } from '../support/emulators.ts';

const now = new Date('2026-11-22T10:00:00.000Z');

function action(instanceId: string, commandId: string): ActionRecord {
  return {
    subject: { kind: 'instance', id: instanceId },
    command_id: commandId,
    operation: 'build_and_run_instance',
    instance_id: instanceId,
    request_id: `req-${commandId}`,
    user_id: 'u',
    project_id: 'p',
    status: 'running',
    error_code: null,
    outcome: null,
    start_time: now.toISOString(),
    finish_time: null,
    events: [],
    reply_to: null,
    reply_sent: false,
    progress: {},
  };
}

function note(id: string): Notification {
  return {
    message_id: id,
    publisher_id: 'compute.test',
    event_type: 'compute.instance.test',
    priority: 'INFO',
    timestamp: '2026-11-22 10:00:00.000000',
    request_id: 'r',
    command_id: 'c',
    payload: {},
  };
}

let counter = 0;
async function seed(store: StateStore, overrides: Partial<Instance> = {}): Promise<Instance> {
  counter += 1;
  const instance = buildInstance({
    instance_id: `00000000-0000-4000-8000-${String(counter).padStart(12, '0')}`,
    vm_state: VmState.BUILDING,
    task_state: null,
    task_owner: null,
    version: 1,
    ...overrides,
  });
  const created = await store.createInstance(
    instance,
    action(instance.instance_id, `cmd-${counter}`),
    [note(`create-${counter}`)],
  );
  expect(created.created).toBe(true);
  return instance;
}

const ref = (i: Instance) => ({
  subject: { kind: 'instance' as const, id: i.instance_id },
  commandId: `cmd-${counter}`,
});

function contract(name: string, makeStore: () => Promise<StateStore>) {
  describe(name, () => {
    let store: StateStore;
    beforeAll(async () => {
      store = await makeStore();
    });

    it('refuses to create an instance id twice and returns the existing record', async () => {
      const i = await seed(store);
      const again = await store.createInstance(
        { ...i, display_name: 'other' },
        action(i.instance_id, 'cmd-other'),
        [],
      );
      expect(again).toMatchObject({ created: false, existing: { display_name: i.display_name } });
    });

    it('distinguishes "no check" from "must be NULL" (Nova expected_task_state)', async () => {
      const i = await seed(store, { task_state: TaskState.SPAWNING });
      await expect(
        store.updateInstance({
          instanceId: i.instance_id,
          action: ref(i),
          expect: { taskState: [null] },
          changes: { progress: 5 },
          now,
        }),
      ).rejects.toBeInstanceOf(UnexpectedTaskStateError);
      const res = await store.updateInstance({
        instanceId: i.instance_id,
        action: ref(i),
        expect: {},
        changes: { progress: 5 },
        now,
      });
      expect(res).toMatchObject({
        written: true,
        new: { progress: 5, version: 2 },
        old: { progress: 0, version: 1 },
      });
    });

    it('raises UnexpectedDeletingTaskState when the task is deleting, and a vm_state conflict by its own code', async () => {
      const i = await seed(store, { task_state: TaskState.DELETING });
      await expect(
        store.updateInstance({
          instanceId: i.instance_id,
          action: ref(i),
          expect: { taskState: [TaskState.SPAWNING] },
          changes: { progress: 1 },
          now,
        }),
      ).rejects.toBeInstanceOf(UnexpectedDeletingTaskStateError);
      await expect(
        store.updateInstance({
          instanceId: i.instance_id,
          action: ref(i),
          expect: { vmState: [VmState.ACTIVE] },
          changes: { progress: 1 },
          now,
        }),
      ).rejects.toMatchObject({ code: ErrorCode.InstanceUpdateConflict });
    });

    it('lets exactly one of two concurrent claims of an idle instance win', async () => {
      const i = await seed(store);
      const claim = (task: TaskState) =>
        store.updateInstance({
          instanceId: i.instance_id,
          action: ref(i),
          expect: { taskState: [null] },
          changes: { task_state: task },
          now,
        });
      const results = await Promise.allSettled([
        claim(TaskState.POWERING_OFF),
        claim(TaskState.REBOOTING),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const loser = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(loser.reason).toBeInstanceOf(UnexpectedTaskStateError);
      expect((await store.getInstance(i.instance_id))?.version).toBe(2);
    });

    it('loses no update when two writers change different fields at once', async () => {
      const i = await seed(store);
      await Promise.all(
        Array.from({ length: 5 }, (_, n) =>
          store.updateInstance({
            instanceId: i.instance_id,
            action: ref(i),
            expect: {},
            changes: (cur) => ({ metadata: { ...cur.metadata, [`k${n}`]: 'v' } }),
            now,
          }),
        ),
      );
      const final = await store.getInstance(i.instance_id);
      expect(Object.keys(final!.metadata).sort()).toEqual(
        [...Object.keys(i.metadata), 'k0', 'k1', 'k2', 'k3', 'k4'].sort(),
      );
      expect(final!.version).toBe(6);
    });

    it('commits notifications, an event, a fault and the outcome with the write, in order', async () => {
      const i = await seed(store);
      await store.updateInstance({
        instanceId: i.instance_id,
        action: ref(i),
        expect: { taskState: [null] },
        changes: { vm_state: VmState.ERROR },
        notifications: (old, next) => [note(`${old.vm_state}>${next.vm_state}`), note('second')],
        fault: {
          instance_id: i.instance_id,
          command_id: ref(i).commandId,
          code: 500,
          message: 'boom',
          details: 'DriverError',
          host: null,
          created_at: now.toISOString(),
        },
        event: {
          event: 'compute_x',
          start_time: now.toISOString(),
          finish_time: now.toISOString(),
          result: 'Error',
        },
        finish: {
          command_id: ref(i).commandId,
          request_id: 'r',
          operation: 'build_and_run_instance',
          instance_id: i.instance_id,
          status: 'failed',
          error: { code: 500, message: 'boom' },
          error_code: 'DriverError',
        },
        now,
      });
      const a = (await store.getAction(ref(i).subject, ref(i).commandId))!;
      const pending = await store.pendingNotifications(ref(i).subject, ref(i).commandId);
      expect(pending.map((e) => e.notification.message_id)).toEqual([
        `create-${counter}`,
        'building>error',
        'second',
      ]);
      expect(a).toMatchObject({
        status: 'failed',
        error_code: 'DriverError',
        events: [{ event: 'compute_x', result: 'Error' }],
      });
      expect(await store.listFaults(i.instance_id)).toMatchObject([{ code: 500, message: 'boom' }]);
      await store.clearOutbox(ref(i).subject, pending.slice(1));
      expect(
        (await store.pendingNotifications(ref(i).subject)).map((e) => e.notification.message_id),
      ).toEqual([`create-${counter}`]);
      // A finished action accepts nothing more: its record is final.
      await expect(
        store.recordOnAction(ref(i).subject, ref(i).commandId, { progress: { x: 1 } }),
      ).rejects.toMatchObject({
        code: ErrorCode.InstanceUpdateConflict,
      });
    });

    it('keeps many large notifications of one command without outgrowing an item', async () => {
      const i = await seed(store);
      const big = (id: string) => ({ ...note(id), payload: { blob: 'x'.repeat(120_000) } });
      for (let n = 0; n < 5; n++) {
        await store.updateInstance({
          instanceId: i.instance_id,
          action: ref(i),
          expect: {},
          changes: { progress: n + 1 },
          notifications: () => [big(`big-${n}`)],
          now,
        });
      }
      const pending = await store.pendingNotifications(ref(i).subject, ref(i).commandId);
      expect(pending.map((e) => e.notification.message_id)).toEqual([
        `create-${counter}`,
        'big-0',
        'big-1',
        'big-2',
        'big-3',
        'big-4',
      ]);
    });

    it('starts an action with the first state write, or neither', async () => {
      const i = await seed(store);
      const startAction = action(i.instance_id, `inline-${counter}`);
      const write = {
        instanceId: i.instance_id,
        action: { subject: startAction.subject, commandId: startAction.command_id },
        startAction,
        expect: { taskState: [null] },
        changes: { task_state: TaskState.DELETING },
        notifications: () => [note(`inline-${counter}`)],
        now,
      };
      await store.updateInstance(write);
      expect(await store.getAction(startAction.subject, startAction.command_id)).toMatchObject({
        status: 'running',
      });
      // The same start again: the task is taken, nothing is written, the action is unchanged.
      await expect(store.updateInstance(write)).rejects.toBeInstanceOf(
        UnexpectedDeletingTaskStateError,
      );
      expect((await store.getInstance(i.instance_id))?.version).toBe(2);
    });

    it('lists the instances on a node, following the record as it moves', async () => {
      const node = `node-${name.length}-${counter}`;
      const a = await seed(store, { node });
      const b = await seed(store, { node });
      await seed(store, { node: null });
      const ids = async () =>
        (await store.listInstancesByNode(node)).map((i) => i.instance_id).sort();
      const waitFor = async (expected: string[]) => {
        // The index is eventually consistent (DynamoDB Local applies it at once).
        for (let i = 0; i < 20 && JSON.stringify(await ids()) !== JSON.stringify(expected); i++) {
          await new Promise((r) => setTimeout(r, 50));
        }
        expect(await ids()).toEqual(expected);
      };
      await waitFor([a.instance_id, b.instance_id].sort());
      await store.updateInstance({
        instanceId: b.instance_id,
        action: ref(b),
        expect: {},
        changes: { node: null },
        now,
      });
      await waitFor([a.instance_id]);
      expect((await store.listInstancesByNode(node))[0]).not.toHaveProperty('index_node');
    });

    it('keeps a node-less record in its audit segment, pages shards, and retires by version', async () => {
      const offloaded = await seed(store, { node: null });
      const segment = auditShardKey(offloaded);
      const inSegment = async () => {
        const ids: string[] = [];
        for await (const page of store.shardPages(segment))
          ids.push(...page.map((i) => i.instance_id));
        return ids;
      };
      expect(await inSegment()).toContain(offloaded.instance_id);
      // A stale version does not retire; the current one does; a later write brings it back.
      expect(await store.retireFromAudit(offloaded.instance_id, offloaded.version + 1)).toBe(false);
      expect(await store.retireFromAudit(offloaded.instance_id, offloaded.version)).toBe(true);
      expect(await inSegment()).not.toContain(offloaded.instance_id);
      await store.updateInstance({
        instanceId: offloaded.instance_id,
        action: ref(offloaded),
        expect: {},
        changes: { display_name: 'renamed' },
        now,
      });
      expect(await inSegment()).toContain(offloaded.instance_id);
    });

    it('lists running actions whose wait has expired, and forgets a finished one', async () => {
      const i = await seed(store);
      const subject = ref(i).subject;
      const commandId = ref(i).commandId;
      await store.recordOnAction(subject, commandId, {
        wait: { until: '2026-11-22T10:05:00.000Z' },
      });
      const waiting = async (until: string) =>
        (await store.listWaitingActions(new Date(until))).filter((a) => a.command_id === commandId);
      expect(await waiting('2026-11-22T10:04:59.000Z')).toHaveLength(0);
      expect(await waiting('2026-11-22T10:05:00.000Z')).toMatchObject([
        { wait_until: '2026-11-22T10:05:00.000Z' },
      ]);
      await store.recordOnAction(subject, commandId, {
        finish: {
          command_id: commandId,
          request_id: 'r',
          operation: 'x',
          instance_id: i.instance_id,
          status: 'succeeded',
        },
      });
      expect(await waiting('2030-01-01T00:00:00.000Z')).toHaveLength(0);
    });

    it('writes nothing for a save that changes nothing', async () => {
      const i = await seed(store);
      const res = await store.updateInstance({
        instanceId: i.instance_id,
        action: ref(i),
        expect: {},
        changes: { progress: 0 },
        now,
        notifications: () => [note('never')],
      });
      expect(res.written).toBe(false);
      expect((await store.getInstance(i.instance_id))?.version).toBe(1);
    });

    it('lets one deliverer claim a reply: until sent, or until its claim lapses or is released', async () => {
      const a = action('22222222-2222-4222-8222-222222222222', `reply-${name}`);
      await store.startAction(a);
      const t = (s: number) => new Date(now.getTime() + s * 1000);
      expect(await store.claimReply(a.subject, a.command_id, t(0), t(30))).toBe(true);
      expect(await store.claimReply(a.subject, a.command_id, t(1), t(31))).toBe(false);
      // The holder died: once its claim lapsed, another deliverer may send.
      expect(await store.claimReply(a.subject, a.command_id, t(31), t(61))).toBe(true);
      // A failed send releases at once.
      expect(await store.claimReply(a.subject, a.command_id, t(32), null)).toBe(true);
      expect(await store.claimReply(a.subject, a.command_id, t(33), t(63))).toBe(true);
      await store.markReplySent(a.subject, a.command_id);
      expect(await store.claimReply(a.subject, a.command_id, t(100), t(130))).toBe(false);
    });

    it('starts an action once and returns the stored one afterwards', async () => {
      const a = action('11111111-1111-4111-8111-111111111111', `once-${name}`);
      expect((await store.startAction(a)).created).toBe(true);
      const again = await store.startAction({ ...a, request_id: 'different' });
      expect(again).toMatchObject({ created: false, action: { request_id: a.request_id } });
    });
  });
}

contract('InMemoryStateStore', async () => new InMemoryStateStore());

contract('DynamoDbStateStore on DynamoDB Local', async () => {
  const client = new DynamoDBClient(awsTestClientConfig(emulatorEndpoints().dynamodb));
  const table = `${uniquePrefix('store')}-state`;
  await createStateTable(client, table);
  return new DynamoDbStateStore(
    DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } }),
    table,
  );
});
