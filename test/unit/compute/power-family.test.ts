// The power and rescue family on in-memory adapters: the paths the end-to-end tests cannot
// reach cheaply — redelivery mid-way, completion and abandonment outside the command's own run
// (no args: the lifecycle path), and the rules that hinge on one field.

import { InMemoryNodeStore } from '../../../lib/resources/memory-node-store.ts';
import { InMemoryNodeStateStore } from '../../../lib/store/node-state-store.ts';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { InMemoryReplySender } from '../../../lib/commands/reply.ts';
import { instanceIdForCommand, parseCommand } from '../../../lib/commands/parse.ts';
import type { Command } from '../../../lib/commands/schemas.ts';
import { type OperationHandler, executeCommand } from '../../../lib/compute/executor.ts';
import { FlavorCatalog } from '../../../lib/compute/flavors.ts';
import type { InstanceChanges } from '../../../lib/compute/instance.ts';
import { buildAndRunInstance } from '../../../lib/compute/operations/build-and-run-instance.ts';
import { setAdminPassword } from '../../../lib/compute/operations/maintenance.ts';
import { resumeInstance, suspendInstance } from '../../../lib/compute/operations/power-states.ts';
import { rebootInstance } from '../../../lib/compute/operations/reboot.ts';
import { rescueInstance } from '../../../lib/compute/operations/rescue.ts';
import { softDeleteInstance } from '../../../lib/compute/operations/soft-delete.ts';
import {
  CommandRuntime,
  type ComputeDeps,
  deliverCommitted,
} from '../../../lib/compute/runtime.ts';
import { PowerState, TaskState, VmState } from '../../../lib/compute/states.ts';
import { loadConfig } from '../../../lib/config.ts';
import { ErrorCode, StratusError } from '../../../lib/errors.ts';
import { existsMessageId } from '../../../lib/notifications/message-id.ts';
import { InMemoryPublisher } from '../../../lib/notifications/publisher.ts';
import { InMemoryStateStore } from '../../../lib/store/memory-state-store.ts';
import type { ActionRecord } from '../../../lib/store/state-store.ts';
import type { Operation } from '../../../lib/topology.ts';
import { DriverError } from '../../../lib/virt/errors.ts';
import { InMemoryLifecycleSink } from '../../../lib/virt/events.ts';
import { FakeDriver } from '../../../lib/virt/fake/driver.ts';
import { InMemoryFakeHypervisorStore } from '../../../lib/virt/fake/store.ts';

let deps: ComputeDeps;
let store: InMemoryStateStore;
let publisher: InMemoryPublisher;
let driver: FakeDriver;
let sequence = 0;

beforeEach(() => {
  vi.restoreAllMocks();
  const config = loadConfig({ STRATUS_NOTIFY_ON_STATE_CHANGE: 'vm_and_task_state' });
  store = new InMemoryStateStore();
  publisher = new InMemoryPublisher();
  driver = new FakeDriver({
    nodes: config.fake_nodes,
    store: new InMemoryFakeHypervisorStore(),
    sink: new InMemoryLifecycleSink(),
    async: false,
  });
  deps = {
    config,
    store,
    driver,
    publisher,
    replies: new InMemoryReplySender(),
    flavors: new FlavorCatalog(),
    clock: () => new Date(),
    logger: { info() {}, warn() {}, error() {} },
    nodes: new InMemoryNodeStore(),
    nodeState: new InMemoryNodeStateStore(),
  };
});

function command(operation: Operation, instanceId: string | null, args: object = {}): Command {
  sequence += 1;
  const parsed = parseCommand(
    JSON.stringify({
      version: 1,
      command_id: `unit-${sequence}-${Math.random().toString(36).slice(2, 8)}`,
      operation,
      ...(instanceId ? { instance_id: instanceId } : {}),
      context: { user_id: 'user-1', project_id: 'project-1' },
      args,
    }),
    operation,
  );
  if (!parsed.ok) throw parsed.error;
  return parsed.command;
}

async function exec(handler: OperationHandler<never>, c: Command) {
  return executeCommand(deps, c, { senderId: null }, handler as OperationHandler);
}

