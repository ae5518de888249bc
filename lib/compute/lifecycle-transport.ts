// How driver lifecycle events travel: as EventBridge events on the deployment's bus (source
// `stratus.virt`), routed by a rule to the lifecycle queue, where EC2's own state-change events
// arrive too. Where no bus routes them (the local control plane without an EventBridge
// endpoint), the same event JSON is sent straight to the lifecycle queue.

import { PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import * as z from 'zod/mini';
import '../validation.ts';
import type { AwsClients } from '../compose.ts';
import type { Config } from '../config.ts';
import type { LifecycleEvent, LifecycleEventSink } from '../virt/events.ts';
import { LIFECYCLE_EVENT_SOURCE } from '../topology.ts';
import { LifecycleTransition } from './states.ts';

export const LIFECYCLE_SOURCE = LIFECYCLE_EVENT_SOURCE;
export const LIFECYCLE_DETAIL_TYPE = 'Stratus Instance Lifecycle Event';

const LifecycleEventSchema = z.object({
  instanceId: z.string().check(z.minLength(1)),
  transition: z.enum(
    Object.values(LifecycleTransition) as [LifecycleTransition, ...LifecycleTransition[]],
  ),
  node: z.string(),
  occurredAt: z.string(),
  source: z.enum(['fake', 'ec2']),
  sequence: z.number(),
  guestGone: z.optional(z.boolean()),
});

const EventBridgeEnvelope = z.object({
  source: z.string(),
  'detail-type': z.string(),
  detail: z.unknown(),
});

/** The EventBridge-shaped JSON a lifecycle event travels as. */
export function lifecycleEnvelope(event: LifecycleEvent) {
  return { source: LIFECYCLE_SOURCE, 'detail-type': LIFECYCLE_DETAIL_TYPE, detail: event };
}

export type ParsedLifecycleMessage =
  | { kind: 'virt'; event: LifecycleEvent }
  /** An EC2 event (lib/virt/ec2/state-change.ts reads it): the whole EventBridge event. */
  | { kind: 'ec2'; event: unknown }
  | { kind: 'unknown'; reason: string };

/** Parses a lifecycle-queue message body (an EventBridge event delivered by a rule target). */
export function parseLifecycleMessage(body: string): ParsedLifecycleMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    return { kind: 'unknown', reason: 'not JSON' };
  }
  const env = EventBridgeEnvelope.safeParse(raw);
  if (!env.success) return { kind: 'unknown', reason: 'not an EventBridge event' };
  if (env.data.source === 'aws.ec2') return { kind: 'ec2', event: raw };
  if (env.data.source !== LIFECYCLE_SOURCE)
    return { kind: 'unknown', reason: `source ${env.data.source}` };
  const event = LifecycleEventSchema.safeParse(env.data.detail);
  if (!event.success) return { kind: 'unknown', reason: 'malformed lifecycle event' };
  return { kind: 'virt', event: event.data };
}

class EventBridgeLifecycleSink implements LifecycleEventSink {
  private readonly clients: AwsClients;
  private readonly bus: string;

  constructor(clients: AwsClients, bus: string) {
    this.clients = clients;
    this.bus = bus;
  }

  async emit(event: LifecycleEvent): Promise<void> {
    const out = await this.clients.eventbridge.send(
      new PutEventsCommand({
        Entries: [
          {
            EventBusName: this.bus,
            Source: LIFECYCLE_SOURCE,
            DetailType: LIFECYCLE_DETAIL_TYPE,
            Detail: JSON.stringify(event),
            Resources: [event.instanceId],
          },
        ],
      }),
    );
    if (out.FailedEntryCount) {
      throw new Error(`lifecycle event not accepted: ${out.Entries?.[0]?.ErrorCode ?? 'unknown'}`);
    }
  }
}

class SqsLifecycleSink implements LifecycleEventSink {
  private readonly clients: AwsClients;
  private readonly queueUrl: string;

  constructor(clients: AwsClients, queueUrl: string) {
    this.clients = clients;
    this.queueUrl = queueUrl;
  }

  async emit(event: LifecycleEvent): Promise<void> {
    await this.clients.sqs.send(
      new SendMessageCommand({
        QueueUrl: this.queueUrl,
        MessageBody: JSON.stringify(lifecycleEnvelope(event)),
      }),
    );
  }
}

/** STRATUS_LIFECYCLE_QUEUE_URL (local runs) sends straight to the queue; otherwise the bus. */
export function createLifecycleSink(
  config: Config,
  clients: AwsClients,
  env: Record<string, string | undefined>,
): LifecycleEventSink {
  const queueUrl = env.STRATUS_LIFECYCLE_QUEUE_URL;
  return queueUrl
    ? new SqsLifecycleSink(clients, queueUrl)
    : new EventBridgeLifecycleSink(clients, config.event_bus);
}
