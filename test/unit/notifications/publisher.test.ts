import {
  EventBridgeClient,
  PutEventsCommand,
  type PutEventsCommandInput,
  type PutEventsResultEntry,
} from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TaskState } from '../../../lib/compute/states.ts';
import {
  apiFaultNotification,
  envelopeOf,
  instanceNotification,
  type Notification,
} from '../../../lib/notifications/notification.ts';
import {
  EventBridgePublisher,
  InMemoryPublisher,
  NotificationPublishError,
  putEventsEntrySize,
} from '../../../lib/notifications/publisher.ts';
import { assertValidDetail } from '../../../lib/notifications/schemas.ts';
import { buildInstance } from './fixtures.ts';

const NOW = new Date('2024-03-10T10:30:00.250Z');

function notifications(count: number, extra: Record<string, unknown> = {}): Notification[] {
  return Array.from({ length: count }, (_, i) =>
    instanceNotification({
      instance: buildInstance({ display_name: `vm-${i}` }),
      eventType: 'compute.instance.power_on.end',
      host: 'stratus',
      commandId: `cmd-${i}`,
      requestId: `req-${i}`,
      now: NOW,
      extra,
    }),
  );
}

const ok = (input: PutEventsCommandInput) => ({
  FailedEntryCount: 0,
  Entries: (input.Entries ?? []).map((_, i) => ({ EventId: `ev-${i}` })),
});

/** A PutEvents fake that fails the entries whose detail matches, with the given code. */
function failing(code: string, matches: (detail: { message_id: string }) => boolean) {
  return (input: PutEventsCommandInput) => {
    const Entries: PutEventsResultEntry[] = (input.Entries ?? []).map((e, i) =>
      matches(JSON.parse(e.Detail!) as { message_id: string })
        ? { ErrorCode: code, ErrorMessage: 'nope' }
        : { EventId: `ev-${i}` },
    );
    return { FailedEntryCount: Entries.filter((e) => e.ErrorCode).length, Entries };
  };
}

const eb = mockClient(EventBridgeClient);
const sleep = vi.fn(async (_ms: number) => {});

function publisher(options: Partial<ConstructorParameters<typeof EventBridgePublisher>[0]> = {}) {
  return new EventBridgePublisher({
    client: new EventBridgeClient({ region: 'us-east-1' }),
    busName: 'stratus-notifications',
    source: 'stratus.compute',
    sleep,
    random: () => 0.5,
    ...options,
  });
}

const sentBatches = () =>
  eb.commandCalls(PutEventsCommand).map((call) => call.args[0].input.Entries ?? []);
const sentIds = (entries: { Detail?: string }[]) =>
  entries.map((e) => (JSON.parse(e.Detail!) as { message_id: string }).message_id);

beforeEach(() => {
  eb.reset();
  sleep.mockClear();
});

describe('EventBridgePublisher: entries', () => {
  it('maps a notification to a PutEvents entry whose detail is the CONTRACT envelope', async () => {
    eb.on(PutEventsCommand).callsFake(ok);
    const [n] = notifications(1);
    await publisher().publish([n!]);
    const [[entry]] = sentBatches() as [[NonNullable<PutEventsCommandInput['Entries']>[0]]];
    expect(entry).toEqual({
      EventBusName: 'stratus-notifications',
      Source: 'stratus.compute',
      DetailType: 'compute.instance.power_on.end',
      Detail: JSON.stringify(envelopeOf(n!)),
      Resources: [n!.instance_id],
      Time: new Date('2024-03-10T10:30:00.250Z'),
    });
    const detail = JSON.parse(entry.Detail!) as Record<string, unknown>;
    expect(detail).not.toHaveProperty('instance_id');
    expect(detail.message_id).toBe(n!.message_id);
  });

  it('sends no resource for a notification about no instance', async () => {
    eb.on(PutEventsCommand).callsFake(ok);
    const fault = apiFaultNotification({
      host: 'stratus',
      commandId: 'cmd-x',
      requestId: 'req-x',
      operation: 'build_and_run_instance',
      instanceId: null,
      exception: 'InvalidCommand',
      status: 400,
      now: NOW,
    });
    await publisher().publish([fault]);
    expect(sentBatches()[0]![0]!.Resources).toEqual([]);
  });

  it('sizes entries the way EventBridge does', () => {
    expect(
      putEventsEntrySize({
        Time: NOW,
        Source: 'abc',
        DetailType: 'é',
        Detail: '{"k":"€"}',
        Resources: ['r1', 'r22'],
      }),
    ).toBe(14 + 3 + 2 + 11 + 2 + 3);
    expect(putEventsEntrySize({ Source: 'a', DetailType: 'b' })).toBe(2);
  });
});

