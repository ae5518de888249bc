// `stratus dlq list [operation]` and `stratus dlq redrive <operation> (--all | --message-id ID…)`.
//
// Listing peeks: it receives every visible message (hiding them briefly) and makes them visible
// again at once. Redriving sends each chosen message's body back to its source queue and only
// then deletes it from the DLQ, so a failure in between duplicates a command (harmless: the
// command id makes it the same command) but never loses one.

import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
} from '@aws-sdk/client-sqs';
import type { Operation } from '../topology.ts';
import { CliError, UsageError } from './errors.ts';
import { dash, shortTime, table } from './format.ts';
import { resolveOperation } from './operations.ts';
import type { CliRuntime } from './runtime.ts';
import type { Target } from './target.ts';

/** How long a peeked message stays hidden if we die before releasing it. */
const PEEK_VISIBILITY_SECONDS = 30;

type QueueName = Operation | 'lifecycle';

interface DeadQueue {
  name: QueueName;
  dlqUrl: string;
  sourceUrl: string;
}

function deadQueues(target: Target): DeadQueue[] {
  const { sqs } = target.endpoints;
  const queues: DeadQueue[] = [];
  for (const [op, dlqUrl] of Object.entries(sqs.dlqs ?? {}) as [Operation, string][]) {
    const sourceUrl = sqs.queues[op];
    if (sourceUrl) queues.push({ name: op, dlqUrl, sourceUrl });
  }
  if (sqs.lifecycle && sqs.lifecycle_dlq) {
    queues.push({ name: 'lifecycle', dlqUrl: sqs.lifecycle_dlq, sourceUrl: sqs.lifecycle });
  }
  return queues;
}

function pick(target: Target, word: string): DeadQueue {
  const name: QueueName | undefined = word === 'lifecycle' ? 'lifecycle' : resolveOperation(word);
  if (!name) throw new UsageError(`unknown operation ${word}`, 'see: stratus --help');
  const queue = deadQueues(target).find((q) => q.name === name);
  if (!queue) throw new CliError(`${target.source} has no DLQ for ${name}`);
  return queue;
}

async function receiveAll(target: Target, url: string): Promise<Message[]> {
  const seen = new Map<string, Message>();
  for (;;) {
    const out = await target.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        VisibilityTimeout: PEEK_VISIBILITY_SECONDS,
        MessageSystemAttributeNames: ['All'],
      }),
    );
    const fresh = (out.Messages ?? []).filter((m) => m.MessageId && !seen.has(m.MessageId));
    if (fresh.length === 0) return [...seen.values()];
    for (const m of fresh) seen.set(m.MessageId!, m);
  }
}

async function release(target: Target, url: string, messages: readonly Message[]): Promise<void> {
  for (let i = 0; i < messages.length; i += 10) {
    await target.sqs.send(
      new ChangeMessageVisibilityBatchCommand({
        QueueUrl: url,
        Entries: messages.slice(i, i + 10).map((m, j) => ({
          Id: String(j),
          ReceiptHandle: m.ReceiptHandle!,
          VisibilityTimeout: 0,
        })),
      }),
    );
  }
}

function commandOf(m: Message): { command_id?: string; instance_id?: string } {
  try {
    const body = JSON.parse(m.Body ?? '') as Record<string, unknown>;
    const detail = (body.detail ?? {}) as Record<string, unknown>; // lifecycle events
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    return {
      command_id: str(body.command_id),
      instance_id: str(body.instance_id) ?? str(detail.instanceId),
    };
  } catch {
    return {};
  }
}

export async function listDlq(
  target: Target,
  rt: CliRuntime,
  o: { operation?: string; json: boolean },
): Promise<number> {
  const queues = o.operation ? [pick(target, o.operation)] : deadQueues(target);
  const rows: Record<string, unknown>[] = [];
  for (const q of queues) {
    const messages = await receiveAll(target, q.dlqUrl);
    try {
      for (const m of messages) {
        const { command_id, instance_id } = commandOf(m);
        const action = command_id ? await target.store.findActionByCommand(command_id) : null;
        const sent = m.Attributes?.SentTimestamp;
        rows.push({
          queue: q.name,
          message_id: m.MessageId,
          command_id: command_id ?? null,
          instance_id: instance_id ?? null,
          sent_at: sent ? new Date(Number(sent)).toISOString() : null,
          last_error: action?.progress?.last_error ?? null,
          receive_count: action?.progress?.receive_count ?? null,
        });
      }
    } finally {
      await release(target, q.dlqUrl, messages);
    }
  }
  if (o.json) {
    rt.io.out(JSON.stringify(rows, null, 2));
    return 0;
  }
  if (rows.length === 0) {
    rt.io.out(o.operation ? `the ${queues[0]!.name} DLQ is empty` : 'every DLQ is empty');
    return 0;
  }
  rt.io.out(
    table(
      ['QUEUE', 'MESSAGE ID', 'COMMAND ID', 'INSTANCE', 'SENT', 'LAST ERROR'],
      rows.map((r) => [
        String(r.queue),
        String(r.message_id),
        dash(r.command_id),
        dash(r.instance_id),
        shortTime(r.sent_at as string | null),
        dash(r.last_error),
      ]),
    ),
  );
  return 0;
}

export async function redriveDlq(
  target: Target,
  rt: CliRuntime,
  o: { operation: string; all: boolean; messageIds: readonly string[]; json: boolean },
): Promise<number> {
  if (o.all === o.messageIds.length > 0) {
    throw new UsageError('say which messages: --all, or --message-id ID (repeatable)');
  }
  const q = pick(target, o.operation);
  const messages = await receiveAll(target, q.dlqUrl);
  const chosen = o.all ? messages : messages.filter((m) => o.messageIds.includes(m.MessageId!));
  const missing = o.messageIds.filter((id) => !messages.some((m) => m.MessageId === id));
  const redriven: string[] = [];
  try {
    for (const m of chosen) {
      await target.sqs.send(
        new SendMessageCommand({
          QueueUrl: q.sourceUrl,
          MessageBody: m.Body ?? '',
          ...(m.MessageAttributes ? { MessageAttributes: m.MessageAttributes } : {}),
        }),
      );
      await target.sqs.send(
        new DeleteMessageCommand({ QueueUrl: q.dlqUrl, ReceiptHandle: m.ReceiptHandle! }),
      );
      redriven.push(m.MessageId!);
    }
  } finally {
    await release(
      target,
      q.dlqUrl,
      messages.filter((m) => !redriven.includes(m.MessageId!)),
    );
  }
  if (o.json) rt.io.out(JSON.stringify({ queue: q.name, redriven, missing }, null, 2));
  else {
    rt.io.out(`redrove ${redriven.length} message(s) from the ${q.name} DLQ to its queue`);
    for (const id of missing) rt.io.err(`not in the DLQ: ${id}`);
  }
  return missing.length > 0 ? 1 : 0;
}