async function activeInstance(): Promise<string> {
  const build = command('build_and_run_instance', null, { flavor: 'm1.tiny', image_ref: 'img' });
  await exec(buildAndRunInstance as OperationHandler<never>, build);
  const id = instanceIdForCommand(build.command_id);
  expect((await store.getInstance(id))?.vm_state).toBe(VmState.ACTIVE);
  publisher.published.length = 0;
  return id;
}

async function force(id: string, changes: InstanceChanges) {
  return (
    await store.updateInstance({
      instanceId: id,
      action: { subject: { kind: 'instance', id }, commandId: 'unit-setup' },
      expect: {},
      changes,
      now: new Date(),
    })
  ).new;
}

/** The runtime a lifecycle event or the sweeper gets: the command rebuilt without its args. */
function runtimeWithoutArgs(action: ActionRecord): CommandRuntime {
  return new CommandRuntime(deps, {
    version: 1,
    command_id: action.command_id,
    operation: action.operation as Operation,
    context: {
      user_id: action.user_id ?? '',
      project_id: action.project_id ?? '',
      request_id: action.request_id,
      roles: [],
    },
    instance_id: action.instance_id ?? '',
    args: {} as Command['args'],
  });
}

/** Starts a command whose driver call stays pending (the platform never answers). */
async function pendingCommand(
  handler: OperationHandler<never>,
  c: Command,
  method: 'reboot' | 'rescue' | 'softDelete',
  expectTransition: 'started' | 'stopped',
): Promise<ActionRecord> {
  vi.spyOn(driver, method).mockResolvedValueOnce({
    status: 'pending',
    expect: expectTransition,
    deadlineSeconds: 60,
  });
  await exec(handler, c);
  const action = await store.getAction({ kind: 'instance', id: c.instance_id }, c.command_id);
  expect(action?.status).toBe('running');
  return action!;
}

const eventTypes = () =>
  publisher.published.map((n) => n.event_type.replace('compute.instance.', ''));