describe('EventBridgePublisher: batching', () => {
  it('sends 23 notifications as 3 calls of at most 10, in order', async () => {
    eb.on(PutEventsCommand).callsFake(ok);
    const batch = notifications(23);
    await publisher().publish(batch);
    const sent = sentBatches();
    expect(sent.map((entries) => entries.length)).toEqual([10, 10, 3]);
    expect(sent.flatMap(sentIds)).toEqual(batch.map((n) => n.message_id));
    expect(sleep).not.toHaveBeenCalled();
  });

  it('splits requests to stay under the request size limit', async () => {
    eb.on(PutEventsCommand).callsFake(ok);
    const big = notifications(5, { blob: 'x'.repeat(100 * 1024) });
    await publisher().publish(big);
    const sent = sentBatches();
    expect(sent.map((entries) => entries.length)).toEqual([2, 2, 1]);
    for (const entries of sent) {
      const bytes = entries.reduce((sum, e) => sum + putEventsEntrySize(e), 0);
      expect(bytes).toBeLessThanOrEqual(256 * 1024);
    }
  });

  it('does nothing for an empty batch', async () => {
    await publisher().publish([]);
    expect(sentBatches()).toEqual([]);
  });
});

describe('EventBridgePublisher: failures', () => {
  it('resends only the failed entries, after a jittered backoff', async () => {
    const batch = notifications(12);
    // Each of these fails on its first send only.
    const failOnce = new Set([batch[3]!.message_id, batch[11]!.message_id]);
    eb.on(PutEventsCommand).callsFake(
      failing('ThrottlingException', (d) => failOnce.delete(d.message_id)),
    );
    await publisher().publish(batch);
    const sent = sentBatches();
    expect(sent.map((entries) => entries.length)).toEqual([10, 2, 2]);
    expect(sentIds(sent[2]!)).toEqual([batch[3]!.message_id, batch[11]!.message_id]);
    expect(sleep).toHaveBeenCalledTimes(1);
    expect(sleep).toHaveBeenCalledWith(50); // 0.5 × 100 ms
  });

  it('gives up after maxAttempts and names the failed message ids and codes', async () => {
    const batch = notifications(3);
    const stuck = batch[1]!.message_id;
    eb.on(PutEventsCommand).callsFake(failing('InternalFailure', (d) => d.message_id === stuck));
    const error = await publisher({ maxAttempts: 4 })
      .publish(batch)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(NotificationPublishError);
    const e = error as NotificationPublishError;
    expect(e.failures).toEqual([
      { message_id: stuck, error_code: 'InternalFailure', retryable: true },
    ]);
    expect(e.retryable).toBe(true);
    expect(e.message).toContain(stuck);
    expect(e.message).toContain('InternalFailure');
    expect(sentBatches().map(sentIds)).toEqual([
      batch.map((n) => n.message_id),
      [stuck],
      [stuck],
      [stuck],
    ]);
    // Exponential: 0.5 × 100, 0.5 × 200, 0.5 × 400.
    expect(sleep.mock.calls.map(([ms]) => ms)).toEqual([50, 100, 200]);
  });

  it('caps the backoff', async () => {
    eb.on(PutEventsCommand).callsFake(failing('InternalFailure', () => true));
    await expect(
      publisher({ maxAttempts: 6, baseDelayMs: 100, maxDelayMs: 300, random: () => 0.999 }).publish(
        notifications(1),
      ),
    ).rejects.toThrow(NotificationPublishError);
    expect(sleep.mock.calls.map(([ms]) => ms)).toEqual([99, 199, 299, 299, 299]);
  });

  it('does not resend an entry that a resend cannot fix', async () => {
    const batch = notifications(2);
    const denied = batch[0]!.message_id;
    eb.on(PutEventsCommand).callsFake(
      failing('AccessDeniedException', (d) => d.message_id === denied),
    );
    await expect(publisher().publish(batch)).rejects.toMatchObject({
      failures: [{ message_id: denied, error_code: 'AccessDeniedException', retryable: false }],
      retryable: false,
    });
    expect(sentBatches()).toHaveLength(1);
  });

  it('retries a whole call that failed transiently', async () => {
    const throttled = Object.assign(new Error('Rate exceeded'), {
      name: 'ThrottlingException',
      $fault: 'client',
      $metadata: { httpStatusCode: 400 },
    });
    eb.on(PutEventsCommand).rejectsOnce(throttled).callsFake(ok);
    const batch = notifications(3);
    await publisher().publish(batch);
    expect(sentBatches().map(sentIds)).toEqual([
      batch.map((n) => n.message_id),
      batch.map((n) => n.message_id),
    ]);
  });

  it('fails at once on a call error that a retry cannot fix, keeping it as the cause', async () => {
    const missingBus = Object.assign(new Error('Event bus x does not exist.'), {
      name: 'ResourceNotFoundException',
      $fault: 'client',
      $metadata: { httpStatusCode: 400 },
    });
    eb.on(PutEventsCommand).rejects(missingBus);
    const batch = notifications(2);
    const error = (await publisher()
      .publish(batch)
      .catch((e: unknown) => e)) as NotificationPublishError;
    expect(error).toBeInstanceOf(NotificationPublishError);
    expect(error.failures.map((f) => f.error_code)).toEqual([
      'ResourceNotFoundException',
      'ResourceNotFoundException',
    ]);
    expect(error.cause).toBe(missingBus);
    expect(sentBatches()).toHaveLength(1);
  });

  it('rejects an oversize notification before sending anything, naming it', async () => {
    eb.on(PutEventsCommand).callsFake(ok);
    const [small] = notifications(1);
    const [huge] = notifications(1, { blob: 'x'.repeat(256 * 1024) });
    const huge2 = { ...huge!, message_id: '00000000-0000-5000-8000-000000000000' };
    const error = (await publisher()
      .publish([small!, huge2])
      .catch((e: unknown) => e)) as NotificationPublishError;
    expect(error).toBeInstanceOf(NotificationPublishError);
    expect(error.message).toContain(huge2.message_id);
    expect(error.message).not.toContain(small!.message_id);
    expect(error.failures).toEqual([
      { message_id: huge2.message_id, error_code: 'EntryTooLarge', retryable: false },
    ]);
    expect(sentBatches()).toEqual([]);
  });

  it('accepts an entry exactly at the size limit', async () => {
    eb.on(PutEventsCommand).callsFake(ok);
    const [n] = notifications(1, { blob: '' });
    const p = publisher();
    const size = putEventsEntrySize(p.entryFor(n!));
    const [exact] = notifications(1, { blob: 'x'.repeat(256 * 1024 - size) });
    expect(putEventsEntrySize(p.entryFor(exact!))).toBe(256 * 1024);
    await p.publish([exact!]);
    expect(sentBatches()).toHaveLength(1);
  });
});

