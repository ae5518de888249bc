// The instances the periodic tasks look after: every instance on the driver's nodes (Nova's
// periodic tasks filter on their own host), read from the by-node index. The index is
// eventually consistent; tasks use the listing to find candidates and re-read each by key.

import { requestIdForCommand } from '../../commands/parse.ts';
import type { Instance } from '../instance.ts';
import type { ComputeDeps } from '../runtime.ts';
import type { InstanceSource } from './report.ts';

const SCAN_COMMAND = 'periodic:scan';

export async function instancesOnNodes(deps: ComputeDeps): Promise<Instance[]> {
  const nodes = await deps.driver.getAvailableNodes({
    commandId: SCAN_COMMAND,
    requestId: requestIdForCommand(SCAN_COMMAND),
  });
  const perNode = await Promise.all(nodes.map((node) => deps.store.listInstancesByNode(node)));
  const seen = new Set<string>();
  return perNode.flat().filter((instance) => {
    // Deleted records stay readable for the usage audit; no periodic task acts on them.
    if (instance.deleted || seen.has(instance.instance_id)) return false;
    seen.add(instance.instance_id);
    return true;
  });
}

/** One listing shared by the tasks of a run. */
export function listOnce(deps: ComputeDeps): InstanceSource {
  let listing: Promise<Instance[]> | null = null;
  return () => (listing ??= instancesOnNodes(deps));
}
