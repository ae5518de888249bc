// DynamoDbImageStore on DynamoDB Local: the ImageStore contract, and the layout it promises
// (the image under its own key, a copy in its instance's partition that other readers skip).
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDbImageStore, createImageStore } from '../../lib/images/dynamodb-image-store.ts';
import { DynamoDbStateStore } from '../../lib/store/dynamodb-state-store.ts';
import { createStateTable } from '../../lib/store/tables.ts';
import { tableName } from '../../lib/topology.ts';
import { awsTestClientConfig, emulatorEndpoints, uniquePrefix } from '../support/emulators.ts';
import { describeImageStore, newImage } from '../unit/images/image-store-contract.ts';

let client: DynamoDBClient;
let doc: DynamoDBDocumentClient;
let table: string;

beforeAll(async () => {
  client = new DynamoDBClient(awsTestClientConfig(emulatorEndpoints().dynamodb));
  doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  table = tableName(uniquePrefix('images'), 'state');
  await createStateTable(client, table);
});

afterAll(() => client?.destroy());

describeImageStore('DynamoDbImageStore', () => new DynamoDbImageStore(doc, table));

describe('DynamoDbImageStore on the state table', () => {
  it('is what createImageStore builds from a deployment config', async () => {
    const store = createImageStore(
      { tables: { state: table, idempotency: '', fakeHypervisor: '' } },
      { doc },
    );
    const image = newImage();
    await store.create(image);
    expect(await new DynamoDbImageStore(doc, table).get(image.id)).toMatchObject({ id: image.id });
  });

  it("leaves the instance partition's actions and faults as they were", async () => {
    const store = new DynamoDbImageStore(doc, table);
    const instanceId = 'instance-with-images';
    await store.create(
      newImage({ properties: { instance_uuid: instanceId, image_type: 'snapshot' } }),
    );
    const state = new DynamoDbStateStore(doc, table);
    expect(await state.listActions(instanceId)).toEqual([]);
    expect(await state.listFaults(instanceId)).toEqual([]);
    expect(await state.getInstance(instanceId)).toBeNull();
  });
});
