// The resource tracker's contract, run against the in-memory twin (node-store.test.ts) and
// DynamoDB Local (test/integration/resources-contract.test.ts): the same scenarios, so the twin
// the domain tests use cannot drift from the adapter that runs in Lambda. Every test uses node
// names of its own, so the suites can share one table.

import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { VmState } from '../../../lib/compute/states.ts';
import { updateAvailableResource } from '../../../lib/resources/audit.ts';
import {
  abortClaim,
  confirmMove,
  dropClaim,
  dropInstanceClaims,
  instanceClaim,
  liveMigrationClaim,
  moveClaim,
  rebuildClaim,
  releaseClaim,
  revertMove,
} from '../../../lib/resources/claims.ts';
import { ComputeResourcesUnavailableError } from '../../../lib/resources/errors.ts';
import type { NodeStore } from '../../../lib/resources/node-store.ts';
import { describeNodes, refreshNodes } from '../../../lib/resources/nodes.ts';
import {
  NoValidHostError,
  selectAndClaim,
  selectAndMoveClaim,
} from '../../../lib/resources/scheduler.ts';
import { limitsOf } from '../../../lib/resources/capacity.ts';
import { type Claim, ClaimKind, sumResources, usageOf } from '../../../lib/resources/types.ts';
import type { MigrationStore } from '../../../lib/store/migration-store.ts';
import type { StateStore } from '../../../lib/store/state-store.ts';
import {
  MEDIUM,
  type NodeSpec,
  SMALL,
  T0,
  type TestDeps,
  flavor,
  makeDeps,
  makeInstance,
  placeOn,
  storeInstance,
} from './fixtures.ts';
import type { ResourceConfig } from '../../../lib/resources/deps.ts';

export interface Stores {
  store: StateStore;
  nodes: NodeStore;
  migrations: MigrationStore;
}

/** 200 concurrent claimers on DynamoDB Local take tens of seconds on a small machine. */
const CONCURRENT_TEST_TIMEOUT_MS = 240_000;

const rand = () => randomBytes(4).toString('hex');

/** Every node's usage equals the sum of its claims and stays within its limits. */
export async function expectConsistent(deps: TestDeps, nodes: readonly string[]): Promise<void> {
  for (const name of nodes) {
    const node = await deps.nodes.getNode(name);
    const claims = await deps.nodes.listClaims(name);
    expect(node, name).not.toBeNull();
    expect(usageOf(node!), name).toEqual(sumResources(claims));
    expect(node!.claim_count, name).toBe(claims.length);
    const limits = limitsOf(node!);
    expect(node!.vcpus_used).toBeLessThanOrEqual(limits.vcpus);
    expect(node!.memory_mb_used).toBeLessThanOrEqual(limits.memory_mb);
    expect(node!.local_gb_used).toBeLessThanOrEqual(limits.local_gb);
  }
}

