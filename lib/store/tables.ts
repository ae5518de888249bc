// Creates the tables of lib/topology.ts on a DynamoDB endpoint (DynamoDB Local for tests and
// `npm start`). The deployed tables come from the CDK stack, which reads the same definitions.

import {
  CreateTableCommand,
  type DynamoDBClient,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { TABLES } from '../topology.ts';

async function create(
  client: DynamoDBClient,
  input: ConstructorParameters<typeof CreateTableCommand>[0],
  ttl?: string,
) {
  try {
    await client.send(new CreateTableCommand({ BillingMode: 'PAY_PER_REQUEST', ...input }));
  } catch (e) {
    if (!(e instanceof ResourceInUseException)) throw e;
    return; // already there: creating tables is idempotent
  }
  if (ttl) {
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: input.TableName,
        TimeToLiveSpecification: { AttributeName: ttl, Enabled: true },
      }),
    );
  }
}

export async function createStateTable(client: DynamoDBClient, name: string): Promise<void> {
  const t = TABLES.state;
  await create(
    client,
    {
      TableName: name,
      AttributeDefinitions: [
        ...new Set([
          t.partitionKey,
          t.sortKey,
          ...Object.values(t.indexes).flatMap((i) => [i.partitionKey, i.sortKey]),
        ]),
      ].map((AttributeName) => ({ AttributeName, AttributeType: 'S' as const })),
      KeySchema: [
        { AttributeName: t.partitionKey, KeyType: 'HASH' },
        { AttributeName: t.sortKey, KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: Object.values(t.indexes).map((i) => ({
        IndexName: i.name,
        KeySchema: [
          { AttributeName: i.partitionKey, KeyType: 'HASH' as const },
          { AttributeName: i.sortKey, KeyType: 'RANGE' as const },
        ],
        Projection: { ProjectionType: 'ALL' as const },
      })),
    },
    t.ttlAttribute,
  );
}

export async function createIdempotencyTable(client: DynamoDBClient, name: string): Promise<void> {
  const t = TABLES.idempotency;
  await create(
    client,
    {
      TableName: name,
      AttributeDefinitions: [{ AttributeName: t.partitionKey, AttributeType: 'S' }],
      KeySchema: [{ AttributeName: t.partitionKey, KeyType: 'HASH' }],
    },
    t.ttlAttribute,
  );
}
