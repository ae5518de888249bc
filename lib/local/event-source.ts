// Invokes a Lambda SQS handler the way the Lambda SQS event source mapping does, against any
// SQS endpoint: long-poll up to batchSize messages, build the SQS event, invoke the handler
// with a Context whose remaining time reflects the function timeout, delete what succeeded,
// and leave the failures to reappear after the visibility timeout, so the queue's redrive
// policy moves a message that keeps failing to its DLQ after maxReceiveCount receives.
// A handler that throws (or times out) fails the whole batch, as in Lambda.

import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';

export type SqsHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse | void>;

export interface EventSourceOptions {
  sqs: SQSClient;
  queueUrl: string;
  queueArn: string;
  handler: SqsHandler;
  functionName: string;
  timeoutSeconds: number;
  batchSize: number;
  /** Long-poll wait per receive (seconds). */
  waitTimeSeconds?: number;
  region?: string;
  onError?: (error: unknown) => void;
}

export function fakeLambdaContext(functionName: string, timeoutSeconds: number): Context {
  const deadline = Date.now() + timeoutSeconds * 1000;
  const requestId = crypto.randomUUID();
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${functionName}`,
    memoryLimitInMB: '512',
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `local/${requestId}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

function toRecord(m: Message, queueArn: string, region: string): SQSRecord {
  const a = m.Attributes ?? {};
  return {
    messageId: m.MessageId ?? '',
    receiptHandle: m.ReceiptHandle ?? '',
    body: m.Body ?? '',
    attributes: {
      ApproximateReceiveCount: a.ApproximateReceiveCount ?? '1',
      SentTimestamp: a.SentTimestamp ?? String(Date.now()),
      SenderId: a.SenderId ?? '',
      ApproximateFirstReceiveTimestamp: a.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
    },
    messageAttributes: {},
    md5OfBody: m.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: region,
  };
}

/** One receive-invoke-delete cycle. Returns how many messages it received. */
export async function pollOnce(o: EventSourceOptions): Promise<number> {
  const out = await o.sqs.send(
    new ReceiveMessageCommand({
      QueueUrl: o.queueUrl,
      MaxNumberOfMessages: Math.min(10, o.batchSize),
      WaitTimeSeconds: o.waitTimeSeconds ?? 1,
      MessageSystemAttributeNames: ['All'],
    }),
  );
  const messages = out.Messages ?? [];
  if (messages.length === 0) return 0;
  const records = messages.map((m) => toRecord(m, o.queueArn, o.region ?? 'us-east-1'));
  let failed: Set<string>;
  try {
    const response = await o.handler(
      { Records: records },
      fakeLambdaContext(o.functionName, o.timeoutSeconds),
    );
    failed = new Set((response?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
  } catch (e) {
    o.onError?.(e);
    failed = new Set(records.map((r) => r.messageId));
  }
  const succeeded = records.filter((r) => !failed.has(r.messageId));
  if (succeeded.length > 0) {
    await o.sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: o.queueUrl,
        Entries: succeeded.map((r, i) => ({ Id: String(i), ReceiptHandle: r.receiptHandle })),
      }),
    );
  }
  return messages.length;
}

/** Polls until stopped. stop() waits for the batch in flight, so no accepted message is lost. */
export function startEventSource(o: EventSourceOptions): { stop(): Promise<void> } {
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        await pollOnce(o);
      } catch (e) {
        o.onError?.(e);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
    },
  };
}
