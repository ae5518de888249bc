// The fake driver on DynamoDB Local: the store contract, the driver's lifecycle, and two driver
// instances (two Lambdas) racing to spawn the same instance.
import { DescribeTableCommand, DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PowerState } from '../../lib/compute/states.ts';
import { InstanceNotFoundError } from '../../lib/errors.ts';
import { tableName, TABLES } from '../../lib/topology.ts';
import { InMemoryLifecycleSink } from '../../lib/virt/events.ts';
import { FakeDriver } from '../../lib/virt/fake/driver.ts';
import {
  DynamoDbFakeHypervisorStore,
  createFakeHypervisorTable,
  guestPartitionKey,
  guestSortKey,
} from '../../lib/virt/fake/dynamodb-store.ts';
import { awsTestClientConfig, emulatorEndpoints, uniquePrefix } from '../support/emulators.ts';
import { describeFakeHypervisorStore } from '../unit/virt/fake-store-contract.ts';
import { NODES, ctx, makeInstance, spawnRequest } from '../unit/virt/fixtures.ts';

let client: DynamoDBClient;
let table: string;

beforeAll(async () => {
  client = new DynamoDBClient(awsTestClientConfig(emulatorEndpoints().dynamodb));
  table = tableName(uniquePrefix('fakehv'), 'fakeHypervisor');
  await createFakeHypervisorTable(client, table);
});

afterAll(() => {
  client?.destroy();
});

function driverOnTable(options: { async?: boolean } = {}): {
  driver: FakeDriver;
  sink: InMemoryLifecycleSink;
} {
  const sink = new InMemoryLifecycleSink();
  const driver = new FakeDriver({
    nodes: NODES,
    store: new DynamoDbFakeHypervisorStore({ client, tableName: table }),
    sink,
    async: options.async ?? false,
  });
  return { driver, sink };
}

describe('createFakeHypervisorTable', () => {
  it('creates the key schema of TABLES.fakeHypervisor and tolerates an existing table', async () => {
    await createFakeHypervisorTable(client, table);
    const { Table } = await client.send(new DescribeTableCommand({ TableName: table }));
    expect(Table?.TableStatus).toBe('ACTIVE');
    expect(Table?.KeySchema).toEqual([
      { AttributeName: TABLES.fakeHypervisor.partitionKey, KeyType: 'HASH' },
      { AttributeName: TABLES.fakeHypervisor.sortKey, KeyType: 'RANGE' },
    ]);
  });
});

describeFakeHypervisorStore(
  'DynamoDbFakeHypervisorStore',
  () => new DynamoDbFakeHypervisorStore({ client, tableName: table }),
);

