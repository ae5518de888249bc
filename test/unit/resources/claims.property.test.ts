// A property test over random claim / move / confirm / revert / abort / drop sequences on the
// in-memory twin: after every step each node's usage equals the sum of its claims and stays
// within (total − reserved) × ratio, and each instance holds either one instance claim or one
// move (a destination claim, with the source usage held) — never anything else.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  abortClaim,
  confirmMove,
  dropInstanceClaims,
  instanceClaim,
  moveClaim,
  revertMove,
} from '../../../lib/resources/claims.ts';
import {
  ClaimConflictError,
  ComputeResourcesUnavailableError,
} from '../../../lib/resources/errors.ts';
import { refreshNodes } from '../../../lib/resources/nodes.ts';
import { type Claim, ClaimKind } from '../../../lib/resources/types.ts';
import { expectConsistent } from './contract.ts';
import { flavor, makeDeps, makeInstance } from './fixtures.ts';

const NODES = [
  { node: 'p1', vcpus: 4, memory_mb: 8192, local_gb: 60 },
  { node: 'p2', vcpus: 2, memory_mb: 4096, local_gb: 100 },
  { node: 'p3', vcpus: 8, memory_mb: 6144, local_gb: 40 },
];
const FLAVORS = [flavor('a', 1, 1024, 10), flavor('b', 2, 2048, 20), flavor('c', 3, 3000, 5)];
const INSTANCES = 6;

type Op =
  | { op: 'claim'; i: number; node: number; f: number }
  | { op: 'move'; i: number; node: number; f: number }
  | { op: 'confirm' | 'revert' | 'abort' | 'drop'; i: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    op: fc.constant('claim' as const),
    i: fc.nat(INSTANCES - 1),
    node: fc.nat(NODES.length - 1),
    f: fc.nat(FLAVORS.length - 1),
  }),
  fc.record({
    op: fc.constant('move' as const),
    i: fc.nat(INSTANCES - 1),
    node: fc.nat(NODES.length - 1),
    f: fc.nat(FLAVORS.length - 1),
  }),
  fc.record({
    op: fc.constantFrom('confirm' as const, 'revert' as const, 'abort' as const, 'drop' as const),
    i: fc.nat(INSTANCES - 1),
  }),
);

/** Failures a random sequence may legitimately meet; anything else fails the property. */
function expected(e: unknown): void {
  if (e instanceof ComputeResourcesUnavailableError || e instanceof ClaimConflictError) return;
  throw e;
}

describe('claims under random sequences', () => {
  it('keep usage == sum(claims) <= limit and one claim shape per instance after every step', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 1, maxLength: 40 }),
        fc.record({
          cpu: fc.constantFrom(1, 1.5, 2),
          reservedMb: fc.constantFrom(0, 512, 1000),
          reservedDiskMb: fc.constantFrom(0, 1024, 5000),
        }),
        async (ops, cfg) => {
          const deps = makeDeps(
            NODES.map((n) => ({ ...n })),
            {
              config: {
                cpu_allocation_ratio: cfg.cpu,
                reserved_host_memory_mb: cfg.reservedMb,
                reserved_host_disk_mb: cfg.reservedDiskMb,
              },
            },
          );
          await refreshNodes(deps);
          const instances = Array.from({ length: INSTANCES }, () => makeInstance());
          const lastClaim = new Map<number, Claim>();
          let migrations = 0;
          const claimsOf = async (i: number) =>
            (await Promise.all(NODES.map((n) => deps.nodes.listClaims(n.node))))
              .flat()
              .filter((c) => c.instance_id === instances[i]!.instance_id);

          for (const op of ops) {
            const instance = instances[op.i]!;
            const held = await claimsOf(op.i);
            const own = held.find((c) => c.kind === ClaimKind.INSTANCE);
            const dest = held.find((c) => c.kind === ClaimKind.MOVE_DEST);
            try {
              if (op.op === 'claim') {
                // A build or unshelve claims only for an instance that holds nothing.
                if (held.length === 0) {
                  const c = await instanceClaim(deps, instance, NODES[op.node]!.node, {
                    flavor: FLAVORS[op.f]!,
                  });
                  lastClaim.set(op.i, c);
                }
              } else if (op.op === 'move') {
                if (own && !dest) {
                  migrations += 1;
                  const c = await moveClaim(deps, instance, {
                    id: `m${migrations}`,
                    instance_id: instance.instance_id,
                    source_node: own.node,
                    dest_node: NODES[op.node]!.node,
                    new_flavor: FLAVORS[op.f]!,
                  });
                  lastClaim.set(op.i, c);
                }
              } else if ((op.op === 'confirm' || op.op === 'revert') && dest) {
                const ref = {
                  id: dest.migration_id!,
                  instance_id: instance.instance_id,
                  source_node: dest.source_node!,
                  dest_node: dest.dest_node!,
                };
                await (op.op === 'confirm' ? confirmMove(deps, ref) : revertMove(deps, ref));
              } else if (op.op === 'abort') {
                const c = lastClaim.get(op.i);
                if (c) await abortClaim(deps, c);
              } else if (op.op === 'drop') {
                await dropInstanceClaims(
                  deps,
                  instance.instance_id,
                  NODES.map((n) => n.node),
                );
              }
            } catch (e) {
              expected(e);
            }

            await expectConsistent(
              deps,
              NODES.map((n) => n.node),
            );
            for (let i = 0; i < INSTANCES; i++) {
              const kinds = (await claimsOf(i)).map((c) => c.kind).sort();
              expect([
                [],
                ['instance'],
                ['move-dest'],
                ['move-dest', 'move-source'],
              ]).toContainEqual(kinds);
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