export function describeResourceTracker(name: string, makeStores: () => Stores): void {
  describe(name, () => {
    function setup(specs: Omit<NodeSpec, 'node'>[], config: Partial<ResourceConfig> = {}) {
      const tag = rand();
      const nodes = specs.map((s, i) => ({ node: `n${i + 1}-${tag}`, ...s }));
      const deps = makeDeps(nodes, { ...makeStores(), config });
      return { deps, names: nodes.map((n) => n.node) };
    }
    const node4 = { vcpus: 4, memory_mb: 8192, local_gb: 100 };
    const noReserve = { reserved_host_memory_mb: 0 };

    describe('inventory', () => {
      it('records each driver node with the configured ratios and reserved amounts, and no usage', async () => {
        const { deps, names } = setup([node4, { ...node4, availability_zone: 'az-2' }], {
          cpu_allocation_ratio: 2,
          reserved_host_memory_mb: 1024,
          reserved_host_disk_mb: 2048,
        });
        const res = await refreshNodes(deps);
        expect(res.changed).toEqual(names);
        const n2 = await deps.nodes.getNode(names[1]!);
        expect(n2).toMatchObject({
          node: names[1],
          availability_zone: 'az-2',
          vcpus: 4,
          memory_mb: 8192,
          local_gb: 100,
          reserved_vcpus: 0,
          reserved_memory_mb: 1024,
          reserved_disk_gb: 2,
          cpu_allocation_ratio: 2,
          vcpus_used: 0,
          memory_mb_used: 0,
          local_gb_used: 0,
          generation: 1,
        });
      });

      it('increments the generation only when the inventory changes, and never touches usage', async () => {
        const { deps, names } = setup([node4], noReserve);
        await refreshNodes(deps);
        await instanceClaim(deps, await storeInstance(deps.store, makeInstance()), names[0]!);
        expect((await refreshNodes(deps)).changed).toEqual([]);
        deps.driver.specs[0]!.vcpus = 8;
        expect((await refreshNodes(deps)).changed).toEqual(names);
        expect(await deps.nodes.getNode(names[0]!)).toMatchObject({
          vcpus: 8,
          generation: 2,
          vcpus_used: 1,
          memory_mb_used: 2048,
        });
      });

      it('refuses an inventory write computed from a stale generation', async () => {
        const { deps, names } = setup([node4]);
        const [n] = (await refreshNodes(deps)).nodes;
        expect(await deps.nodes.saveInventory(names[0]!, { ...n!, vcpus: 6 }, 1, T0)).toBe(true);
        expect(await deps.nodes.saveInventory(names[0]!, { ...n!, vcpus: 7 }, 1, T0)).toBe(false);
        expect(await deps.nodes.saveInventory(names[0]!, n!, null, T0)).toBe(false);
        expect((await deps.nodes.getNode(names[0]!))!.vcpus).toBe(6);
      });
    });

    describe('instance claims', () => {
      it('add the flavor to the node’s usage in one write with the claim item', async () => {
        const { deps, names } = setup([node4], noReserve);
        await refreshNodes(deps);
        const i = await storeInstance(
          deps.store,
          makeInstance({ flavor: { ...MEDIUM, ephemeral_gb: 2 } }),
        );
        const claim = await instanceClaim(deps, i, names[0]!);
        expect(claim).toMatchObject({
          node: names[0],
          instance_id: i.instance_id,
          kind: 'instance',
          vcpus: 2,
          memory_mb: 4096,
          local_gb: 42,
          migration_id: null,
          flavor: 'm1.medium',
          owner: i.task_owner,
        });
        expect(await deps.nodes.listClaims(names[0]!)).toEqual([claim]);
        await expectConsistent(deps, names);
      });

      it('are taken once: a second claim (a redelivered build) renews the same claim', async () => {
        const { deps, names } = setup([node4], noReserve);
        await refreshNodes(deps);
        const i = await storeInstance(deps.store, makeInstance());
        const first = await instanceClaim(deps, i, names[0]!);
        deps.setNow(new Date(T0.getTime() + 60_000));
        const again = await instanceClaim(deps, i, names[0]!);
        expect(again.claim_id).toBe(first.claim_id);
        expect(again.updated_at).toBe(new Date(T0.getTime() + 60_000).toISOString());
        expect((await deps.nodes.getNode(names[0]!))!.vcpus_used).toBe(1);
        await expectConsistent(deps, names);
      });

      it('fit exactly up to the limit; one more fails with ComputeResourcesUnavailable and changes nothing', async () => {
        // vcpus: (4 − 1) × 2 = 6 → six 1-vCPU instances; memory and disk are roomy.
        const { deps, names } = setup([{ vcpus: 4, memory_mb: 65536, local_gb: 1000 }], {
          cpu_allocation_ratio: 2,
          reserved_host_cpus: 1,
        });
        await refreshNodes(deps);
        for (let k = 0; k < 6; k++) {
          await instanceClaim(deps, await storeInstance(deps.store, makeInstance()), names[0]!);
        }
        const err = await instanceClaim(
          deps,
          await storeInstance(deps.store, makeInstance()),
          names[0]!,
        ).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ComputeResourcesUnavailableError);
        expect((err as Error).message).toBe(
          'Insufficient compute resources: Free vcpu 0.00 VCPU < requested 1 VCPU.',
        );
        expect((await deps.nodes.getNode(names[0]!))!.vcpus_used).toBe(6);
        await expectConsistent(deps, names);
      });

      it('are bounded by reserved memory exactly as Nova’s formula says', async () => {
        // (8192 − 2048) × 1.0 = 6144 MB: three 2048 MB instances and no fourth.
        const { deps, names } = setup([{ vcpus: 64, memory_mb: 8192, local_gb: 1000 }], {
          reserved_host_memory_mb: 2048,
        });
        await refreshNodes(deps);
        for (let k = 0; k < 3; k++) {
          await instanceClaim(deps, await storeInstance(deps.store, makeInstance()), names[0]!);
        }
        await expect(
          instanceClaim(deps, await storeInstance(deps.store, makeInstance()), names[0]!),
        ).rejects.toThrow('Free memory 0.00 MB < requested 2048 MB');
      });

      it('are bounded by the disk ratio and reserved disk (ceil to GB)', async () => {
        // (100 − ceil(1500/1024)=2) × 1.25 = 122.5 → 122 GB: six 20 GB instances (120), not seven.
        const { deps, names } = setup([{ vcpus: 64, memory_mb: 65536, local_gb: 100 }], {
          disk_allocation_ratio: 1.25,
          reserved_host_disk_mb: 1500,
          reserved_host_memory_mb: 0,
        });
        await refreshNodes(deps);
        for (let k = 0; k < 6; k++) {
          await instanceClaim(deps, await storeInstance(deps.store, makeInstance()), names[0]!);
        }
        const tiny = flavor('disk.2', 1, 1, 2);
        await instanceClaim(
          deps,
          await storeInstance(deps.store, makeInstance({ flavor: tiny })),
          names[0]!,
        );
        await expect(
          instanceClaim(
            deps,
            await storeInstance(deps.store, makeInstance({ flavor: tiny })),
            names[0]!,
          ),
        ).rejects.toThrow('Free disk 0.50 GB < requested 2 GB');
      });

      it('refuse an instance larger than the node whatever the ratio (max_unit)', async () => {
        const { deps, names } = setup([node4], { cpu_allocation_ratio: 16, ...noReserve });
        await refreshNodes(deps);
        const big = makeInstance({ flavor: flavor('big', 5, 512, 1) });
        await expect(instanceClaim(deps, big, names[0]!)).rejects.toThrow(
          'Requested vcpu 5 VCPU > total 4 VCPU (max_unit)',
        );
      });

      it('refuse an unknown node with ComputeResourcesUnavailable', async () => {
        const { deps } = setup([node4]);
        await expect(instanceClaim(deps, makeInstance(), `ghost-${rand()}`)).rejects.toBeInstanceOf(
          ComputeResourcesUnavailableError,
        );
      });

      it('are dropped and aborted once; rebuild claims nothing', async () => {
        const { deps, names } = setup([node4], noReserve);
        await refreshNodes(deps);
        const i = await storeInstance(deps.store, makeInstance());
        const claim = await instanceClaim(deps, i, names[0]!);
        expect(rebuildClaim({ ...i, node: names[0]! })).toEqual({
          kind: 'nop',
          node: names[0],
          instance_id: i.instance_id,
        });
        await abortClaim(deps, rebuildClaim(i));
        expect((await deps.nodes.getNode(names[0]!))!.vcpus_used).toBe(1);
        await abortClaim(deps, claim);
        await abortClaim(deps, claim);
        expect(await dropClaim(deps, claim)).toBe(false);
        expect(usageOf((await deps.nodes.getNode(names[0]!))!)).toEqual({
          vcpus: 0,
          memory_mb: 0,
          local_gb: 0,
        });
        await expectConsistent(deps, names);
      });

      it('lets an abort of an old claim leave a claim taken again since alone', async () => {
        const { deps, names } = setup([node4], noReserve);
        await refreshNodes(deps);
        const i = await storeInstance(deps.store, makeInstance());
        const old = await instanceClaim(deps, i, names[0]!);
        await dropClaim(deps, old);
        const again = await instanceClaim(deps, i, names[0]!);
        await abortClaim(deps, old);
        expect(await deps.nodes.getClaim(again)).toEqual(again);
      });
    });

    describe('move claims', () => {
      async function moving(config: Partial<ResourceConfig> = noReserve) {
        const { deps, names } = setup([node4, node4], config);
        await refreshNodes(deps);
        const i = await storeInstance(deps.store, makeInstance());
        await instanceClaim(deps, i, names[0]!);
        const placed = await placeOn(deps.store, i, names[0]!);
        const m = {
          id: `mig-${rand()}`,
          instance_id: i.instance_id,
          source_node: names[0]!,
          dest_node: names[1]!,
          new_flavor: MEDIUM,
        };
        return { deps, names, instance: placed, m };
      }

      it('claim the new flavor at the destination and hold the old usage at the source', async () => {
        const { deps, names, instance, m } = await moving();
        const dest = await moveClaim(deps, instance, m);
        expect(dest).toMatchObject({
          kind: 'move-dest',
          node: names[1],
          vcpus: 2,
          migration_id: m.id,
        });
        const src = await deps.nodes.listClaims(names[0]!);
        expect(src).toMatchObject([{ kind: 'move-source', vcpus: 1, migration_id: m.id }]);
        expect((await deps.nodes.getNode(names[0]!))!.vcpus_used).toBe(1);
        expect((await deps.nodes.getNode(names[1]!))!.vcpus_used).toBe(2);
        expect((await moveClaim(deps, instance, m)).claim_id).toBe(dest.claim_id);
        await expectConsistent(deps, names);
      });

      it('confirm: the source usage goes and the destination claim becomes the instance’s', async () => {
        const { deps, names, instance, m } = await moving();
        await moveClaim(deps, instance, m);
        await confirmMove(deps, m);
        await confirmMove(deps, m);
        expect(await deps.nodes.listClaims(names[0]!)).toEqual([]);
        expect(await deps.nodes.listClaims(names[1]!)).toMatchObject([
          { kind: 'instance', vcpus: 2, migration_id: null },
        ]);
        await expectConsistent(deps, names);
      });

      it('revert: the destination usage goes and the source claim is the instance’s again', async () => {
        const { deps, names, instance, m } = await moving();
        const dest = await moveClaim(deps, instance, m);
        await revertMove(deps, m);
        await abortClaim(deps, dest);
        expect(await deps.nodes.listClaims(names[1]!)).toEqual([]);
        expect(await deps.nodes.listClaims(names[0]!)).toMatchObject([
          { kind: 'instance', vcpus: 1, migration_id: null },
        ]);
        await expectConsistent(deps, names);
      });

      it('on one node count both flavors until confirm, as Placement does', async () => {
        const { deps, names, instance, m } = await moving();
        const same = { ...m, dest_node: names[0]! };
        await moveClaim(deps, instance, same);
        expect((await deps.nodes.getNode(names[0]!))!.vcpus_used).toBe(3);
        await confirmMove(deps, same);
        expect(await deps.nodes.listClaims(names[0]!)).toMatchObject([
          { kind: 'instance', vcpus: 2 },
        ]);
        await expectConsistent(deps, names);
      });

      it('that find no room change nothing at either node', async () => {
        const { deps, names, instance, m } = await moving();
        const huge = { ...m, new_flavor: flavor('huge', 4, 16384, 1) };
        await expect(moveClaim(deps, instance, huge)).rejects.toBeInstanceOf(
          ComputeResourcesUnavailableError,
        );
        expect(await deps.nodes.listClaims(names[0]!)).toMatchObject([{ kind: 'instance' }]);
        expect(await deps.nodes.listClaims(names[1]!)).toEqual([]);
        await expectConsistent(deps, names);
      });

      it('live migration claims the instance’s own flavor', async () => {
        const { deps, names, instance, m } = await moving();
        const claim = await liveMigrationClaim(deps, instance, { ...m, new_flavor: MEDIUM });
        expect(claim).toMatchObject({ node: names[1], vcpus: 1, memory_mb: 2048 });
        await dropInstanceClaims(deps, instance.instance_id, names);
        expect(await deps.nodes.listClaims(names[0]!)).toEqual([]);
        expect(await deps.nodes.listClaims(names[1]!)).toEqual([]);
        await expectConsistent(deps, names);
      });
    });

    describe('commits', () => {
      it('are all or nothing: a failed condition leaves every item as it was', async () => {
        const { deps, names } = setup([node4, node4], noReserve);
        await refreshNodes(deps);
        const i = await storeInstance(deps.store, makeInstance());
        const claim = await instanceClaim(deps, i, names[0]!);
        const n1 = await deps.nodes.getNode(names[0]!);
        const result = await deps.nodes.commit({
          nodes: [
            {
              node: names[0]!,
              delta: { vcpus: -1, memory_mb: -2048, local_gb: -20 },
              claimsDelta: -1,
            },
          ],
          puts: [],
          deletes: [{ key: claim, claim_id: 'not-this-one' }],
          now: T0,
        });
        expect(result).toBe('condition');
        expect(await deps.nodes.getNode(names[0]!)).toEqual(n1);
        expect(await deps.nodes.getClaim(claim)).toEqual(claim);
      });

      it('refuse a capacity change computed from a stale generation', async () => {
        const { deps, names } = setup([node4], noReserve);
        const [n] = (await refreshNodes(deps)).nodes;
        await deps.nodes.saveInventory(names[0]!, { ...n!, vcpus: 2 }, n!.generation, T0);
        const claim: Claim = {
          claim_id: 'c1',
          node: names[0]!,
          instance_id: 'i-stale',
          kind: ClaimKind.INSTANCE,
          vcpus: 1,
          memory_mb: 1,
          local_gb: 1,
          migration_id: null,
          source_node: null,
          dest_node: null,
          flavor: 'x',
          owner: null,
          created_at: T0.toISOString(),
          updated_at: T0.toISOString(),
        };
        const commit = (generation: number) =>
          deps.nodes.commit({
            nodes: [
              {
                node: names[0]!,
                delta: { vcpus: 1, memory_mb: 1, local_gb: 1 },
                claimsDelta: 1,
                capacity: { generation, maxBefore: { vcpus: 15, memory_mb: 8191, local_gb: 99 } },
              },
            ],
            puts: [{ claim }],
            deletes: [],
            now: T0,
          });
        expect(await commit(n!.generation)).toBe('condition');
        expect(await commit(n!.generation + 1)).toBe('committed');
        // The same claim again: a double apply is impossible.
        expect(await commit(n!.generation + 1)).toBe('condition');
        expect((await deps.nodes.getNode(names[0]!))!.vcpus_used).toBe(1);
      });

      it('refuse usage past the limit in the write itself, whatever the planner read', async () => {
        // The planner's fail-fast is bypassed: the condition alone must hold the limit.
        const { deps, names } = setup([node4], { cpu_allocation_ratio: 1, ...noReserve });
        const [n] = (await refreshNodes(deps)).nodes;
        await instanceClaim(deps, makeInstance(), names[0]!);
        await instanceClaim(deps, makeInstance(), names[0]!); // vcpus_used = 2 of 4
        const commit = (id: string, vcpus: number, maxBefore: number) =>
          deps.nodes.commit({
            nodes: [
              {
                node: names[0]!,
                delta: { vcpus, memory_mb: 0, local_gb: 0 },
                claimsDelta: 1,
                capacity: { generation: n!.generation, maxBefore: { vcpus: maxBefore } },
              },
            ],
            puts: [
              {
                claim: {
                  claim_id: id,
                  node: names[0]!,
                  instance_id: id,
                  kind: ClaimKind.INSTANCE,
                  vcpus,
                  memory_mb: 0,
                  local_gb: 0,
                  migration_id: null,
                  source_node: null,
                  dest_node: null,
                  flavor: 'x',
                  owner: null,
                  created_at: T0.toISOString(),
                  updated_at: T0.toISOString(),
                },
              },
            ],
            deletes: [],
            now: T0,
          });
        // limit 4, request 3: max usage before = 1 < 2 stored.
        expect(await commit('too-big', 3, 4 - 3)).toBe('condition');
        // request 2: max usage before = 2 = stored: exactly at the limit.
        expect(await commit('fits', 2, 4 - 2)).toBe('committed');
        expect((await deps.nodes.getNode(names[0]!))!.vcpus_used).toBe(4);
        await expectConsistent(deps, names);
      });

      it('refuse a release when the instance moved on since the decision', async () => {
        const { deps, names } = setup([node4], noReserve);
        await refreshNodes(deps);
        const i = await storeInstance(deps.store, makeInstance());
        const claim = await instanceClaim(deps, i, names[0]!);
        await placeOn(deps.store, i, 'elsewhere'); // version 2
        expect(await releaseClaim(deps, claim, 1)).toBe(false);
        expect(await releaseClaim(deps, { ...claim, updated_at: 'renewed-meanwhile' }, 2)).toBe(
          false,
        );
        expect(await deps.nodes.getClaim(claim)).toEqual(claim);
        expect(await releaseClaim(deps, claim, 2)).toBe(true);
        await expectConsistent(deps, names);
      });
    });

    describe('selection', () => {
      it(
        '200 concurrent builds on nodes that fit exactly N: N claims, the rest NoValidHost',
        async () => {
          // Per node: vcpus (4 − 0) × 1.0 = 4 one-vCPU instances, memory (16384 − 512) / 2048 = 7:
          // 4 per node, 5 nodes → N = 20.
          const { deps, names } = setup(
            Array.from({ length: 5 }, () => ({ vcpus: 4, memory_mb: 16384, local_gb: 1000 })),
            { cpu_allocation_ratio: 1.0 },
          );
          await refreshNodes(deps);
          const instances = Array.from({ length: 200 }, () => makeInstance());
          const results = await Promise.allSettled(instances.map((i) => selectAndClaim(deps, i)));
          const won = results.filter((r) => r.status === 'fulfilled');
          const lost = results.filter((r) => r.status === 'rejected');
          expect(won).toHaveLength(20);
          for (const r of lost) {
            expect(r.reason).toBeInstanceOf(NoValidHostError);
            expect((r.reason as Error).message).toBe(
              'No valid host was found. There are not enough hosts available.',
            );
          }
          await expectConsistent(deps, names);
          for (const name of names) expect((await deps.nodes.getNode(name))!.vcpus_used).toBe(4);
        },
        CONCURRENT_TEST_TIMEOUT_MS,
      );

      it(
        '200 concurrent resizes onto nodes that fit exactly N: N move claims, the rest NoValidHost',
        async () => {
          // Source: one roomy node; destinations: 4 nodes taking 3 m1.medium (2 vCPU) each → N = 12.
          const { deps, names } = setup(
            [
              { vcpus: 400, memory_mb: 1_000_000, local_gb: 10_000 },
              ...Array.from({ length: 4 }, () => ({ vcpus: 6, memory_mb: 65536, local_gb: 1000 })),
            ],
            { cpu_allocation_ratio: 1.0 },
          );
          await refreshNodes(deps);
          const source = names[0]!;
          const instances = [];
          for (let k = 0; k < 200; k++) {
            const i = makeInstance({ node: source, availability_zone: 'nova' });
            await instanceClaim(deps, i, source);
            instances.push(i);
          }
          const results = await Promise.allSettled(
            instances.map((i) =>
              selectAndMoveClaim(deps, i, { id: `mig-${i.instance_id}`, new_flavor: MEDIUM }),
            ),
          );
          const won = results.filter((r) => r.status === 'fulfilled');
          expect(won).toHaveLength(12);
          for (const r of results) {
            if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(NoValidHostError);
          }
          await expectConsistent(deps, names);
          // The source holds every instance's old usage: 12 under migrations, 188 as before.
          const src = await deps.nodes.listClaims(source);
          expect(src.filter((c) => c.kind === 'move-source')).toHaveLength(12);
          expect(src.filter((c) => c.kind === 'instance')).toHaveLength(188);
          expect((await deps.nodes.getNode(source))!.vcpus_used).toBe(200);
        },
        CONCURRENT_TEST_TIMEOUT_MS,
      );

      it('describes each node’s inventory, limits, usage and claims', async () => {
        const { deps, names } = setup([node4], { cpu_allocation_ratio: 2 });
        await refreshNodes(deps);
        const placed = await selectAndClaim(deps, makeInstance());
        const [d] = await describeNodes(deps);
        expect(d).toMatchObject({
          node: names[0],
          enabled: true,
          maintenance: false,
          inventory: {
            VCPU: { total: 4, reserved: 0, allocation_ratio: 2, limit: 8, used: 1, free: 7 },
            MEMORY_MB: { total: 8192, reserved: 512, limit: 7680, used: 2048, free: 5632 },
            DISK_GB: { total: 100, limit: 100, used: 20, free: 80 },
          },
          usage: { vcpus: 1, memory_mb: 2048, local_gb: 20 },
          claims: [placed.claim],
        });
      });
    });

    describe('audit', () => {
      it('releases the claim of a build that died between its claim and its spawn', async () => {
        const { deps, names } = setup([node4], noReserve);
        await refreshNodes(deps);
        const crashed = await storeInstance(deps.store, makeInstance());
        await selectAndClaim(deps, crashed); // ...and the build never wrote its node
        const kept = await storeInstance(deps.store, makeInstance());
        await selectAndClaim(deps, kept);
        await placeOn(deps.store, kept, names[0]!);
        const early = await updateAvailableResource(deps, new Date(T0.getTime() + 60_000));
        expect(early.nodes[0]!.claims.map((c) => c.verdict.action)).toEqual(['keep', 'keep']);
        const later = new Date(T0.getTime() + 16 * 60_000);
        const report = await updateAvailableResource(deps, later);
        const released = report.nodes[0]!.claims.filter((c) => c.verdict.action === 'release');
        expect(released.map((c) => c.claim.instance_id)).toEqual([crashed.instance_id]);
        expect(released[0]!.applied).toBe(true);
        expect(await deps.nodes.listClaims(names[0]!)).toMatchObject([
          { instance_id: kept.instance_id },
        ]);
        await expectConsistent(deps, names);
      });

      it('releases at once the claims of deleted and unknown instances (after grace)', async () => {
        const { deps, names } = setup([node4], noReserve);
        await refreshNodes(deps);
        const gone = await storeInstance(deps.store, makeInstance());
        await instanceClaim(deps, gone, names[0]!);
        await placeOn(deps.store, gone, names[0]!);
        await deps.store.updateInstance({
          instanceId: gone.instance_id,
          action: {
            subject: { kind: 'instance', id: gone.instance_id },
            commandId: gone.task_owner!,
          },
          expect: {},
          changes: { vm_state: VmState.DELETED, deleted: true },
          now: T0,
        });
        await instanceClaim(deps, makeInstance(), names[0]!); // never stored
        const report = await updateAvailableResource(deps, T0);
        expect(report.nodes[0]!.claims.map((c) => [c.verdict.action, c.verdict.why])).toEqual(
          expect.arrayContaining([
            ['release', 'instance deleted'],
            ['keep', 'instance not found yet (within grace)'],
          ]),
        );
        await updateAvailableResource(deps, new Date(T0.getTime() + 3600_000));
        expect(await deps.nodes.listClaims(names[0]!)).toEqual([]);
        await expectConsistent(deps, names);
      });

      it('reports drift between the counters and the claims, and repairs it', async () => {
        const { deps, names } = setup([node4], noReserve);
        await refreshNodes(deps);
        const i = await storeInstance(deps.store, makeInstance());
        await instanceClaim(deps, i, names[0]!);
        await placeOn(deps.store, i, names[0]!);
        const n = (await deps.nodes.getNode(names[0]!))!;
        await deps.nodes.resetUsage(
          names[0]!,
          n.usage_version,
          { vcpus: 3, memory_mb: 2048, local_gb: 0 },
          1,
          T0,
        );
        const report = await updateAvailableResource(deps, T0);
        expect(report.nodes[0]).toMatchObject({
          drift: { vcpus: 2, memory_mb: 0, local_gb: -20 },
          driftRepaired: true,
          snapshot: true,
        });
        expect(deps.logs.some((l) => l.extra[0]?.metric === 'ResourceDrift')).toBe(true);
        await expectConsistent(deps, names);
        const clean = await updateAvailableResource(deps, T0);
        expect(clean.nodes[0]).toMatchObject({ drift: { vcpus: 0, memory_mb: 0, local_gb: 0 } });
      });

      it('settles a move claim whose migration ended as the migration ended', async () => {
        const { deps, names } = setup([node4, node4], noReserve);
        await refreshNodes(deps);
        const i = await storeInstance(deps.store, makeInstance());
        await instanceClaim(deps, i, names[0]!);
        const placed = await placeOn(deps.store, i, names[1]!);
        const created = await deps.migrations.create({
          id: `mig-${rand()}`,
          instance_id: i.instance_id,
          source_node: names[0]!,
          dest_node: names[1]!,
          source_host: 'stratus',
          dest_host: 'stratus',
          old_flavor: SMALL,
          new_flavor: MEDIUM,
          migration_type: 'resize',
          status: 'pre-migrating',
          created_at: T0.toISOString(),
          updated_at: T0.toISOString(),
        });
        const m = created.created ? created.migration : created.existing;
        await moveClaim(deps, placed, m);
        const inFlight = await updateAvailableResource(deps, new Date(T0.getTime() + 3600_000));
        expect(inFlight.nodes.flatMap((n) => n.claims.map((c) => c.verdict.action))).toEqual([
          'keep',
          'keep',
        ]);
        for (const [from, to] of [['pre-migrating', 'error']] as const) {
          await deps.migrations.changeStatus({ migration: m, expect: [from], status: to, now: T0 });
        }
        // The instance had reached the destination: the move is confirmed there.
        await updateAvailableResource(deps, new Date(T0.getTime() + 3600_000));
        expect(await deps.nodes.listClaims(names[0]!)).toEqual([]);
        expect(await deps.nodes.listClaims(names[1]!)).toMatchObject([
          { kind: 'instance', vcpus: 2 },
        ]);
        await expectConsistent(deps, names);
      });
    });
  });
}
