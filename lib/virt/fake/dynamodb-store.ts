// The fake hypervisor in DynamoDB, so the fake driver keeps its guests between Lambda
// invocations. Key schema: TABLES.fakeHypervisor (pk `node#<node>`, sk `guest#<instanceId>`).
// Reads are strongly consistent: a hypervisor that forgets a guest it just created is not a
// hypervisor, and the conditional writes below rely on reading what they compare against.

import {
  CreateTableCommand,
  type DynamoDBClient,
  ResourceInUseException,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
} from '@aws-sdk/lib-dynamodb';
import { TABLES } from '../../topology.ts';
import type { CreateResult, FakeGuest, FakeHypervisorStore } from './store.ts';

const { partitionKey: PK, sortKey: SK } = TABLES.fakeHypervisor;

export function guestPartitionKey(node: string): string {
  return `node#${node}`;
}

export function guestSortKey(instanceId: string): string {
  return `guest#${instanceId}`;
}

function isConditionFailure(error: unknown): boolean {
  return error instanceof Error && error.name === 'ConditionalCheckFailedException';
}

function toItem(guest: FakeGuest): Record<string, unknown> {
  return { [PK]: guestPartitionKey(guest.node), [SK]: guestSortKey(guest.instanceId), ...guest };
}

function fromItem(item: Record<string, unknown>): FakeGuest {
  const { [PK]: _pk, [SK]: _sk, ...guest } = item;
  return guest as unknown as FakeGuest;
}

export interface DynamoDbFakeHypervisorStoreOptions {
  client: DynamoDBClient | DynamoDBDocumentClient;
  tableName: string;
}

export class DynamoDbFakeHypervisorStore implements FakeHypervisorStore {
  private readonly documents: DynamoDBDocumentClient;
  private readonly tableName: string;

  constructor(options: DynamoDbFakeHypervisorStoreOptions) {
    this.documents =
      options.client instanceof DynamoDBDocumentClient
        ? options.client
        : DynamoDBDocumentClient.from(options.client, {
            marshallOptions: { removeUndefinedValues: true },
          });
    this.tableName = options.tableName;
  }

  private key(node: string, instanceId: string): Record<string, string> {
    return { [PK]: guestPartitionKey(node), [SK]: guestSortKey(instanceId) };
  }

  async get(node: string, instanceId: string): Promise<FakeGuest | null> {
    const { Item } = await this.documents.send(
      new GetCommand({
        TableName: this.tableName,
        Key: this.key(node, instanceId),
        ConsistentRead: true,
      }),
    );
    return Item === undefined ? null : fromItem(Item);
  }

  async listByNode(node: string): Promise<FakeGuest[]> {
    const guests: FakeGuest[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.documents.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :guest)',
          ExpressionAttributeNames: { '#pk': PK, '#sk': SK },
          ExpressionAttributeValues: { ':pk': guestPartitionKey(node), ':guest': 'guest#' },
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) guests.push(fromItem(item));
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined);
    return guests;
  }

  async create(guest: FakeGuest): Promise<CreateResult> {
    // A guest deleted between our failed put and the read is gone again: try once more.
    for (let attempt = 0; attempt < 3; attempt += 1) {
      try {
        await this.documents.send(
          new PutCommand({
            TableName: this.tableName,
            Item: toItem(guest),
            ConditionExpression: 'attribute_not_exists(#pk)',
            ExpressionAttributeNames: { '#pk': PK },
          }),
        );
        return { created: true };
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
      const existing = await this.get(guest.node, guest.instanceId);
      if (existing !== null) return { created: false, existing };
    }
    throw new Error(
      `guest ${guest.instanceId} on ${guest.node} keeps appearing and vanishing; giving up`,
    );
  }

  async replace(guest: FakeGuest, expectedSequence: number): Promise<boolean> {
    try {
      await this.documents.send(
        new PutCommand({
          TableName: this.tableName,
          Item: toItem(guest),
          ConditionExpression: '#sequence = :expected',
          ExpressionAttributeNames: { '#sequence': 'sequence' },
          ExpressionAttributeValues: { ':expected': expectedSequence },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async delete(node: string, instanceId: string): Promise<FakeGuest | null> {
    try {
      const { Attributes } = await this.documents.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: this.key(node, instanceId),
          ConditionExpression: 'attribute_exists(#pk)',
          ExpressionAttributeNames: { '#pk': PK },
          ReturnValues: 'ALL_OLD',
        }),
      );
      return Attributes === undefined ? null : fromItem(Attributes);
    } catch (error) {
      if (isConditionFailure(error)) return null;
      throw error;
    }
  }
}

/**
 * Creates the fake hypervisor table (on DynamoDB Local for tests and `npm start`; the deployed
 * table comes from the CDK stack). Idempotent: an existing table is left alone.
 */
export async function createFakeHypervisorTable(
  client: DynamoDBClient,
  name: string,
): Promise<void> {
  try {
    await client.send(
      new CreateTableCommand({
        TableName: name,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: PK, AttributeType: 'S' },
          { AttributeName: SK, AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: PK, KeyType: 'HASH' },
          { AttributeName: SK, KeyType: 'RANGE' },
        ],
      }),
    );
  } catch (error) {
    if (!(error instanceof ResourceInUseException)) throw error;
  }
  await waitUntilTableExists({ client, maxWaitTime: 60, minDelay: 1 }, { TableName: name });
}