describe('reboot', () => {
  it('a redelivered reboot continues from the step it reached, announcing itself once', async () => {
    const id = await activeInstance();
    const c = command('reboot_instance', id, { reboot_type: 'SOFT' });
    // The first delivery dies right after committing REBOOT_PENDING (and reboot.start).
    const write = store.updateInstance.bind(store);
    let crashed = false;
    const writes = vi.spyOn(store, 'updateInstance').mockImplementation(async (w) => {
      const res = await write(w);
      if (!crashed && res.new.task_state === TaskState.REBOOT_PENDING) {
        crashed = true;
        throw Object.assign(new Error('connection reset'), { name: 'ECONNRESET' });
      }
      return res;
    });
    const reboot = vi.spyOn(driver, 'reboot');
    await expect(exec(rebootInstance as OperationHandler<never>, c)).rejects.toThrow('reset');
    expect((await store.getInstance(id))?.task_state).toBe(TaskState.REBOOT_PENDING);
    expect(reboot).not.toHaveBeenCalled();

    // SQS delivers it again.
    writes.mockRestore();
    await exec(rebootInstance as OperationHandler<never>, c);
    expect(reboot).toHaveBeenCalledTimes(1);
    expect(await store.getInstance(id)).toMatchObject({
      vm_state: VmState.ACTIVE,
      task_state: null,
      task_owner: null,
    });
    expect(eventTypes().filter((t) => t === 'reboot.start')).toHaveLength(1);
    expect(eventTypes().at(-1)).toBe('reboot.end');
  });

  it('finishes from a lifecycle event without its args, keeping a RESCUED instance rescued', async () => {
    const id = await activeInstance();
    const c = command('reboot_instance', id, { reboot_type: 'HARD' });
    const action = await pendingCommand(
      rebootInstance as OperationHandler<never>,
      c,
      'reboot',
      'started',
    );
    expect((await store.getInstance(id))?.task_state).toBe(TaskState.REBOOT_STARTED_HARD);
    // The API never reboots a RESCUED instance, but Nova's compute keeps one rescued.
    await force(id, { vm_state: VmState.RESCUED });
    await rebootInstance.complete!(runtimeWithoutArgs(action), {
      instanceId: id,
      transition: 'started',
      node: 'fake-node-1',
      occurredAt: new Date().toISOString(),
      source: 'fake',
      sequence: 1,
    });
    expect(await store.getInstance(id)).toMatchObject({
      vm_state: VmState.RESCUED,
      task_state: null,
      power_state: PowerState.RUNNING,
    });
    expect((await store.getAction(action.subject, c.command_id))?.status).toBe('succeeded');
  });

  it('abandoned after its deadline: Nova’s failure rule decides (guest running → ACTIVE)', async () => {
    const id = await activeInstance();
    const c = command('reboot_instance', id, { reboot_type: 'SOFT' });
    const action = await pendingCommand(
      rebootInstance as OperationHandler<never>,
      c,
      'reboot',
      'started',
    );
    await rebootInstance.abandon!(
      runtimeWithoutArgs(action),
      new StratusError(ErrorCode.LifecycleTimeout, 'timed out'),
    );
    // The sweeper delivers what the abandonment committed.
    await deliverCommitted(deps, action.subject, c.command_id);
    expect(await store.getInstance(id)).toMatchObject({
      vm_state: VmState.ACTIVE,
      task_state: null,
      task_owner: null,
    });
    expect(eventTypes().slice(-3)).toEqual(['reboot.error', 'update', 'reboot.end']);
    expect(await store.getAction(action.subject, c.command_id)).toMatchObject({
      status: 'failed',
      error_code: 'LifecycleTimeout',
    });
    expect(await store.listFaults(id)).toHaveLength(1);
  });

  it('a failure before the driver was asked only reverts the task', async () => {
    const id = await activeInstance();
    vi.spyOn(driver, 'getInfo').mockRejectedValueOnce(
      new DriverError('HypervisorUnavailable', 'libvirt is down'),
    );
    const reboot = vi.spyOn(driver, 'reboot');
    const { outcome } = await exec(
      rebootInstance as OperationHandler<never>,
      command('reboot_instance', id, { reboot_type: 'SOFT' }),
    );
    expect(outcome?.status).toBe('failed');
    expect(reboot).not.toHaveBeenCalled();
    expect(await store.getInstance(id)).toMatchObject({
      vm_state: VmState.ACTIVE,
      task_state: null,
    });
    expect(eventTypes()).not.toContain('reboot.error');
  });
});

describe('suspend and resume', () => {
  it('resume ignores an old_vm_state that is not a vm_state (Nova’s ACTIVE default)', async () => {
    const id = await activeInstance();
    await exec(suspendInstance as OperationHandler<never>, command('suspend_instance', id));
    await force(id, { system_metadata: { old_vm_state: 'banana', keep: 'me' } });
    await exec(resumeInstance as OperationHandler<never>, command('resume_instance', id));
    expect(await store.getInstance(id)).toMatchObject({
      vm_state: VmState.ACTIVE,
      system_metadata: { keep: 'me' },
    });
  });

  it('a suspended-from-STOPPED record resumes to what suspend kept', async () => {
    const id = await activeInstance();
    await exec(suspendInstance as OperationHandler<never>, command('suspend_instance', id));
    await force(id, { system_metadata: { old_vm_state: VmState.PAUSED } });
    await exec(resumeInstance as OperationHandler<never>, command('resume_instance', id));
    expect((await store.getInstance(id))?.vm_state).toBe(VmState.PAUSED);
  });
});

