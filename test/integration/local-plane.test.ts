// The local control plane (`npm start`) in-process, on its own DynamoDB Local and SQS emulator:
// a plain AWS SDK client sending a CONTRACT build message to the printed queue gets an ACTIVE
// instance and its events; a stop loses no accepted command; with AWS_ENDPOINT_URL_EVENTBRIDGE
// the events reach a rule's SQS target on moto.

import {
  CreateEventBusCommand,
  EventBridgeClient,
  PutRuleCommand,
  PutTargetsCommand,
} from '@aws-sdk/client-eventbridge';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  SQSClient,
  SendMessageCommand,
} from '@aws-sdk/client-sqs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import type { Endpoints } from '../../lib/client/endpoints.ts';
import { instanceIdForCommand } from '../../lib/commands/parse.ts';
import type { Instance } from '../../lib/compute/instance.ts';
import type { LocalPlane, LocalPlaneOptions } from '../../lib/local/plane.ts';
import { type LoggedNotification, NotificationLog } from '../../lib/local/notification-log.ts';
import { TeePublisher } from '../../lib/local/tee-publisher.ts';
import { instanceNotification } from '../../lib/notifications/notification.ts';
import { EventBridgePublisher } from '../../lib/notifications/publisher.ts';
import { DynamoDbStateStore } from '../../lib/store/dynamodb-state-store.ts';
import { buildInstance } from '../unit/notifications/fixtures.ts';
import {
  awsTestClientConfig,
  describeWithMoto,
  motoEndpoint,
  uniquePrefix,
} from '../support/emulators.ts';

const dirs: string[] = [];
const planes: LocalPlane[] = [];

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'stratus-plane-'));
  dirs.push(dir);
  return dir;
}

/** A fresh plane with fresh handler modules (a handler reads its environment once, at import). */
async function startPlane(options: LocalPlaneOptions): Promise<LocalPlane> {
  vi.resetModules();
  const { startLocalPlane } = await import('../../lib/local/plane.ts');
  const plane = await startLocalPlane({ sqsPort: 0, dynamodbPort: 0, ...options });
  planes.push(plane);
  return plane;
}

function clientsOf(endpoints: Endpoints) {
  const sqs = new SQSClient({
    ...awsTestClientConfig(endpoints.sqs.endpoint!),
    useQueueUrlAsEndpoint: false,
  });
  const doc = DynamoDBDocumentClient.from(
    new DynamoDBClient(awsTestClientConfig(endpoints.dynamodb.endpoint!)),
  );
  return { sqs, store: new DynamoDbStateStore(doc, endpoints.dynamodb.tables!.state) };
}

function contractBuild(commandId: string) {
  return JSON.stringify({
    version: 1,
    command_id: commandId,
    operation: 'build_and_run_instance',
    context: { user_id: 'alice', project_id: 'demo' },
    args: { flavor: 'm1.small', image_ref: 'ami-demo' },
  });
}

