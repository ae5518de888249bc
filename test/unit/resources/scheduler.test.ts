// Node selection: filters (operator flags, zone, capacity, driver constraints), the RAM weigher
// (spread by default, pack with a negative multiplier), the claim on the chosen node, the next
// candidate when that claim finds no room, and NoValidHost when none is left.

import { describe, expect, it } from 'vitest';
import { instanceClaim } from '../../../lib/resources/claims.ts';
import { refreshNodes } from '../../../lib/resources/nodes.ts';
import {
  NoValidHostError,
  filterNodes,
  instanceTypeFamilyConstraint,
  selectAndClaim,
  selectAndMoveClaim,
  weighNodes,
} from '../../../lib/resources/scheduler.ts';
import type { ComputeNode } from '../../../lib/resources/types.ts';
import { MEDIUM, T0, flavor, makeDeps, makeInstance } from './fixtures.ts';

const big = { vcpus: 16, memory_mb: 32768, local_gb: 500 };

async function nodesOf(deps: ReturnType<typeof makeDeps>): Promise<ComputeNode[]> {
  return (await refreshNodes(deps)).nodes;
}

describe('filters', () => {
  it('drop disabled nodes, nodes in maintenance, other zones, full nodes and other families', async () => {
    const deps = makeDeps([
      { node: 'ok', ...big },
      { node: 'off', ...big },
      { node: 'maint', ...big },
      { node: 'zone', ...big, availability_zone: 'az-2' },
      { node: 'tiny', vcpus: 1, memory_mb: 1024, local_gb: 10 },
      { node: 'dh-c5', ...big, instance_type_family: 'c5' },
      { node: 'dh-m1', ...big, instance_type_family: 'm1' },
    ]);
    const nodes = await nodesOf(deps);
    const flags = (n: string) => ({ enabled: n !== 'off', maintenance: n === 'maint' });
    const { passed, rejected } = filterNodes(
      nodes.map((node) => ({ node, ...flags(node.node) })),
      makeInstance(),
      makeInstance().flavor,
      { availability_zone: 'nova' },
    );
    expect(passed.map((n) => n.node)).toEqual(['ok', 'dh-m1']);
    expect(rejected).toEqual({
      off: 'ComputeFilter: disabled',
      maint: 'ComputeFilter: in maintenance',
      zone: 'AvailabilityZoneFilter: in az-2',
      tiny: expect.stringMatching(/^ResourcesFilter: Requested memory 2048 MB > total 1024 MB/),
      'dh-c5': 'InstanceTypeFamilyFilter: instance type family m1 is not c5',
    });
  });

  it('let a node with no instance type family take any flavor', () => {
    const node = { instance_type_family: null } as ComputeNode;
    expect(
      instanceTypeFamilyConstraint.check(node, makeInstance(), flavor('c5.large', 2, 1, 1)),
    ).toBeNull();
  });
});

describe('weighers', () => {
  const n = (node: string, free: number) =>
    ({ node, memory_mb: free + 512, reserved_memory_mb: 512, memory_mb_used: 0 }) as ComputeNode;

  it('spread by default: most free RAM first, ties by name', () => {
    expect(weighNodes([n('b', 10), n('a', 10), n('c', 30)], 1).map((x) => x.node)).toEqual([
      'c',
      'a',
      'b',
    ]);
  });

  it('pack with a negative ram_weight_multiplier: least free RAM first', () => {
    expect(weighNodes([n('b', 10), n('c', 30), n('a', 20)], -1).map((x) => x.node)).toEqual([
      'b',
      'a',
      'c',
    ]);
  });

  it('follow config ram_weight_multiplier in selection', async () => {
    const specs = [
      { node: 'roomy', ...big },
      { node: 'snug', vcpus: 16, memory_mb: 8192, local_gb: 500 },
    ];
    const spread = makeDeps(specs);
    expect((await selectAndClaim(spread, makeInstance())).node).toBe('roomy');
    const pack = makeDeps(specs, { config: { ram_weight_multiplier: -1 } });
    expect((await selectAndClaim(pack, makeInstance())).node).toBe('snug');
  });
});