describe('FakeDriver on DynamoDB', () => {
  it('stores guests under node#<node> / guest#<instanceId>', async () => {
    const { driver } = driverOnTable();
    const vm = makeInstance();
    await driver.spawn(ctx(), vm, spawnRequest());
    const { Item } = await client.send(
      new GetItemCommand({
        TableName: table,
        Key: {
          pk: { S: guestPartitionKey('fake-node-1') },
          sk: { S: guestSortKey(vm.instance_id) },
        },
        ConsistentRead: true,
      }),
    );
    expect(Item?.['pk']).toEqual({ S: `node#fake-node-1` });
    expect(Item?.['sk']).toEqual({ S: `guest#${vm.instance_id}` });
    expect(Item?.['powerState']).toEqual({ N: String(PowerState.RUNNING) });
  });

  it('spawns, reports, powers off and destroys a guest', async () => {
    const { driver } = driverOnTable();
    const vm = makeInstance();
    const spawned = await driver.spawn(
      ctx('build'),
      vm,
      spawnRequest({ requestedNetworks: [{ network_id: 'net-1', fixed_ip: '10.1.2.3' }] }),
    );
    expect(spawned).toMatchObject({ status: 'done', powerState: PowerState.RUNNING });
    expect(spawned.ports[0]?.fixed_ips[0]?.address).toBe('10.1.2.3');
    expect((await driver.getInfo(ctx(), vm)).state).toBe(PowerState.RUNNING);

    expect(await driver.powerOff(ctx('stop'), vm)).toEqual({
      status: 'done',
      powerState: PowerState.SHUTDOWN,
    });
    expect((await driver.getInfo(ctx(), vm)).state).toBe(PowerState.SHUTDOWN);
    expect(await driver.getAvailableResource(ctx(), 'fake-node-1')).toMatchObject({
      vcpus_used: expect.any(Number),
    });

    expect(await driver.destroy(ctx('delete'), vm)).toEqual({
      status: 'done',
      powerState: PowerState.NOSTATE,
    });
    await expect(driver.getInfo(ctx(), vm)).rejects.toBeInstanceOf(InstanceNotFoundError);
    expect(await driver.destroy(ctx('delete'), vm)).toMatchObject({ status: 'done' });
  });

  it('keeps the guest between driver instances, as between Lambda invocations', async () => {
    const vm = makeInstance({ node: 'fake-node-2' });
    await driverOnTable().driver.spawn(ctx(), vm, spawnRequest());
    const { driver } = driverOnTable();
    await driver.attachVolume(ctx(), vm, {
      connectionInfo: { volume_id: 'vol-1', driver_volume_type: 'fake', data: {} },
      mountpoint: '/dev/vdb',
    });
    expect(await driverOnTable().driver.getDiagnostics(ctx(), vm)).toHaveProperty('vdb_read');
    expect(await driverOnTable().driver.listInstanceUuids(ctx())).toContain(vm.instance_id);
  });

  it('two concurrent spawns of one instance on two driver instances leave exactly one guest', async () => {
    const vm = makeInstance({ node: 'fake-node-2' });
    const request = spawnRequest({ requestedNetworks: [{ network_id: 'net-1' }] });
    const one = driverOnTable({ async: true });
    const two = driverOnTable({ async: true });
    const results = await Promise.all([
      one.driver.spawn(ctx('build-x'), vm, request),
      two.driver.spawn(ctx('build-x'), vm, request),
    ]);
    // One created the guest (pending, with its event); the other found it there (done).
    expect(results.map((r) => r.status).sort()).toEqual(['done', 'pending']);
    expect(results[0]?.ports).toEqual(results[1]?.ports);
    expect([...one.sink.events, ...two.sink.events]).toHaveLength(1);

    const store = new DynamoDbFakeHypervisorStore({ client, tableName: table });
    const guests = (await store.listByNode('fake-node-2')).filter(
      (g) => g.instanceId === vm.instance_id,
    );
    expect(guests).toHaveLength(1);
  });

  it('serialises concurrent power changes of one guest through conditional writes', async () => {
    const vm = makeInstance();
    await driverOnTable().driver.spawn(ctx(), vm, spawnRequest());
    const drivers = [driverOnTable().driver, driverOnTable().driver, driverOnTable().driver];
    await Promise.all([
      drivers[0]!.attachVolume(ctx(), vm, {
        connectionInfo: { volume_id: 'a', driver_volume_type: 'fake', data: {} },
        mountpoint: '/dev/vdb',
      }),
      drivers[1]!.attachVolume(ctx(), vm, {
        connectionInfo: { volume_id: 'b', driver_volume_type: 'fake', data: {} },
        mountpoint: '/dev/vdc',
      }),
      drivers[2]!.powerOff(ctx(), vm),
    ]);
    const store = new DynamoDbFakeHypervisorStore({ client, tableName: table });
    const guest = await store.get('fake-node-1', vm.instance_id);
    // No update was lost: both volumes and the power change are there.
    expect(guest?.volumes).toEqual({ '/dev/vdb': 'a', '/dev/vdc': 'b' });
    expect(guest?.powerState).toBe(PowerState.SHUTDOWN);
  });
});
