// The shard queue's SQS adapter: tasks go out ten per SendMessageBatch; a batch entry SQS
// refused fails the fan-out (the next tick sends it again: shard runs are idempotent).

import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { ShardTaskQueue } from './fan-out.ts';
import type { ShardTask } from './run-shard.ts';

const SQS_BATCH = 10;

export class SqsShardTaskQueue implements ShardTaskQueue {
  private readonly sqs: SQSClient;
  private readonly queueUrl: string;

  constructor(sqs: SQSClient, queueUrl: string) {
    this.sqs = sqs;
    this.queueUrl = queueUrl;
  }

  async send(tasks: readonly ShardTask[]): Promise<void> {
    for (let i = 0; i < tasks.length; i += SQS_BATCH) {
      const chunk = tasks.slice(i, i + SQS_BATCH);
      const out = await this.sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: this.queueUrl,
          Entries: chunk.map((task, n) => ({ Id: String(n), MessageBody: JSON.stringify(task) })),
        }),
      );
      if (out.Failed && out.Failed.length > 0) {
        const codes = out.Failed.map((f) => f.Code ?? 'unknown').join(', ');
        throw new Error(`shard queue refused ${out.Failed.length} task(s): ${codes}`);
      }
    }
  }
}