describe('selectAndClaim', () => {
  it('reads the operators’ flags from the node-state store', async () => {
    const deps = makeDeps([
      { node: 'a', ...big },
      { node: 'b', ...big },
    ]);
    await deps.nodeState.update({
      node: 'a',
      changes: { enabled: false },
      commandId: 'c',
      now: T0,
    });
    await deps.nodeState.update({
      node: 'b',
      changes: { maintenance: true },
      commandId: 'c',
      now: T0,
    });
    await expect(selectAndClaim(deps, makeInstance())).rejects.toBeInstanceOf(NoValidHostError);
    await deps.nodeState.update({
      node: 'b',
      changes: { maintenance: false },
      commandId: 'c',
      now: T0,
    });
    expect((await selectAndClaim(deps, makeInstance())).node).toBe('b');
  });

  it('claims on the next candidate when the best one filled up after it was read', async () => {
    const deps = makeDeps(
      [
        { node: 'a', vcpus: 1, memory_mb: 65536, local_gb: 500 },
        { node: 'b', vcpus: 1, memory_mb: 4096, local_gb: 500 },
      ],
      { config: { cpu_allocation_ratio: 1, reserved_host_memory_mb: 0 } },
    );
    await refreshNodes(deps);
    // Someone fills `a` between the scheduler's read and its claim.
    const read = deps.nodes.getNodes.bind(deps.nodes);
    let filled = false;
    deps.nodes.getNodes = async (names) => {
      const out = await read(names);
      if (!filled && names.length === 2) {
        filled = true;
        await instanceClaim(deps, makeInstance(), 'a');
      }
      return out;
    };
    const placed = await selectAndClaim(deps, makeInstance());
    expect(placed).toMatchObject({ node: 'b', availability_zone: 'nova', claim: { node: 'b' } });
    expect(deps.logs.some((l) => l.message === 'Claim refused, trying the next node')).toBe(true);
  });

  it('answers Nova’s NoValidHost when no node is left', async () => {
    const deps = makeDeps([{ node: 'a', vcpus: 1, memory_mb: 1024, local_gb: 10 }]);
    await expect(selectAndClaim(deps, makeInstance())).rejects.toThrow(
      'No valid host was found. There are not enough hosts available.',
    );
  });

  it('keeps to the requested node and zone', async () => {
    const deps = makeDeps([
      { node: 'a', ...big },
      { node: 'b', ...big, availability_zone: 'az-2' },
      { node: 'c', vcpus: 16, memory_mb: 8192, local_gb: 500, availability_zone: 'az-2' },
    ]);
    expect((await selectAndClaim(deps, makeInstance(), { availability_zone: 'az-2' })).node).toBe(
      'b',
    );
    expect(await selectAndClaim(deps, makeInstance(), { node: 'c' })).toMatchObject({
      node: 'c',
      availability_zone: 'az-2',
    });
    await expect(
      selectAndClaim(deps, makeInstance(), { node: 'a', availability_zone: 'az-2' }),
    ).rejects.toBeInstanceOf(NoValidHostError);
  });

  it('gives a redelivered build the claim it took before, wherever that is', async () => {
    const deps = makeDeps([
      { node: 'a', ...big },
      { node: 'b', vcpus: 16, memory_mb: 8192, local_gb: 500 },
    ]);
    const instance = makeInstance();
    const first = await selectAndClaim(deps, instance, { node: 'b' });
    deps.setNow(new Date(T0.getTime() + 5000));
    const again = await selectAndClaim(deps, instance);
    expect(again.node).toBe('b');
    expect(again.claim.claim_id).toBe(first.claim.claim_id);
    expect(await deps.nodes.listClaims('a')).toEqual([]);
  });
});

describe('selectAndMoveClaim', () => {
  it('chooses another node in the instance’s zone and holds the source', async () => {
    const deps = makeDeps([
      { node: 'src', ...big },
      { node: 'far', ...big, availability_zone: 'az-2' },
      { node: 'dst', vcpus: 16, memory_mb: 16384, local_gb: 500 },
    ]);
    await refreshNodes(deps);
    const instance = makeInstance({ node: 'src', availability_zone: 'nova' });
    await instanceClaim(deps, instance, 'src');
    const placed = await selectAndMoveClaim(deps, instance, { id: 'm1', new_flavor: MEDIUM });
    expect(placed).toMatchObject({ node: 'dst', claim: { kind: 'move-dest', migration_id: 'm1' } });
    const again = await selectAndMoveClaim(deps, instance, { id: 'm1', new_flavor: MEDIUM });
    expect(again.claim.claim_id).toBe(placed.claim.claim_id);
    expect((await deps.nodes.listClaims('src')).map((c) => c.kind)).toEqual(['move-source']);
  });

  it('may stay on the node when the driver can move in place', async () => {
    const deps = makeDeps([{ node: 'src', ...big }]);
    await refreshNodes(deps);
    const instance = makeInstance({ node: 'src', availability_zone: 'nova' });
    await instanceClaim(deps, instance, 'src');
    await expect(
      selectAndMoveClaim(deps, instance, { id: 'm1', new_flavor: MEDIUM }),
    ).rejects.toBeInstanceOf(NoValidHostError);
    const placed = await selectAndMoveClaim(
      deps,
      instance,
      { id: 'm1', new_flavor: MEDIUM },
      { allowSameNode: true },
    );
    expect(placed.node).toBe('src');
  });
});
