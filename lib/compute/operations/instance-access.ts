// Nova's API-side lookup: an instance a project may act on. Another project's instance is
// reported as not found (Nova's policy), so its existence does not leak.

import { InstanceNotFoundError } from '../../errors.ts';
import type { Instance } from '../instance.ts';
import type { CommandRuntime } from '../runtime.ts';

export async function loadOwnedInstance(rt: CommandRuntime, admin: boolean): Promise<Instance> {
  const instance = await rt.deps.store.getInstance(rt.command.instance_id);
  if (!instance || instance.deleted) throw new InstanceNotFoundError(rt.command.instance_id);
  if (!admin && instance.project_id !== rt.command.context.project_id) {
    throw new InstanceNotFoundError(rt.command.instance_id);
  }
  return instance;
}
