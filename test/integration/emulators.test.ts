// Proves the emulators behind the integration suites are the real thing: each test exercises a
// behaviour that a stub or a thinner emulator (dynalite, sqslite, an in-memory bus) gets wrong.
import {
  CreateTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
} from '@aws-sdk/client-dynamodb';
import {
  CreateEventBusCommand,
  EventBridgeClient,
  PutEventsCommand,
  PutRuleCommand,
  PutTargetsCommand,
} from '@aws-sdk/client-eventbridge';
import {
  ChangeMessageVisibilityCommand,
  CreateQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SetQueueAttributesCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  awsTestClientConfig,
  describeWithMoto,
  emulatorEndpoints,
  motoEndpoint,
  uniquePrefix,
} from '../support/emulators.ts';

const prefix = uniquePrefix('emulators');

describe('DynamoDB Local', () => {
  const dynamodb = new DynamoDBClient(awsTestClientConfig(emulatorEndpoints().dynamodb));
  const table = `${prefix}-items`;

  beforeAll(async () => {
    await dynamodb.send(
      new CreateTableCommand({
        TableName: table,
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    await dynamodb.send(new PutItemCommand({ TableName: table, Item: { id: { S: 'taken' } } }));
  });
  afterAll(() => dynamodb.destroy());

  it('cancels a whole transaction when one condition fails, with per-item reasons', async () => {
    const transaction = new TransactWriteItemsCommand({
      TransactItems: [
        { Put: { TableName: table, Item: { id: { S: 'fresh' } } } },
        {
          Put: {
            TableName: table,
            Item: { id: { S: 'taken' } },
            ConditionExpression: 'attribute_not_exists(id)',
          },
        },
      ],
    });

    const error: unknown = await dynamodb.send(transaction).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(TransactionCanceledException);
    const reasons = (error as TransactionCanceledException).CancellationReasons;
    expect(reasons?.map((reason) => reason.Code)).toEqual(['None', 'ConditionalCheckFailed']);
    // All or nothing: the unconditional Put was rolled back with the failed one.
    const fresh = await dynamodb.send(
      new GetItemCommand({ TableName: table, Key: { id: { S: 'fresh' } } }),
    );
    expect(fresh.Item).toBeUndefined();
  });
});

describe('fauxqs (SQS)', () => {
  const sqs = new SQSClient(awsTestClientConfig(emulatorEndpoints().sqs));
  afterAll(() => sqs.destroy());

  async function createQueue(name: string, attributes: Record<string, string> = {}) {
    const { QueueUrl } = await sqs.send(
      new CreateQueueCommand({ QueueName: name, Attributes: attributes }),
    );
    if (QueueUrl === undefined) throw new Error(`no URL for queue ${name}`);
    return QueueUrl;
  }

  async function queueArn(queueUrl: string): Promise<string> {
    const { Attributes } = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }),
    );
    const arn = Attributes?.QueueArn;
    if (arn === undefined) throw new Error(`no ARN for queue ${queueUrl}`);
    return arn;
  }

  async function receive(queueUrl: string, visibilityTimeout?: number) {
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        VisibilityTimeout: visibilityTimeout,
        MessageSystemAttributeNames: ['ApproximateReceiveCount'],
      }),
    );
    return Messages;
  }

  it('moves a message to the DLQ after maxReceiveCount receives', async () => {
    const dlqUrl = await createQueue(`${prefix}-dlq`);
    const queueUrl = await createQueue(`${prefix}-work`, {
      RedrivePolicy: JSON.stringify({
        deadLetterTargetArn: await queueArn(dlqUrl),
        maxReceiveCount: 2,
      }),
    });
    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: 'poison' }));

    // A zero visibility timeout hands the message straight back, like a consumer that fails fast.
    const first = await receive(queueUrl, 0);
    const second = await receive(queueUrl, 0);
    const third = await receive(queueUrl, 0);

    expect(first.map((m) => m.Body)).toEqual(['poison']);
    expect(second.map((m) => m.Body)).toEqual(['poison']);
    expect(third).toEqual([]);
    const dead = await receive(dlqUrl);
    expect(dead.map((m) => m.Body)).toEqual(['poison']);
  });

  it('hides a received message for its visibility timeout', async () => {
    const queueUrl = await createQueue(`${prefix}-visibility`, { VisibilityTimeout: '300' });
    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: 'job' }));

    const [received] = await receive(queueUrl);
    expect(received?.Body).toBe('job');
    expect(await receive(queueUrl)).toEqual([]);

    // Giving it back (visibility 0) makes it receivable again, now on its second receive.
    await sqs.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: queueUrl,
        ReceiptHandle: received?.ReceiptHandle,
        VisibilityTimeout: 0,
      }),
    );
    const [again] = await receive(queueUrl);
    expect(again?.Body).toBe('job');
    expect(again?.Attributes?.ApproximateReceiveCount).toBe('2');
  });
});

describeWithMoto('moto_server (EventBridge -> SQS)', () => {
  let events: EventBridgeClient;
  let sqs: SQSClient;
  beforeAll(() => {
    events = new EventBridgeClient(awsTestClientConfig(motoEndpoint()));
    sqs = new SQSClient(awsTestClientConfig(motoEndpoint()));
  });
  afterAll(() => {
    events.destroy();
    sqs.destroy();
  });

  it('routes only events matching a rule on a custom bus to an SQS target', async () => {
    const busName = `${prefix}-bus`;
    const source = `${prefix}.compute`;
    const { EventBusArn } = await events.send(new CreateEventBusCommand({ Name: busName }));
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: `${prefix}-events` }));
    const { Attributes } = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }),
    );
    const targetArn = Attributes?.QueueArn;
    const { RuleArn } = await events.send(
      new PutRuleCommand({
        Name: `${prefix}-rule`,
        EventBusName: busName,
        EventPattern: JSON.stringify({
          source: [source],
          'detail-type': ['compute.instance.create.end'],
        }),
      }),
    );
    // The queue policy real AWS needs before EventBridge may deliver to a queue.
    await sqs.send(
      new SetQueueAttributesCommand({
        QueueUrl,
        Attributes: {
          Policy: JSON.stringify({
            Version: '2012-10-17',
            Statement: [
              {
                Effect: 'Allow',
                Principal: { Service: 'events.amazonaws.com' },
                Action: 'sqs:SendMessage',
                Resource: targetArn,
                Condition: { ArnEquals: { 'aws:SourceArn': RuleArn } },
              },
            ],
          }),
        },
      }),
    );
    await events.send(
      new PutTargetsCommand({
        Rule: `${prefix}-rule`,
        EventBusName: busName,
        Targets: [{ Id: 'queue', Arn: targetArn }],
      }),
    );

    const { FailedEntryCount } = await events.send(
      new PutEventsCommand({
        Entries: [
          {
            EventBusName: EventBusArn,
            Source: source,
            DetailType: 'compute.instance.delete.end',
            Detail: JSON.stringify({ instance_id: 'ignored' }),
          },
          {
            EventBusName: EventBusArn,
            Source: source,
            DetailType: 'compute.instance.create.end',
            Detail: JSON.stringify({ instance_id: 'i-1' }),
          },
        ],
      }),
    );
    expect(FailedEntryCount).toBe(0);

    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
    );
    const delivered = Messages.map((m) => JSON.parse(m.Body ?? '{}') as Record<string, unknown>);
    expect(delivered).toEqual([
      expect.objectContaining({
        source,
        'detail-type': 'compute.instance.create.end',
        detail: { instance_id: 'i-1' },
      }),
    ]);
  });
});
