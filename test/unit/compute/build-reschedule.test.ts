// A build whose node turns out to have no room (EC2's InsufficientInstanceCapacity, a quota)
// is rescheduled as Nova does: create.error, back to SCHEDULING, another node, never one it
// tried; when none is left, or after MAX_BUILD_ATTEMPTS nodes, "No valid host was found".
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { InMemoryReplySender } from '../../../lib/commands/reply.ts';
import { instanceIdForCommand, parseCommand } from '../../../lib/commands/parse.ts';
import { type OperationHandler, executeCommand } from '../../../lib/compute/executor.ts';
import { FlavorCatalog } from '../../../lib/compute/flavors.ts';
import {
  MAX_BUILD_ATTEMPTS,
  buildAndRunInstance,
} from '../../../lib/compute/operations/build-and-run-instance.ts';
import type { ComputeDeps } from '../../../lib/compute/runtime.ts';
import { VmState } from '../../../lib/compute/states.ts';
import { loadConfig } from '../../../lib/config.ts';
import { InMemoryPublisher } from '../../../lib/notifications/publisher.ts';
import { ComputeResourcesUnavailableError } from '../../../lib/resources/errors.ts';
import { InMemoryNodeStore } from '../../../lib/resources/memory-node-store.ts';
import { InMemoryStateStore } from '../../../lib/store/memory-state-store.ts';
import { InMemoryNodeStateStore } from '../../../lib/store/node-state-store.ts';
import { InMemoryLifecycleSink } from '../../../lib/virt/events.ts';
import { FakeDriver } from '../../../lib/virt/fake/driver.ts';
import { InMemoryFakeHypervisorStore } from '../../../lib/virt/fake/store.ts';

let deps: ComputeDeps;
let nodes: InMemoryNodeStore;
let publisher: InMemoryPublisher;
let driver: FakeDriver;

function setup(nodeCount: number) {
  const fakeNodes = Array.from({ length: nodeCount }, (_, i) => ({
    node: `n-${i + 1}`,
    vcpus: 16,
    memory_mb: 32768 - i * 1024,
    local_gb: 500,
  }));
  const config = loadConfig({ STRATUS_FAKE_NODES: JSON.stringify(fakeNodes) });
  publisher = new InMemoryPublisher();
  nodes = new InMemoryNodeStore();
  driver = new FakeDriver({
    nodes: config.fake_nodes,
    store: new InMemoryFakeHypervisorStore(),
    sink: new InMemoryLifecycleSink(),
    async: false,
  });
  deps = {
    config,
    store: new InMemoryStateStore(),
    driver,
    publisher,
    replies: new InMemoryReplySender(),
    flavors: new FlavorCatalog(),
    clock: () => new Date(),
    logger: { info() {}, warn() {}, error() {} },
    nodes,
    nodeState: new InMemoryNodeStateStore(),
  };
}

/** Spawn refuses on these nodes as EC2 does when it has no capacity. */
function noCapacityOn(full: readonly string[]) {
  const spawn = driver.spawn.bind(driver);
  vi.spyOn(driver, 'spawn').mockImplementation(async (ctx, instance, options) => {
    if (full.includes(instance.node!)) {
      throw new ComputeResourcesUnavailableError(instance.node!, ['InsufficientInstanceCapacity']);
    }
    return spawn(ctx, instance, options);
  });
}

async function build() {
  const parsed = parseCommand(
    JSON.stringify({
      version: 1,
      command_id: `reschedule-${Math.random().toString(36).slice(2, 10)}`,
      operation: 'build_and_run_instance',
      context: { user_id: 'u', project_id: 'p' },
      args: { flavor: 'm1.tiny', image_ref: 'img' },
    }),
    'build_and_run_instance',
  );
  if (!parsed.ok) throw parsed.error;
  await executeCommand(
    deps,
    parsed.command,
    { senderId: null },
    buildAndRunInstance as OperationHandler,
  );
  return instanceIdForCommand(parsed.command.command_id);
}

const claimsOf = async (names: string[]) =>
  (await Promise.all(names.map((n) => nodes.listClaims(n)))).flat();
const types = () => publisher.published.map((n) => n.event_type.replace('compute.instance.', ''));

describe('build rescheduling', () => {
  beforeEach(() => vi.restoreAllMocks());

  it('moves to another node after a capacity refusal and holds a claim only there', async () => {
    setup(2);
    noCapacityOn(['n-1']);
    const id = await build();

    const instance = (await deps.store.getInstance(id))!;
    expect(instance).toMatchObject({ vm_state: VmState.ACTIVE, node: 'n-2' });
    expect(JSON.parse(instance.system_metadata.build_retry_nodes!)).toEqual(['n-1']);
    expect(types().filter((t) => t === 'create.error')).toHaveLength(1);
    expect(types().at(-1)).toBe('create.end');
    expect((await claimsOf(['n-1', 'n-2'])).map((c) => c.node)).toEqual(['n-2']);
  });

  it('fails with No valid host when every node refused, leaving no claim', async () => {
    setup(2);
    noCapacityOn(['n-1', 'n-2']);
    const id = await build();

    expect((await deps.store.getInstance(id))!.vm_state).toBe(VmState.ERROR);
    const [fault] = await deps.store.listFaults(id);
    expect(fault!.message).toMatch(/^No valid host was found/);
    expect(await claimsOf(['n-1', 'n-2'])).toEqual([]);
  });

  it(`gives up after ${MAX_BUILD_ATTEMPTS} nodes even when more are left`, async () => {
    setup(MAX_BUILD_ATTEMPTS + 2);
    noCapacityOn(['n-1', 'n-2', 'n-3', 'n-4', 'n-5']);
    const id = await build();

    const [fault] = await deps.store.listFaults(id);
    expect(fault!.message).toContain(`Exceeded max scheduling attempts ${MAX_BUILD_ATTEMPTS}`);
    expect(vi.mocked(driver.spawn)).toHaveBeenCalledTimes(MAX_BUILD_ATTEMPTS);
    expect(await claimsOf(['n-1', 'n-2', 'n-3', 'n-4', 'n-5'])).toEqual([]);
  });
});