describe('EventBridgePublisher: logging', () => {
  const methods = ['log', 'info', 'warn', 'error', 'debug'] as const;
  afterEach(() => vi.restoreAllMocks());

  it('logs nothing and keeps payloads out of its errors', async () => {
    const spies = methods.map((m) => vi.spyOn(console, m).mockImplementation(() => {}));
    eb.on(PutEventsCommand).callsFake(failing('InternalFailure', () => true));
    const batch = notifications(2, { marker: 'PAYLOAD-MARKER' });
    const error = (await publisher({ maxAttempts: 2 })
      .publish(batch)
      .catch((e: unknown) => e)) as Error;
    expect(error.message).not.toContain('PAYLOAD-MARKER');
    expect(JSON.stringify(error)).not.toContain('PAYLOAD-MARKER');
    for (const spy of spies) expect(spy).not.toHaveBeenCalled();
  });
});

describe('InMemoryPublisher', () => {
  it('records notifications in order, as copies', async () => {
    const memory = new InMemoryPublisher();
    const [a, b] = notifications(2);
    await memory.publish([a!]);
    await memory.publish([b!]);
    a!.payload.display_name = 'changed later';
    expect(memory.published.map((n) => n.message_id)).toEqual([a!.message_id, b!.message_id]);
    expect(memory.published[0]!.payload.display_name).toBe('vm-0');
    expect(memory.ofType('compute.instance.power_on.end')).toHaveLength(2);
    memory.clear();
    expect(memory.published).toEqual([]);
  });

  it('fails the next publish when told to, then works again', async () => {
    const memory = new InMemoryPublisher();
    memory.failNext(new Error('down'));
    await expect(memory.publish(notifications(1))).rejects.toThrow('down');
    expect(memory.published).toEqual([]);
    await memory.publish(notifications(1));
    expect(memory.published).toHaveLength(1);
  });

  it('fails matching notifications like EventBridge entries, recording the others', async () => {
    const memory = new InMemoryPublisher();
    const batch = notifications(3);
    memory.failWhen((n) => n.message_id === batch[1]!.message_id);
    await expect(memory.publish(batch)).rejects.toMatchObject({
      failures: [
        { message_id: batch[1]!.message_id, error_code: 'InternalFailure', retryable: true },
      ],
    });
    expect(memory.published.map((n) => n.message_id)).toEqual([
      batch[0]!.message_id,
      batch[2]!.message_id,
    ]);
    memory.failWhen(undefined);
    await memory.publish([batch[1]!]);
    expect(memory.published).toHaveLength(3);
  });

  it('can check every notification against its schema', async () => {
    const memory = new InMemoryPublisher({ validate: (n) => assertValidDetail(envelopeOf(n)) });
    const [good] = notifications(1);
    await memory.publish([good!]);
    const bad = {
      ...good!,
      payload: { ...good!.payload, state_description: TaskState.DELETING, progress: 0 },
    };
    await expect(memory.publish([bad])).rejects.toThrow();
    expect(memory.published).toHaveLength(1);
  });
});