describe('rescue', () => {
  it('the exists it sends is keyed by the launched_at that ends (billing dedup key)', async () => {
    const id = await activeInstance();
    const before = (await store.getInstance(id))!;
    await exec(rescueInstance as OperationHandler<never>, command('rescue_instance', id));
    const exists = publisher.published.find((n) => n.event_type === 'compute.instance.exists')!;
    const after = (await store.getInstance(id))!;
    expect(after.launched_at).not.toBe(before.launched_at);
    const period = {
      beginning: String(exists.payload.audit_period_beginning),
      ending: String(exists.payload.audit_period_ending),
    };
    const parse = (s: string) => new Date(`${s.replace(' ', 'T').slice(0, 23)}Z`);
    expect(exists.message_id).toBe(
      existsMessageId(id, before.launched_at, parse(period.beginning), parse(period.ending)),
    );
  });

  it('refuses a volume-backed instance when the host cannot rescue one (400)', async () => {
    const id = await activeInstance();
    const before = await force(id, {
      block_device_mapping: [
        {
          volume_id: 'vol-1',
          device_name: '/dev/vda',
          boot_index: 0,
          delete_on_termination: false,
        },
      ],
    });
    const { outcome } = await exec(
      rescueInstance as OperationHandler<never>,
      command('rescue_instance', id),
    );
    expect(outcome).toMatchObject({ status: 'rejected', error: { code: 400 } });
    expect(outcome?.error?.message).toContain('volume-backed');
    expect((await store.getInstance(id))?.version).toBe(before.version);
  });

  it('abandoned after its deadline: ERROR, as any failed rescue', async () => {
    const id = await activeInstance();
    const c = command('rescue_instance', id, { rescue_password: 'not-kept' });
    const action = await pendingCommand(
      rescueInstance as OperationHandler<never>,
      c,
      'rescue',
      'started',
    );
    expect(action.progress.rescue_image_name).toBe('img');
    expect(JSON.stringify(action)).not.toContain('not-kept');
    await rescueInstance.abandon!(
      runtimeWithoutArgs(action),
      new StratusError(ErrorCode.LifecycleTimeout, 'timed out'),
    );
    // The sweeper delivers what the abandonment committed.
    await deliverCommitted(deps, action.subject, c.command_id);
    expect(await store.getInstance(id)).toMatchObject({
      vm_state: VmState.ERROR,
      task_state: null,
    });
  });
});

describe('soft delete', () => {
  it('abandoned after its deadline: the task is reverted and soft_delete.end still sent', async () => {
    const id = await activeInstance();
    const c = command('soft_delete_instance', id);
    const action = await pendingCommand(
      softDeleteInstance as OperationHandler<never>,
      c,
      'softDelete',
      'stopped',
    );
    await softDeleteInstance.abandon!(
      runtimeWithoutArgs(action),
      new StratusError(ErrorCode.LifecycleTimeout, 'timed out'),
    );
    // The sweeper delivers what the abandonment committed.
    await deliverCommitted(deps, action.subject, c.command_id);
    expect(await store.getInstance(id)).toMatchObject({
      vm_state: VmState.ACTIVE,
      task_state: null,
    });
    expect(eventTypes().slice(-2)).toEqual(['soft_delete.end', 'update']);
  });

  it('a delete arriving while the soft delete runs makes it stop quietly', async () => {
    const id = await activeInstance();
    const c = command('soft_delete_instance', id);
    vi.spyOn(driver, 'softDelete').mockImplementationOnce(async () => {
      await force(id, { task_state: TaskState.DELETING, task_owner: 'a-delete' });
      return { status: 'done', powerState: PowerState.SHUTDOWN };
    });
    const { outcome } = await exec(softDeleteInstance as OperationHandler<never>, c);
    expect(outcome).toMatchObject({ status: 'failed', error: { code: 409 } });
    expect(await store.getInstance(id)).toMatchObject({
      task_state: TaskState.DELETING,
      task_owner: 'a-delete',
    });
    expect(await store.listFaults(id)).toHaveLength(0);
  });
});

describe('set_admin_password', () => {
  it('lets the guest-agent errors through by name, with the task cleared', async () => {
    const id = await activeInstance();
    vi.spyOn(driver, 'setAdminPassword').mockRejectedValueOnce(
      new DriverError('SetAdminPasswdNotSupported', 'the guest has no agent'),
    );
    const { outcome } = await exec(
      setAdminPassword as OperationHandler<never>,
      command('set_admin_password', id, { new_password: 'pw-123' }),
    );
    expect(outcome?.error?.message).toBe('the guest has no agent');
    expect((await store.getInstance(id))?.task_state).toBeNull();
  });
});
