// Claims follow an instance off and back onto a node: a shelve offload releases its claim, an
// unshelve claims again on the node the resource tracker chooses (Nova's allocations).

import { beforeAll, describe, expect, it } from 'vitest';
import { awsClients, composeComputeDeps } from '../../lib/compose.ts';
import { VmState } from '../../lib/compute/states.ts';
import { describeNodes } from '../../lib/resources/nodes.ts';
import { activeInstance, run } from '../support/operations.ts';
import { type TestStack, startTestStack } from '../support/stack.ts';

describe('resource claims across shelve offload and unshelve', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack({
      label: 'claims-shelve',
      options: { shelved_offload_time: '0' },
    });
  });

  async function claimsOf(instanceId: string) {
    const deps = composeComputeDeps(
      stack.config,
      { info() {}, warn() {}, error() {} },
      awsClients(),
    );
    return (await describeNodes(deps))
      .flatMap((n) => n.claims)
      .filter((c) => c.instance_id === instanceId);
  }

  it('releases the claim on offload and takes one again on unshelve', async () => {
    const id = await activeInstance(stack);
    const node = (await stack.store.getInstance(id))!.node;
    expect((await claimsOf(id)).map((c) => c.node)).toEqual([node]);

    expect((await run(stack, 'shelve_instance', id)).status).toBe('succeeded');
    expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.SHELVED_OFFLOADED);
    expect(await claimsOf(id)).toEqual([]);

    expect((await run(stack, 'unshelve_instance', id)).status).toBe('succeeded');
    const back = await stack.store.getInstance(id);
    expect(back?.vm_state).toBe(VmState.ACTIVE);
    expect((await claimsOf(id)).map((c) => c.node)).toEqual([back!.node]);
  });
});
