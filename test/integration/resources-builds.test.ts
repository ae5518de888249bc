// Issue 4's promise end to end: many concurrent builds against nodes whose capacity fits exactly
// N instances. Every build runs the real build handler (executor, state store, resource claims
// on DynamoDB Local); exactly N reach ACTIVE, the rest end ERROR with "No valid host was found",
// and afterwards no node is over its limit and every node's usage is the sum of its claims.

import { beforeAll, describe, expect, it } from 'vitest';
import { parseCommand } from '../../lib/commands/parse.ts';
import { InMemoryReplySender } from '../../lib/commands/reply.ts';
import { awsClients, composeComputeDeps } from '../../lib/compose.ts';
import { executeCommand } from '../../lib/compute/executor.ts';
import { buildAndRunInstance } from '../../lib/compute/operations/build-and-run-instance.ts';
import type { ComputeDeps } from '../../lib/compute/runtime.ts';
import { VmState } from '../../lib/compute/states.ts';
import { InMemoryPublisher } from '../../lib/notifications/publisher.ts';
import { describeNodes } from '../../lib/resources/nodes.ts';
import { type TestStack, startTestStack } from '../support/stack.ts';

const BUILDS = 200;
// m1.small: 1 vCPU, 2048 MB, 20 GB. Memory is the binding limit: with ram_allocation_ratio 1.0
// and 512 MB reserved, (2048×k + 512 − 512) fits k instances per node.
const PER_NODE = [3, 4, 5];
const NODES = PER_NODE.map((k, i) => ({
  node: `cap-node-${i + 1}`,
  vcpus: 64,
  memory_mb: 2048 * k + 512,
  local_gb: 1000,
  availability_zone: 'nova',
}));
const FITS = PER_NODE.reduce((a, b) => a + b, 0);

describe('concurrent builds against a fleet that fits exactly N', () => {
  let stack: TestStack;
  let deps: ComputeDeps;

  beforeAll(async () => {
    stack = await startTestStack({
      label: 'capacity',
      options: { fake_nodes: JSON.stringify(NODES), reserved_host_memory_mb: '512' },
    });
    // The real adapters on the emulators; notifications and replies are not what this tests.
    deps = {
      ...composeComputeDeps(stack.config, { info() {}, warn() {}, error() {} }, awsClients()),
      publisher: new InMemoryPublisher(),
      replies: new InMemoryReplySender(),
    };
  });

  it(`lets exactly ${FITS} of ${BUILDS} reach ACTIVE, and fails the rest with No valid host`, async () => {
    const commands = Array.from({ length: BUILDS }, (_, i) => {
      const parsed = parseCommand(
        JSON.stringify({
          version: 1,
          command_id: `cap-build-${i}`,
          operation: 'build_and_run_instance',
          context: { user_id: 'u', project_id: 'p' },
          args: { flavor: 'm1.small', image_ref: 'img' },
        }),
        'build_and_run_instance',
      );
      if (!parsed.ok) throw parsed.error;
      return parsed.command;
    });
    const results = await Promise.all(
      commands.map((c) => executeCommand(deps, c, { senderId: null }, buildAndRunInstance)),
    );
    const statuses = results.map((r) => r.outcome?.status);
    expect(statuses.filter((s) => s === 'succeeded')).toHaveLength(FITS);
    expect(statuses.filter((s) => s === 'failed')).toHaveLength(BUILDS - FITS);

    const instances = await Promise.all(
      results.map((r) => deps.store.getInstance(r.outcome!.instance_id!)),
    );
    expect(instances.filter((i) => i?.vm_state === VmState.ACTIVE)).toHaveLength(FITS);
    const errored = instances.filter((i) => i?.vm_state === VmState.ERROR);
    expect(errored).toHaveLength(BUILDS - FITS);
    const faults = await deps.store.listFaults(errored[0]!.instance_id);
    expect(faults[0]?.message).toContain('No valid host was found');

    const nodes = await describeNodes(deps);
    for (const node of nodes.filter((n) => n.node.startsWith('cap-node-'))) {
      const sum = node.claims.reduce(
        (acc, c) => ({ vcpus: acc.vcpus + c.vcpus, memory_mb: acc.memory_mb + c.memory_mb }),
        { vcpus: 0, memory_mb: 0 },
      );
      expect(node.usage.memory_mb).toBe(sum.memory_mb);
      expect(node.usage.vcpus).toBe(sum.vcpus);
      expect(node.usage.memory_mb).toBeLessThanOrEqual(node.limits.memory_mb);
    }
    const claims = nodes.flatMap((n) => n.claims);
    expect(claims).toHaveLength(FITS);
    // Each ACTIVE instance runs on the node that holds its claim.
    for (const i of instances.filter((x) => x?.vm_state === VmState.ACTIVE)) {
      expect(claims.find((c) => c.instance_id === i!.instance_id)?.node).toBe(i!.node);
    }
  }, 240_000);
});
