// EventBridgePublisher against moto_server: a bus, a rule on our source, and an SQS target
// (moto's own SQS) that receives what a billing subscriber would receive.
import {
  CreateEventBusCommand,
  EventBridgeClient,
  PutRuleCommand,
  PutTargetsCommand,
} from '@aws-sdk/client-eventbridge';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { beforeAll, expect, it } from 'vitest';
import {
  apiFaultNotification,
  envelopeOf,
  errorNotification,
  instanceNotification,
  type Notification,
} from '../../lib/notifications/notification.ts';
import { EventBridgePublisher } from '../../lib/notifications/publisher.ts';
import { assertValidDetail } from '../../lib/notifications/schemas.ts';
import { expectMatchesRegisteredSchema } from '../support/event-schemas.ts';
import { currentAuditPeriod } from '../../lib/notifications/audit-period.ts';
import { updateNotification } from '../../lib/notifications/update.ts';
import { TaskState, VmState } from '../../lib/compute/states.ts';
import {
  awsTestClientConfig,
  describeWithMoto,
  motoEndpoint,
  uniquePrefix,
} from '../support/emulators.ts';
import { buildInstance } from '../unit/notifications/fixtures.ts';

const SOURCE = 'stratus.compute';
const NOW = new Date('2024-03-10T10:30:00.125Z');

interface ReceivedEvent {
  source: string;
  'detail-type': string;
  resources: string[];
  detail: Record<string, unknown>;
}

/** Twelve notifications of every family: instance start/end, update, error, api.fault. */
function twelveNotifications(): Notification[] {
  const out: Notification[] = [];
  const base = { host: 'stratus', requestId: 'req-int', now: NOW };
  for (let i = 0; i < 4; i++) {
    const instance = buildInstance({
      instance_id: `00000000-0000-4000-8000-00000000000${i}`,
      display_name: `vm-${i}`,
    });
    const commandId = `cmd-int-${i}`;
    out.push(
      instanceNotification({
        ...base,
        commandId,
        instance,
        eventType: 'compute.instance.create.start',
        extra: { image_name: 'cirros' },
      }),
      instanceNotification({
        ...base,
        commandId,
        instance,
        eventType: 'compute.instance.create.end',
        includeFixedIps: true,
        extra: { message: 'Success' },
      }),
    );
  }
  const instance = buildInstance({ task_state: TaskState.POWERING_OFF });
  out.push(
    updateNotification({
      ...base,
      commandId: 'cmd-int-stop',
      mode: 'vm_and_task_state',
      old: instance,
      new: {
        ...instance,
        vm_state: VmState.STOPPED,
        task_state: null,
        version: instance.version + 1,
      },
      auditPeriod: currentAuditPeriod('hour', NOW),
    })!,
    errorNotification({
      ...base,
      commandId: 'cmd-int-reboot',
      instance,
      action: 'reboot',
      error: {
        exception: 'DriverError',
        message: 'reboot failed — hypervisor said “no”',
        code: 500,
      },
    }),
    apiFaultNotification({
      ...base,
      commandId: 'cmd-int-bad',
      operation: 'reboot_instance',
      instanceId: instance.instance_id,
      exception: 'InstanceInvalidState',
      status: 409,
    }),
    apiFaultNotification({
      ...base,
      commandId: 'cmd-int-worse',
      operation: 'build_and_run_instance',
      instanceId: null,
      exception: 'InvalidCommand',
      status: 400,
    }),
  );
  return out;
}

describeWithMoto('EventBridgePublisher on moto_server', () => {
  const prefix = uniquePrefix('notif');
  const busName = `${prefix}-notifications`;
  let events: EventBridgeClient;
  let sqs: SQSClient;
  let queueUrl: string;

  beforeAll(async () => {
    const config = awsTestClientConfig(motoEndpoint());
    events = new EventBridgeClient(config);
    sqs = new SQSClient(config);
    await events.send(new CreateEventBusCommand({ Name: busName }));
    queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: `${prefix}-subscriber` })))
      .QueueUrl!;
    const { Attributes } = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }),
    );
    await events.send(
      new PutRuleCommand({
        Name: `${prefix}-all-compute`,
        EventBusName: busName,
        EventPattern: JSON.stringify({ source: [SOURCE] }),
      }),
    );
    await events.send(
      new PutTargetsCommand({
        Rule: `${prefix}-all-compute`,
        EventBusName: busName,
        Targets: [{ Id: 'subscriber', Arn: Attributes!.QueueArn! }],
      }),
    );
  });

  async function receive(expected: number): Promise<ReceivedEvent[]> {
    const received: ReceivedEvent[] = [];
    for (let poll = 0; poll < 20 && received.length < expected; poll++) {
      const { Messages = [] } = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 1,
        }),
      );
      received.push(...Messages.map((m) => JSON.parse(m.Body!) as ReceivedEvent));
      if (Messages.length > 0) {
        await sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
          }),
        );
      }
    }
    return received;
  }

  it('delivers all 12 notifications with detail-type = event_type and detail = the envelope', async () => {
    const batch = twelveNotifications();
    expect(batch).toHaveLength(12);
    await new EventBridgePublisher({ client: events, busName, source: SOURCE }).publish(batch);

    const received = await receive(12);
    expect(received).toHaveLength(12);
    const byId = new Map(received.map((e) => [e.detail.message_id as string, e]));
    expect(byId.size).toBe(12);
    for (const n of batch) {
      const event = byId.get(n.message_id);
      expect(event, n.event_type).toBeDefined();
      expect(event!.source).toBe(SOURCE);
      expect(event!['detail-type']).toBe(n.event_type);
      expect(event!.resources).toEqual(n.instance_id ? [n.instance_id] : []);
      expect(event!.detail).toEqual(JSON.parse(JSON.stringify(envelopeOf(n))));
      expect(() => assertValidDetail(event!.detail as { event_type: string })).not.toThrow();
      expectMatchesRegisteredSchema(event! as { source: string; 'detail-type': string });
    }
  });
});
