// The resource tracker's contract on DynamoDB Local, beside the in-memory twin: the claims'
// TransactWriteItems (capacity conditions, claims created once, exact-item deletes, instance
// guards) behave as the twin the domain tests use.

import { Agent } from 'node:http';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { beforeAll } from 'vitest';
import { DynamoDbNodeStore } from '../../lib/resources/dynamodb-node-store.ts';
import { InMemoryNodeStore } from '../../lib/resources/memory-node-store.ts';
import { DynamoDbStateStore } from '../../lib/store/dynamodb-state-store.ts';
import { InMemoryStateStore } from '../../lib/store/memory-state-store.ts';
import { DynamoDbMigrationStore, InMemoryMigrationStore } from '../../lib/store/migration-store.ts';
import { createStateTable } from '../../lib/store/tables.ts';
import { awsTestClientConfig, emulatorEndpoints, uniquePrefix } from '../support/emulators.ts';
import { describeResourceTracker } from '../unit/resources/contract.ts';

let doc: DynamoDBDocumentClient;
const table = `${uniquePrefix('resources')}-state`;

beforeAll(async () => {
  const client = new DynamoDBClient({
    ...awsTestClientConfig(emulatorEndpoints().dynamodb),
    // 200 concurrent claimers: one socket each instead of a queue behind 50.
    requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets: 256 }) },
  });
  await createStateTable(client, table);
  doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
});

describeResourceTracker('resource tracker on DynamoDB Local', () => ({
  store: new DynamoDbStateStore(doc, table),
  nodes: new DynamoDbNodeStore(doc, table),
  migrations: new DynamoDbMigrationStore(doc, table),
}));

describeResourceTracker('resource tracker on the in-memory twin', () => {
  const store = new InMemoryStateStore();
  return {
    store,
    nodes: new InMemoryNodeStore({ instances: store }),
    migrations: new InMemoryMigrationStore(),
  };
});