/** Polls until `check` returns a value (the plane works asynchronously). */
async function eventually<T>(what: string, check: () => Promise<T | null | undefined | false>) {
  for (let i = 0; i < 200; i++) {
    const value = await check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gave up waiting for ${what}`);
}

async function loggedEvents(path: string): Promise<LoggedNotification[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LoggedNotification);
}

async function activeInstance(store: DynamoDbStateStore, id: string): Promise<Instance> {
  return eventually(`instance ${id} to be active`, async () => {
    const instance = await store.getInstance(id);
    return instance?.vm_state === 'active' && instance.task_state === null ? instance : null;
  });
}

afterEach(() => {
  vi.restoreAllMocks();
});

afterAll(async () => {
  for (const plane of planes) await plane.stop();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('the local control plane', () => {
  it('turns a CONTRACT build sent with a plain SQS client into an ACTIVE instance and its events', async () => {
    const dir = await dataDir();
    const plane = await startPlane({ dataDir: dir });

    const written = JSON.parse(await readFile(join(dir, 'endpoints.json'), 'utf8')) as Endpoints;
    expect(written).toEqual(plane.endpoints);
    expect(Object.keys(written.sqs.queues)).toEqual(
      expect.arrayContaining(['build_and_run_instance', 'terminate_instance']),
    );
    const { sqs, store } = clientsOf(written);
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: written.sqs.queues.build_and_run_instance,
        MessageBody: contractBuild('plane-build-1'),
      }),
    );

    const id = instanceIdForCommand('plane-build-1');
    const instance = await activeInstance(store, id);
    expect(instance).toMatchObject({
      power_state: 1,
      project_id: 'demo',
      node: expect.any(String),
    });
    const events = await eventually('create.end in the log', async () => {
      const all = (await loggedEvents(written.notifications_log!)).filter((e) =>
        e.resources.includes(id),
      );
      return all.some((e) => e['detail-type'] === 'compute.instance.create.end') ? all : null;
    });
    expect(events.map((e) => e['detail-type'])).toEqual([
      'compute.instance.create.start',
      'compute.instance.create.end',
    ]);
    expect(events[0]).toMatchObject({
      source: 'stratus.compute',
      detail: { command_id: 'plane-build-1' },
    });

    await plane.stop();
    // endpoints.json describes a running plane only; the data stays.
    await expect(stat(join(dir, 'endpoints.json'))).rejects.toThrow();
    await expect(stat(join(dir, 'sqs'))).resolves.toBeDefined();
  });

  it('loses no accepted command across a stop: the batch in flight finishes, the queued ones wait for the next start', async () => {
    const dir = await dataDir();
    const first = await startPlane({ dataDir: dir });
    const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
    const spawn = FakeDriver.prototype.spawn;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let spawnFinished = false;
    let spawning!: () => void;
    const spawned = new Promise<void>((r) => (spawning = r));
    vi.spyOn(FakeDriver.prototype, 'spawn').mockImplementation(async function (
      this: InstanceType<typeof FakeDriver>,
      ...args: Parameters<typeof spawn>
    ) {
      spawning();
      await gate;
      const result = await spawn.apply(this, args);
      spawnFinished = true;
      return result;
    });

    const { sqs } = clientsOf(first.endpoints);
    const queue = first.endpoints.sqs.queues.build_and_run_instance!;
    await sqs.send(
      new SendMessageCommand({ QueueUrl: queue, MessageBody: contractBuild('in-flight') }),
    );
    await spawned; // its batch is in the handler now: the event source receives nothing else
    for (const id of ['queued-1', 'queued-2']) {
      await sqs.send(new SendMessageCommand({ QueueUrl: queue, MessageBody: contractBuild(id) }));
    }
    const stopping = first.stop();
    release();
    await stopping;
    expect(spawnFinished).toBe(true); // stop() waited for the batch in flight
    sqs.destroy();

    vi.restoreAllMocks();
    const second = await startPlane({ dataDir: dir });
    const { store } = clientsOf(second.endpoints);
    for (const commandId of ['in-flight', 'queued-1', 'queued-2']) {
      await activeInstance(store, instanceIdForCommand(commandId));
    }
    // Each command ran once: one create.end each, although the plane stopped in between.
    const ends = await eventually('three create.end events', async () => {
      const all = (await loggedEvents(second.endpoints.notifications_log!)).filter(
        (e) => e['detail-type'] === 'compute.instance.create.end',
      );
      return all.length >= 3 ? all : null;
    });
    expect(ends.map((e) => e.detail.command_id).sort()).toEqual([
      'in-flight',
      'queued-1',
      'queued-2',
    ]);
    await second.stop();
  });

  it('keeps nothing on disk with memory: true', async () => {
    const dir = await dataDir();
    const plane = await startPlane({ dataDir: dir, memory: true });
    const log = plane.endpoints.notifications_log!;
    expect(log.startsWith(dir)).toBe(false);
    const { sqs, store } = clientsOf(plane.endpoints);
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: plane.endpoints.sqs.queues.build_and_run_instance,
        MessageBody: contractBuild('memory-1'),
      }),
    );
    await activeInstance(store, instanceIdForCommand('memory-1'));
    await plane.stop();
    await expect(stat(log)).rejects.toThrow();
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(dir)).toEqual([]);
  });

  it('names the busy port, and refuses a second plane on the same data directory', async () => {
    const dir = await dataDir();
    const plane = await startPlane({ dataDir: dir });
    const port = Number(new URL(plane.endpoints.sqs.endpoint!).port);
    const { startLocalPlane } = await import('../../lib/local/plane.ts');
    const busy = await startLocalPlane({
      dataDir: await dataDir(),
      memory: true,
      sqsPort: port,
      dynamodbPort: 0,
    }).catch((e: unknown) => e);
    expect(busy).toMatchObject({ name: 'PortBusyError', port });
    const shared = await startLocalPlane({ dataDir: dir, sqsPort: 0, dynamodbPort: 0 }).catch(
      (e: unknown) => e,
    );
    expect(shared).toMatchObject({ name: 'DataDirInUseError', dataDir: dir });
    await plane.stop();
  });
});

/** A bus on moto with a rule sending every Stratus notification to an SQS queue there. */
async function billingRoute(prefix: string) {
  const moto = motoEndpoint();
  const bus = `${prefix}-notifications`;
  const eventbridge = new EventBridgeClient(awsTestClientConfig(moto));
  const motoSqs = new SQSClient({ ...awsTestClientConfig(moto), useQueueUrlAsEndpoint: false });
  await eventbridge.send(new CreateEventBusCommand({ Name: bus }));
  const target = (await motoSqs.send(new CreateQueueCommand({ QueueName: `${prefix}-billing` })))
    .QueueUrl!;
  const arn = (
    await motoSqs.send(
      new GetQueueAttributesCommand({ QueueUrl: target, AttributeNames: ['QueueArn'] }),
    )
  ).Attributes!.QueueArn!;
  await eventbridge.send(
    new PutRuleCommand({
      Name: `${prefix}-billing`,
      EventBusName: bus,
      EventPattern: JSON.stringify({ source: ['stratus.compute'] }),
    }),
  );
  await eventbridge.send(
    new PutTargetsCommand({
      Rule: `${prefix}-billing`,
      EventBusName: bus,
      Targets: [{ Id: 'billing', Arn: arn }],
    }),
  );
  return { bus, target, motoSqs, eventbridge };
}

async function receiveUntil(sqs: SQSClient, url: string, done: (all: Message[]) => boolean) {
  const received: Message[] = [];
  await eventually('events on the rule target', async () => {
    const out = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
    );
    received.push(...(out.Messages ?? []));
    return done(received);
  });
  return received.map((m) => JSON.parse(m.Body!) as LoggedNotification);
}

describeWithMoto('the local control plane with AWS_ENDPOINT_URL_EVENTBRIDGE', () => {
  afterAll(() => {
    delete process.env.AWS_ENDPOINT_URL_EVENTBRIDGE;
  });

  it('publishes the notifications there, where a rule delivers them to its SQS target', async () => {
    const moto = motoEndpoint();
    const prefix = uniquePrefix('plane');
    const { bus, target, motoSqs } = await billingRoute(prefix);
    process.env.AWS_ENDPOINT_URL_EVENTBRIDGE = moto;
    const plane = await startPlane({ dataDir: await dataDir(), memory: true, options: { prefix } });
    expect(plane.endpoints.eventbridge).toEqual({ endpoint: moto, bus });
    const { sqs, store } = clientsOf(plane.endpoints);
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: plane.endpoints.sqs.queues.build_and_run_instance,
        MessageBody: contractBuild(`${prefix}-build`),
      }),
    );
    const id = instanceIdForCommand(`${prefix}-build`);
    await activeInstance(store, id);

    const events = await receiveUntil(motoSqs, target, (all) =>
      all.some((m) => m.Body?.includes('compute.instance.create.end')),
    );
    expect(events.map((e) => e['detail-type'])).toEqual([
      'compute.instance.create.start',
      'compute.instance.create.end',
    ]);
    expect(events.every((e) => e.resources.includes(id) && e.source === 'stratus.compute')).toBe(
      true,
    );
    await plane.stop();
  });

  it('TeePublisher: EventBridge first, then the local log; a refused publish logs nothing', async () => {
    const prefix = uniquePrefix('tee');
    const { bus, target, motoSqs, eventbridge } = await billingRoute(prefix);
    const log = join(await dataDir(), 'notifications.jsonl');
    const tee = (busName: string) =>
      new TeePublisher([
        new EventBridgePublisher({
          client: eventbridge,
          busName,
          source: 'stratus.compute',
          maxAttempts: 1,
        }),
        new NotificationLog(log, 'stratus.compute'),
      ]);
    const notification = instanceNotification({
      instance: buildInstance(),
      eventType: 'compute.instance.create.end',
      host: 'stratus',
      commandId: `${prefix}-cmd`,
      requestId: 'req-1',
      now: new Date(),
    });

    await expect(tee(`${prefix}-no-such-bus`).publish([notification])).rejects.toThrow();
    expect(await loggedEvents(log)).toEqual([]);

    await tee(bus).publish([notification]);
    const [logged] = await loggedEvents(log);
    expect(logged).toMatchObject({
      source: 'stratus.compute',
      'detail-type': 'compute.instance.create.end',
      detail: { message_id: notification.message_id },
    });
    const [delivered] = await receiveUntil(motoSqs, target, (all) => all.length > 0);
    expect(delivered!.detail).toEqual(logged!.detail);
  });
});
