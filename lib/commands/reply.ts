// Answers a command's `reply_to` queue with its outcome (CONTRACT §1 "Outcome").

import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Outcome } from '../store/state-store.ts';

export interface ReplySender {
  send(queueUrl: string, outcome: Outcome): Promise<void>;
}

export class SqsReplySender implements ReplySender {
  private readonly sqs: SQSClient;

  constructor(sqs: SQSClient) {
    this.sqs = sqs;
  }

  async send(queueUrl: string, outcome: Outcome): Promise<void> {
    await this.sqs.send(
      new SendMessageCommand({
        QueueUrl: queueUrl,
        MessageBody: JSON.stringify(outcome),
        MessageAttributes: {
          command_id: { DataType: 'String', StringValue: outcome.command_id },
          status: { DataType: 'String', StringValue: outcome.status },
        },
      }),
    );
  }
}

export class InMemoryReplySender implements ReplySender {
  readonly sent: { queueUrl: string; outcome: Outcome }[] = [];

  async send(queueUrl: string, outcome: Outcome): Promise<void> {
    this.sent.push({ queueUrl, outcome: structuredClone(outcome) });
  }
}
