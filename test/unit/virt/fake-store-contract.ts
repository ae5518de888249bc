// The FakeHypervisorStore contract, run against every implementation: in memory here
// (fake-store.test.ts) and on DynamoDB Local (test/integration/fake-driver-dynamodb.test.ts).
import { describe, expect, it } from 'vitest';
import { PowerState } from '../../../lib/compute/states.ts';
import type { FakeGuest, FakeHypervisorStore } from '../../../lib/virt/fake/store.ts';

let serial = 0;

export function guest(overrides: Partial<FakeGuest> = {}): FakeGuest {
  serial += 1;
  return {
    instanceId: `guest-${serial}-${Math.random().toString(36).slice(2, 8)}`,
    node: 'node-a',
    powerState: PowerState.RUNNING,
    flavor: { vcpus: 1, memory_mb: 512, disk_gb: 1 },
    ports: [
      {
        port_id: 'p1',
        network_id: 'n1',
        mac: 'fa:16:3e:00:00:01',
        fixed_ips: [
          {
            address: '10.0.0.2',
            version: 4,
            label: 'n1',
            vif_mac: 'fa:16:3e:00:00:01',
            type: 'fixed',
            floating_ips: [],
            meta: {},
          },
        ],
      },
    ],
    interfaces: [],
    volumes: {},
    rescued: false,
    consoleLog: 'FAKE CONSOLE OUTPUT',
    startedAt: '2026-03-01T12:00:00.000Z',
    createdBy: 'cmd-1',
    updatedAt: '2026-03-01T12:00:00.000Z',
    sequence: 1_000_000,
    ...overrides,
  };
}

export function describeFakeHypervisorStore(
  name: string,
  makeStore: () => FakeHypervisorStore,
): void {
  describe(`${name} (FakeHypervisorStore contract)`, () => {
    it('reads back what it created, and null for an unknown guest', async () => {
      const store = makeStore();
      const g = guest({ volumes: { '/dev/vdb': 'vol-1' }, startedAt: null });
      expect(await store.get(g.node, g.instanceId)).toBeNull();
      expect(await store.create(g)).toEqual({ created: true });
      expect(await store.get(g.node, g.instanceId)).toEqual(g);
    });

    it('does not overwrite an existing guest on create, and returns it', async () => {
      const store = makeStore();
      const g = guest();
      await store.create(g);
      const second = { ...g, powerState: PowerState.SHUTDOWN, createdBy: 'cmd-2' };
      expect(await store.create(second)).toEqual({ created: false, existing: g });
      expect(await store.get(g.node, g.instanceId)).toEqual(g);
    });

    it('keys guests by node: the same instance id on two nodes is two guests', async () => {
      const store = makeStore();
      const a = guest({ node: 'node-a' });
      const b = { ...a, node: 'node-b', powerState: PowerState.PAUSED };
      await store.create(a);
      expect(await store.create(b)).toEqual({ created: true });
      expect((await store.get('node-b', a.instanceId))?.powerState).toBe(PowerState.PAUSED);
      expect((await store.get('node-a', a.instanceId))?.powerState).toBe(PowerState.RUNNING);
    });

    it('replaces only when the stored sequence is the expected one', async () => {
      const store = makeStore();
      const g = guest();
      await store.create(g);
      const next = { ...g, powerState: PowerState.SHUTDOWN, sequence: g.sequence + 1 };
      expect(await store.replace(next, g.sequence - 1)).toBe(false);
      expect(await store.replace(next, g.sequence)).toBe(true);
      expect(await store.get(g.node, g.instanceId)).toEqual(next);
      expect(await store.replace({ ...next, sequence: next.sequence + 1 }, g.sequence)).toBe(false);
      expect(await store.replace(guest(), 1)).toBe(false); // never creates
    });

    it('lets exactly one of two racing writers win', async () => {
      const store = makeStore();
      const g = guest();
      const creates = await Promise.all([
        store.create(g),
        store.create({ ...g, createdBy: 'other' }),
      ]);
      expect(creates.filter((r) => r.created)).toHaveLength(1);
      const replaces = await Promise.all([
        store.replace(
          { ...g, powerState: PowerState.PAUSED, sequence: g.sequence + 1 },
          g.sequence,
        ),
        store.replace(
          { ...g, powerState: PowerState.SHUTDOWN, sequence: g.sequence + 1 },
          g.sequence,
        ),
      ]);
      expect(replaces.filter(Boolean)).toHaveLength(1);
    });

    it('lists a node’s guests only', async () => {
      const store = makeStore();
      const node = `node-${Math.random().toString(36).slice(2, 8)}`;
      const mine = [guest({ node }), guest({ node }), guest({ node })];
      for (const g of [...mine, guest({ node: `${node}-other` })]) await store.create(g);
      const listed = await store.listByNode(node);
      expect(listed.map((g) => g.instanceId).sort()).toEqual(mine.map((g) => g.instanceId).sort());
      expect(await store.listByNode('empty-node')).toEqual([]);
    });

    it('deletes a guest once, returning what it deleted', async () => {
      const store = makeStore();
      const g = guest();
      await store.create(g);
      expect(await store.delete(g.node, g.instanceId)).toEqual(g);
      expect(await store.delete(g.node, g.instanceId)).toBeNull();
      expect(await store.get(g.node, g.instanceId)).toBeNull();
    });
  });
}
