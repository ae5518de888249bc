// Chooses the node a build runs on. This is the interim scheduler: it filters the driver's
// nodes by the requested node and availability zone and spreads by free memory. It makes no
// claim; the resource tracker (transactional claims, capacity filters, weighers) replaces it.

import type { ArgsOf } from '../commands/schemas.ts';
import { ErrorCode, StratusError } from '../errors.ts';
import type { ComputeDeps } from './runtime.ts';
import type { Instance } from './instance.ts';
import type { DriverContext } from '../virt/driver.ts';

/** Nova's NoValidHost: the build fails with this fault when no node fits. */
export class NoValidHostError extends StratusError {
  constructor(reason: string) {
    super(ErrorCode.BuildAbort, `No valid host was found. ${reason}`.trim());
    this.name = 'NoValidHost';
  }
}

export async function selectNode(
  deps: Pick<ComputeDeps, 'driver'>,
  ctx: DriverContext,
  args: ArgsOf<'build_and_run_instance'>,
  instance: Instance,
): Promise<{ node: string; availability_zone: string }> {
  const names = await deps.driver.getAvailableNodes(ctx);
  const candidates = [];
  for (const name of names) {
    if (args.node !== undefined && name !== args.node) continue;
    const r = await deps.driver.getAvailableResource(ctx, name);
    if (!r) continue;
    if (args.availability_zone !== undefined && r.availability_zone !== args.availability_zone)
      continue;
    const freeMemory = r.memory_mb - r.memory_mb_used;
    if (freeMemory < instance.flavor.memory_mb || r.vcpus - r.vcpus_used < instance.flavor.vcpus)
      continue;
    candidates.push({ name, zone: r.availability_zone, freeMemory });
  }
  const best = candidates.sort(
    (a, b) => b.freeMemory - a.freeMemory || a.name.localeCompare(b.name),
  )[0];
  if (!best) {
    const wanted = [
      args.node && `node ${args.node}`,
      args.availability_zone && `zone ${args.availability_zone}`,
    ]
      .filter(Boolean)
      .join(', ');
    throw new NoValidHostError(wanted ? `No node fits (${wanted}).` : 'No node has room.');
  }
  return { node: best.name, availability_zone: best.zone };
}
