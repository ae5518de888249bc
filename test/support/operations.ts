// Helpers for end-to-end tests of instance operations: get an instance into a state, run a
// command to its outcome, and check the "forbidden state changes nothing" rule.

import { expect } from 'vitest';
import { instanceIdForCommand } from '../../lib/commands/parse.ts';
import type { Instance, InstanceChanges } from '../../lib/compute/instance.ts';
import { ALL_VM_STATES, type VmState } from '../../lib/compute/states.ts';
import type { ActionRecord } from '../../lib/store/state-store.ts';
import type { Operation } from '../../lib/topology.ts';
import { type TestStack, buildCommand } from './stack.ts';

export const OWNER = { user_id: 'user-1', project_id: 'project-1' };

/** Builds an ACTIVE instance through the real build path; returns its id. */
export async function activeInstance(
  stack: TestStack,
  args: Record<string, unknown> = {},
): Promise<string> {
  const command = buildCommand({ args: { flavor: 'm1.tiny', image_ref: 'img', ...args } });
  await stack.send('build_and_run_instance', command);
  await stack.drain('build_and_run_instance');
  await stack.drain('lifecycle');
  const id = instanceIdForCommand(command.command_id);
  expect((await stack.store.getInstance(id))?.vm_state).toBe('active');
  return id;
}

/** Puts an instance into a state directly (as an operator's reset would), for precondition tests. */
export async function forceState(
  stack: TestStack,
  instanceId: string,
  changes: InstanceChanges,
): Promise<Instance> {
  const res = await stack.store.updateInstance({
    instanceId,
    action: { subject: { kind: 'instance', id: instanceId }, commandId: 'test-setup' },
    expect: {},
    changes,
    now: new Date(),
  });
  return res.new;
}

export interface RunOptions {
  args?: Record<string, unknown>;
  roles?: string[];
  context?: Record<string, unknown>;
  commandId?: string;
}

/** Sends one command, runs its function (and the lifecycle function) dry; returns its action. */
export async function run(
  stack: TestStack,
  operation: Operation,
  instanceId: string,
  o: RunOptions = {},
): Promise<ActionRecord> {
  const command = buildCommand({
    operation,
    instance_id: instanceId,
    args: o.args ?? {},
    context: { ...OWNER, ...(o.roles ? { roles: o.roles } : {}), ...o.context },
    ...(o.commandId ? { command_id: o.commandId } : {}),
  });
  await stack.send(operation, command);
  await stack.drain(operation);
  await stack.drain('lifecycle');
  const action = await stack.store.findActionByCommand(command.command_id);
  if (!action) throw new Error(`no action for ${command.command_id}`);
  return action;
}

/**
 * For every vm_state outside `allowed`: the command is rejected 409 and the instance is exactly
 * as it was (same version).
 */
export async function expectForbiddenStatesRejected(
  stack: TestStack,
  operation: Operation,
  instanceId: string,
  allowed: readonly VmState[],
  o: RunOptions = {},
): Promise<void> {
  for (const vm of ALL_VM_STATES.filter((v) => !allowed.includes(v) && v !== 'deleted')) {
    const before = await forceState(stack, instanceId, {
      vm_state: vm,
      task_state: null,
      task_owner: null,
    });
    const action = await run(stack, operation, instanceId, o);
    expect(action, `${operation} from ${vm}`).toMatchObject({
      status: 'rejected',
      error_code: 'InstanceInvalidState',
    });
    expect(action.outcome?.error?.code).toBe(409);
    expect(
      (await stack.store.getInstance(instanceId))?.version,
      `${operation} from ${vm} changed the record`,
    ).toBe(before.version);
  }
}

/** Event types published for an instance since the last call, update events summarised. */
export async function eventTrail(stack: TestStack, instanceId: string): Promise<string[]> {
  return (await stack.receiveEvents())
    .filter((e) => e.resources.includes(instanceId))
    .map((e) =>
      e['detail-type'] === 'compute.instance.update'
        ? `update:${e.detail.payload.state}/${e.detail.payload.new_task_state ?? '-'}`
        : e['detail-type'].replace('compute.instance.', ''),
    );
}
