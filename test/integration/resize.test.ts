// resize_instance, confirm_resize, revert_resize and migrate_instance through SQS: Nova's task
// steps and events, the migration record, where the guests are, forbidden states, locks,
// Nova's failure rules, and completion of a pending driver step by its lifecycle event.

import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEFAULT_FLAVORS } from '../../lib/compute/flavors.ts';
import { lifecycleEnvelope } from '../../lib/compute/lifecycle-transport.ts';
import type * as Registry from '../../lib/compute/operations/registry.ts';
import { PowerState, TaskState, VmState } from '../../lib/compute/states.ts';
import { DynamoDbMigrationStore } from '../../lib/store/migration-store.ts';
import type { Operation } from '../../lib/topology.ts';
import { DynamoDbFakeHypervisorStore } from '../../lib/virt/fake/dynamodb-store.ts';
import {
  OWNER,
  activeInstance,
  eventTrail,
  expectForbiddenStatesRejected,
  forceState,
  run,
} from '../support/operations.ts';
import { type TestStack, buildCommand, startTestStack } from '../support/stack.ts';

const MOVES: Operation[] = [
  'resize_instance',
  'confirm_resize',
  'revert_resize',
  'migrate_instance',
];

// Until the registry lists these operations, the lifecycle function must know them to finish a
// pending step; this is exactly the lines the registry gains. The mocked module outlives
// vi.resetModules, so its table is refilled from each test stack's fresh modules.
const lifecycleHandlers: Record<string, unknown> = {};
vi.doMock('../../lib/compute/operations/registry.ts', () => ({
  OPERATION_HANDLERS: lifecycleHandlers,
}));

async function registerHandlers(): Promise<void> {
  const registry = await vi.importActual<typeof Registry>(
    '../../lib/compute/operations/registry.ts',
  );
  const moves = await import('../../lib/compute/operations/resize.ts');
  Object.assign(lifecycleHandlers, registry.OPERATION_HANDLERS, {
    resize_instance: moves.resizeInstance,
    migrate_instance: moves.migrateInstance,
    confirm_resize: moves.confirmResize,
    revert_resize: moves.revertResize,
  });
}

/**
 * Builds land on fake-node-1 (the most free memory); `m1.giant` fits nowhere but there, so a
 * resize to it from fake-node-1 finds no valid host.
 */
const FAKE_NODES = JSON.stringify([
  { node: 'fake-node-1', vcpus: 256, memory_mb: 131072, local_gb: 5000 },
  { node: 'fake-node-2', vcpus: 256, memory_mb: 65536, local_gb: 5000 },
]);
const FLAVORS = JSON.stringify([
  ...DEFAULT_FLAVORS,
  {
    name: 'm1.giant',
    flavorid: '99',
    id: 99,
    vcpus: 8,
    memory_mb: 98304,
    root_gb: 160,
    ephemeral_gb: 0,
  },
]);

const QUIET = { info() {}, warn() {}, error() {} };

const RESIZE_TRAIL = [
  'update:active/resize_prep',
  'exists',
  'resize.prep.start',
  'resize.prep.end',
  'update:active/resize_migrating',
  'resize.start',
  'update:active/resize_migrated',
  'resize.end',
  'update:active/resize_finish',
  'finish_resize.start',
  'update:resized/-',
  'finish_resize.end',
];

for (const mode of ['sync', 'async'] as const) {
  describe(`resize, confirm, revert and cold migrate (${mode} driver)`, () => {
    let stack: TestStack;
    let migrations: DynamoDbMigrationStore;
    let guests: DynamoDbFakeHypervisorStore;

    beforeAll(async () => {
      stack = await startTestStack({
        label: `resize-${mode}`,
        options: {
          notify_on_state_change: 'vm_and_task_state',
          fake_async: mode === 'async' ? 'true' : 'false',
          admin_producers: '["000000000000"]',
          fake_nodes: FAKE_NODES,
          flavors: FLAVORS,
        },
        operations: MOVES,
      });
      await registerHandlers();
      migrations = new DynamoDbMigrationStore(stack.doc, stack.config.tables.state);
      guests = new DynamoDbFakeHypervisorStore({
        client: stack.doc,
        tableName: stack.config.tables.fakeHypervisor,
      });
    });

    afterEach(() => vi.restoreAllMocks());

    /** An ACTIVE m1.tiny on fake-node-1, its events consumed. */
    async function tinyInstance(): Promise<string> {
      const id = await activeInstance(stack);
      expect((await stack.store.getInstance(id))?.node).toBe('fake-node-1');
      await stack.receiveEvents();
      return id;
    }

    async function resized(flavor = 'm1.small'): Promise<string> {
      const id = await tinyInstance();
      const resize = await run(stack, 'resize_instance', id, { args: { flavor } });
      expect(resize.status).toBe('succeeded');
      await stack.receiveEvents();
      return id;
    }

    it('resizes an ACTIVE instance onto another node, then confirms it', async () => {
      const id = await tinyInstance();
      const resize = await run(stack, 'resize_instance', id, { args: { flavor: 'm1.small' } });
      expect(resize).toMatchObject({
        status: 'succeeded',
        events: [
          { event: 'compute_prep_resize', result: 'Success' },
          { event: 'compute_resize_instance', result: 'Success' },
          { event: 'compute_finish_resize', result: 'Success' },
        ],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.RESIZED,
        task_state: null,
        task_owner: null,
        power_state: PowerState.RUNNING,
        node: 'fake-node-2',
        flavor: { name: 'm1.small' },
        system_metadata: { old_vm_state: VmState.ACTIVE },
      });
      expect(await eventTrail(stack, id)).toEqual(RESIZE_TRAIL);
      const [migration] = await migrations.list(id);
      expect(migration).toMatchObject({
        migration_type: 'resize',
        status: 'finished',
        source_node: 'fake-node-1',
        dest_node: 'fake-node-2',
        old_flavor: { name: 'm1.tiny' },
        new_flavor: { name: 'm1.small' },
      });
      // Both guests exist until the resize is confirmed or reverted.
      expect((await guests.get('fake-node-2', id))?.flavor.memory_mb).toBe(2048);
      expect((await guests.get('fake-node-1', id))?.powerState).toBe(PowerState.SHUTDOWN);

      const confirm = await run(stack, 'confirm_resize', id);
      expect(confirm).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'compute_confirm_resize', result: 'Success' }],
      });
      const confirmed = await stack.store.getInstance(id);
      expect(confirmed).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        node: 'fake-node-2',
        flavor: { name: 'm1.small' },
      });
      expect(confirmed?.system_metadata).not.toHaveProperty('old_vm_state');
      expect(await eventTrail(stack, id)).toEqual([
        'update:resized/resize_confirming',
        'resize.confirm.start',
        'update:active/-',
        'resize.confirm.end',
      ]);
      expect((await migrations.get(id, migration!.id))?.status).toBe('confirmed');
      expect(await guests.get('fake-node-1', id)).toBeNull();
      expect(await guests.get('fake-node-2', id)).not.toBeNull();
    });

    it('announces the new flavor at prep and the mid-period usage before it', async () => {
      const id = await tinyInstance();
      await run(stack, 'resize_instance', id, { args: { flavor: 'm1.small' } });
      const events = (await stack.receiveEvents()).filter((e) => e.resources.includes(id));
      const byType = (t: string) => events.find((e) => e['detail-type'] === t)!.detail.payload;
      expect(byType('compute.instance.resize.prep.end')).toMatchObject({
        instance_type: 'm1.tiny',
        new_instance_type: 'm1.small',
        new_instance_type_id: 2,
      });
      expect(byType('compute.instance.exists')).toMatchObject({
        instance_type: 'm1.tiny',
        node: 'fake-node-1',
        audit_period_beginning: expect.any(String),
      });
      expect(byType('compute.instance.finish_resize.end')).toMatchObject({
        instance_type: 'm1.small',
        node: 'fake-node-2',
        state: 'resized',
      });
    });

    it('reverts a resize: flavor, node and vm_state restored, the new guest gone', async () => {
      const id = await resized();
      const [migration] = await migrations.list(id);
      const revert = await run(stack, 'revert_resize', id);
      expect(revert).toMatchObject({
        status: 'succeeded',
        events: [
          { event: 'compute_revert_resize', result: 'Success' },
          { event: 'compute_finish_revert_resize', result: 'Success' },
        ],
      });
      const reverted = await stack.store.getInstance(id);
      expect(reverted).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        task_owner: null,
        power_state: PowerState.RUNNING,
        node: 'fake-node-1',
        flavor: { name: 'm1.tiny' },
      });
      expect(reverted?.system_metadata).not.toHaveProperty('old_vm_state');
      expect(await eventTrail(stack, id)).toEqual([
        'update:resized/resize_reverting',
        'exists',
        'resize.revert.start',
        // Back on the source with the old flavor, before the driver brings the guest back.
        'update:resized/resize_reverting',
        'update:active/-',
        'resize.revert.end',
      ]);
      expect((await migrations.get(id, migration!.id))?.status).toBe('reverted');
      expect(await guests.get('fake-node-2', id)).toBeNull();
      expect(await guests.get('fake-node-1', id)).toMatchObject({
        powerState: PowerState.RUNNING,
        flavor: { memory_mb: 512 },
      });
    });

    it('keeps a STOPPED instance powered off through resize, confirm and revert', async () => {
      const id = await tinyInstance();
      expect((await run(stack, 'stop_instance', id)).status).toBe('succeeded');
      expect(
        (await run(stack, 'resize_instance', id, { args: { flavor: 'm1.small' } })).status,
      ).toBe('succeeded');
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.RESIZED,
        power_state: PowerState.SHUTDOWN,
        system_metadata: { old_vm_state: VmState.STOPPED },
      });
      expect((await guests.get('fake-node-2', id))?.powerState).toBe(PowerState.SHUTDOWN);
      expect((await run(stack, 'confirm_resize', id)).status).toBe('succeeded');
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.STOPPED,
        power_state: PowerState.SHUTDOWN,
      });

      const other = await tinyInstance();
      await run(stack, 'stop_instance', other);
      await run(stack, 'resize_instance', other, { args: { flavor: 'm1.small' } });
      expect((await run(stack, 'revert_resize', other)).status).toBe('succeeded');
      expect(await stack.store.getInstance(other)).toMatchObject({
        vm_state: VmState.STOPPED,
        power_state: PowerState.SHUTDOWN,
        node: 'fake-node-1',
        flavor: { name: 'm1.tiny' },
      });
      expect((await guests.get('fake-node-1', other))?.powerState).toBe(PowerState.SHUTDOWN);
    });

    it('cold-migrates with the same flavor, announced as a resize; an admin may name the node', async () => {
      const id = await tinyInstance();
      const migrate = await run(stack, 'migrate_instance', id);
      expect(migrate.status).toBe('succeeded');
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.RESIZED,
        node: 'fake-node-2',
        flavor: { name: 'm1.tiny' },
      });
      expect(await eventTrail(stack, id)).toEqual(RESIZE_TRAIL);
      expect((await migrations.list(id))[0]).toMatchObject({
        migration_type: 'migration',
        status: 'finished',
        new_flavor: { name: 'm1.tiny' },
      });
      expect((await run(stack, 'revert_resize', id)).status).toBe('succeeded');
      expect((await stack.store.getInstance(id))?.node).toBe('fake-node-1');

      const named = await run(stack, 'migrate_instance', id, {
        args: { node: 'fake-node-2' },
        roles: ['admin'],
      });
      expect(named.status).toBe('succeeded');
      expect((await stack.store.getInstance(id))?.node).toBe('fake-node-2');
    });

    it('refuses a node from a non-admin (403), an unknown or the current node (400)', async () => {
      const id = await tinyInstance();
      const before = await stack.store.getInstance(id);
      expect(
        await run(stack, 'migrate_instance', id, { args: { node: 'fake-node-2' } }),
      ).toMatchObject({
        status: 'rejected',
        error_code: 'Forbidden',
        outcome: { error: { code: 403 } },
      });
      for (const node of ['no-such-node', 'fake-node-1']) {
        expect(
          await run(stack, 'migrate_instance', id, { args: { node }, roles: ['admin'] }),
        ).toMatchObject({ status: 'rejected', outcome: { error: { code: 400 } } });
      }
      expect((await stack.store.getInstance(id))?.version).toBe(before?.version);
      expect(await migrations.list(id)).toEqual([]);
    });

    it('rejects an unknown flavor and the current flavor (400), changing nothing', async () => {
      const id = await tinyInstance();
      const before = await stack.store.getInstance(id);
      expect(
        await run(stack, 'resize_instance', id, { args: { flavor: 'm9.huge' } }),
      ).toMatchObject({
        status: 'rejected',
        error_code: 'UnknownFlavor',
        outcome: { error: { code: 400 } },
      });
      const same = await run(stack, 'resize_instance', id, { args: { flavor: 'm1.tiny' } });
      expect(same).toMatchObject({ status: 'rejected', outcome: { error: { code: 400 } } });
      expect(same.outcome?.error?.message).toMatch(/CannotResizeToSameFlavor/);
      expect((await stack.store.getInstance(id))?.version).toBe(before?.version);
    });

    it('fails with "No valid host was found" when no other node fits: task reverted, vm kept', async () => {
      const id = await tinyInstance();
      const resize = await run(stack, 'resize_instance', id, { args: { flavor: 'm1.giant' } });
      expect(resize).toMatchObject({
        status: 'failed',
        events: [{ event: 'conductor_migrate_server', result: 'Error' }],
      });
      expect(resize.outcome?.error?.message).toMatch(/No valid host was found/);
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        task_owner: null,
        node: 'fake-node-1',
        flavor: { name: 'm1.tiny' },
      });
      expect((await stack.store.listFaults(id)).at(-1)?.message).toMatch(/No valid host was found/);
      expect(await eventTrail(stack, id)).toEqual(['update:active/resize_prep', 'update:active/-']);
      expect(await migrations.list(id)).toEqual([]);
    });

    it('rejects every vm_state Nova forbids, changing nothing', async () => {
      const id = await tinyInstance();
      const movable = [VmState.ACTIVE, VmState.STOPPED];
      await expectForbiddenStatesRejected(stack, 'resize_instance', id, movable, {
        args: { flavor: 'm1.small' },
      });
      await expectForbiddenStatesRejected(stack, 'migrate_instance', id, movable);
      await expectForbiddenStatesRejected(stack, 'confirm_resize', id, [VmState.RESIZED]);
      await expectForbiddenStatesRejected(stack, 'revert_resize', id, [VmState.RESIZED]);
    });

    it('rejects a running task, and a confirm or revert without a finished resize', async () => {
      const id = await tinyInstance();
      await forceState(stack, id, { task_state: TaskState.POWERING_OFF });
      expect(
        await run(stack, 'resize_instance', id, { args: { flavor: 'm1.small' } }),
      ).toMatchObject({ status: 'rejected', error_code: 'InstanceInvalidState' });
      await forceState(stack, id, { task_state: null, vm_state: VmState.RESIZED });
      for (const op of ['confirm_resize', 'revert_resize'] as const) {
        expect(await run(stack, op, id)).toMatchObject({
          status: 'rejected',
          outcome: { error: { code: 400 } },
        });
      }
    });

    it('rejects a locked instance for its owner and lets an admin through', async () => {
      const id = await tinyInstance();
      await forceState(stack, id, { locked: true, locked_by: 'admin' });
      for (const [op, args] of [
        ['resize_instance', { flavor: 'm1.small' }],
        ['migrate_instance', {}],
      ] as const) {
        expect(await run(stack, op, id, { args })).toMatchObject({
          status: 'rejected',
          error_code: 'InstanceIsLocked',
          outcome: { error: { code: 409 } },
        });
      }
      const admin = await run(stack, 'resize_instance', id, {
        args: { flavor: 'm1.small' },
        roles: ['admin'],
      });
      expect(admin.status).toBe('succeeded');
      for (const op of ['confirm_resize', 'revert_resize'] as const) {
        expect(await run(stack, op, id)).toMatchObject({
          status: 'rejected',
          error_code: 'InstanceIsLocked',
        });
      }
      expect((await run(stack, 'revert_resize', id, { roles: ['admin'] })).status).toBe(
        'succeeded',
      );
    });

    it('errors the instance out when finish_migration fails: old flavor, fault, resize.error', async () => {
      const id = await tinyInstance();
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      const { DriverError } = await import('../../lib/virt/errors.ts');
      vi.spyOn(FakeDriver.prototype, 'finishMigration').mockRejectedValueOnce(
        new DriverError('ComputeResourcesUnavailable', 'the destination refused the guest'),
      );
      const resize = await run(stack, 'resize_instance', id, { args: { flavor: 'm1.small' } });
      expect(resize).toMatchObject({
        status: 'failed',
        events: [
          { event: 'compute_prep_resize', result: 'Success' },
          { event: 'compute_resize_instance', result: 'Success' },
          { event: 'compute_finish_resize', result: 'Error' },
        ],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ERROR,
        task_state: null,
        task_owner: null,
        flavor: { name: 'm1.tiny' },
        node: 'fake-node-2',
      });
      expect((await stack.store.listFaults(id)).at(-1)?.message).toMatch(/refused the guest/);
      expect((await migrations.list(id))[0]?.status).toBe('error');
      const trail = await eventTrail(stack, id);
      expect(trail.slice(-3)).toEqual(['finish_resize.start', 'update:error/-', 'resize.error']);
    });

    it('answers 501 and keeps the vm_state when the driver cannot migrate disks', async () => {
      const id = await tinyInstance();
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      const { NotSupportedError } = await import('../../lib/virt/errors.ts');
      vi.spyOn(FakeDriver.prototype, 'migrateDiskAndPowerOff').mockRejectedValueOnce(
        new NotSupportedError('fake', 'migrate_disk_and_power_off'),
      );
      const resize = await run(stack, 'resize_instance', id, { args: { flavor: 'm1.small' } });
      expect(resize).toMatchObject({
        status: 'failed',
        error_code: 'NotSupported',
        outcome: { error: { code: 501 } },
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        node: 'fake-node-1',
        flavor: { name: 'm1.tiny' },
      });
      expect((await migrations.list(id))[0]?.status).toBe('error');
      expect((await eventTrail(stack, id)).at(-1)).toBe('resize.error');
    });

    it('errors the instance out when confirm or revert fails in the driver', async () => {
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      const { DriverError } = await import('../../lib/virt/errors.ts');

      const confirmed = await resized();
      vi.spyOn(FakeDriver.prototype, 'confirmMigration').mockRejectedValueOnce(
        new DriverError('HypervisorUnavailable', 'the source did not answer'),
      );
      expect(await run(stack, 'confirm_resize', confirmed)).toMatchObject({
        status: 'failed',
        events: [{ event: 'compute_confirm_resize', result: 'Error' }],
      });
      expect(await stack.store.getInstance(confirmed)).toMatchObject({
        vm_state: VmState.ERROR,
        task_state: null,
      });
      expect((await migrations.list(confirmed))[0]?.status).toBe('error');
      expect((await stack.store.listFaults(confirmed)).at(-1)?.message).toMatch(/did not answer/);

      const reverted = await resized();
      vi.spyOn(FakeDriver.prototype, 'finishRevertMigration').mockRejectedValueOnce(
        new DriverError('HypervisorUnavailable', 'the source did not answer'),
      );
      expect(await run(stack, 'revert_resize', reverted)).toMatchObject({
        status: 'failed',
        events: [
          { event: 'compute_revert_resize', result: 'Success' },
          { event: 'compute_finish_revert_resize', result: 'Error' },
        ],
      });
      // The destination guest is gone: the instance is back on the source, in ERROR. The
      // migration stays `reverted` (the destination's half finished), as in Nova.
      expect(await stack.store.getInstance(reverted)).toMatchObject({
        vm_state: VmState.ERROR,
        task_state: null,
        node: 'fake-node-1',
        flavor: { name: 'm1.tiny' },
      });
      expect((await migrations.list(reverted))[0]?.status).toBe('reverted');
      expect((await stack.store.listFaults(reverted)).at(-1)?.message).toMatch(/did not answer/);

      // A failure on the destination's half (destroying the new guest) errors the migration.
      const early = await resized();
      vi.spyOn(FakeDriver.prototype, 'destroy').mockRejectedValueOnce(
        new DriverError('HypervisorUnavailable', 'the destination did not answer'),
      );
      expect(await run(stack, 'revert_resize', early)).toMatchObject({
        status: 'failed',
        events: [{ event: 'compute_revert_resize', result: 'Error' }],
      });
      expect(await stack.store.getInstance(early)).toMatchObject({
        vm_state: VmState.ERROR,
        task_state: null,
        node: 'fake-node-2',
      });
      expect((await migrations.list(early))[0]?.status).toBe('error');
    });

    it('resumes where it stopped when redelivered after an infrastructure fault, announcing each step once', async () => {
      const id = await tinyInstance();
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
      const finish = vi
        .spyOn(FakeDriver.prototype, 'finishMigration')
        .mockRejectedValueOnce(throttled);
      const migrate = vi.spyOn(FakeDriver.prototype, 'migrateDiskAndPowerOff');
      const command = buildCommand({
        operation: 'resize_instance',
        instance_id: id,
        args: { flavor: 'm1.small' },
        context: OWNER,
      });
      await stack.send('resize_instance', command);
      // The first attempt stops at RESIZE_FINISH; SQS delivers the message again after the
      // visibility timeout, and the redelivery resumes from there.
      for (let attempt = 0; attempt < 10; attempt++) {
        await stack.drain('resize_instance');
        const action = await stack.store.findActionByCommand(command.command_id);
        if (action?.status !== 'running') break;
        await new Promise((r) => setTimeout(r, 1000));
      }
      await stack.drain('lifecycle');
      expect(await stack.store.findActionByCommand(command.command_id)).toMatchObject({
        status: 'succeeded',
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.RESIZED,
        task_state: null,
        node: 'fake-node-2',
      });
      expect(finish).toHaveBeenCalledTimes(2);
      expect(migrate).toHaveBeenCalledTimes(1);
      expect(await eventTrail(stack, id)).toEqual(RESIZE_TRAIL);
      expect(await migrations.list(id)).toHaveLength(1);
    });

    it('lets a delete pre-empt a resize waiting on its event; the resize ends failed once', async () => {
      const id = await tinyInstance();
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      vi.spyOn(FakeDriver.prototype, 'migrateDiskAndPowerOff').mockResolvedValueOnce({
        status: 'pending',
        expect: 'stopped',
        deadlineSeconds: 300,
        diskInfo: '[]',
      });
      const resize = await run(stack, 'resize_instance', id, { args: { flavor: 'm1.small' } });
      expect(resize.status).toBe('running');
      expect((await stack.store.getInstance(id))?.task_state).toBe(TaskState.RESIZE_MIGRATING);
      expect((await run(stack, 'terminate_instance', id)).status).toBe('succeeded');
      expect(await stack.store.findActionByCommand(resize.command_id)).toMatchObject({
        status: 'failed',
        error_code: 'UnexpectedDeletingTaskState',
      });
    });

    it('lets the sweeper finish a revert whose event never came, asking the source', async () => {
      const id = await resized();
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      const real = FakeDriver.prototype.finishRevertMigration;
      vi.spyOn(FakeDriver.prototype, 'finishRevertMigration').mockImplementationOnce(
        async function (this: InstanceType<typeof FakeDriver>, ...args) {
          await real.apply(this, args);
          return { status: 'pending', expect: 'started', deadlineSeconds: 300 };
        },
      );
      const revert = await run(stack, 'revert_resize', id);
      expect(revert.status).toBe('running');
      expect(await stack.store.getInstance(id)).toMatchObject({
        task_state: TaskState.RESIZE_REVERTING,
        node: 'fake-node-1',
        flavor: { name: 'm1.tiny' },
      });
      const { composeComputeDeps } = await import('../../lib/compose.ts');
      const { settleWait } = await import('../../lib/compute/periodic/settle.ts');
      const deps = composeComputeDeps(stack.config, QUIET);
      const action = await stack.store.getAction({ kind: 'instance', id }, revert.command_id);
      expect(await settleWait(deps, action!, 'started', new Date())).toBe('completed');
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        power_state: PowerState.RUNNING,
      });
      expect(
        (await stack.store.getAction({ kind: 'instance', id }, revert.command_id))?.status,
      ).toBe('succeeded');
    });

    it('lets the sweeper fail a resize whose disk migration never reported: ERROR, migration error', async () => {
      const id = await tinyInstance();
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      // The platform accepted the power-off but the guest never stopped.
      vi.spyOn(FakeDriver.prototype, 'migrateDiskAndPowerOff').mockResolvedValueOnce({
        status: 'pending',
        expect: 'stopped',
        deadlineSeconds: 300,
        diskInfo: '[]',
      });
      const resize = await run(stack, 'resize_instance', id, { args: { flavor: 'm1.small' } });
      expect(resize.status).toBe('running');
      const { composeComputeDeps } = await import('../../lib/compose.ts');
      const { settleWait } = await import('../../lib/compute/periodic/settle.ts');
      const deps = composeComputeDeps(stack.config, QUIET);
      const action = await stack.store.getAction({ kind: 'instance', id }, resize.command_id);
      expect(await settleWait(deps, action!, 'stopped', new Date())).toBe('abandoned');
      expect(await stack.store.findActionByCommand(resize.command_id)).toMatchObject({
        status: 'failed',
        error_code: 'LifecycleTimeout',
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ERROR,
        task_state: null,
        task_owner: null,
      });
      expect((await migrations.list(id))[0]?.status).toBe('error');
    });

    it('settles moves for a delete: confirms a RESIZED one, cleans up after a pre-empted one', async () => {
      const { composeComputeDeps } = await import('../../lib/compose.ts');
      const { CommandRuntime } = await import('../../lib/compute/runtime.ts');
      const { settleMovesForDelete } = await import('../../lib/compute/operations/resize.ts');
      const deps = composeComputeDeps(stack.config, QUIET);
      const deleting = (instanceId: string) =>
        new CommandRuntime(deps, {
          version: 1,
          command_id: `delete-${instanceId}`,
          operation: 'terminate_instance',
          context: { ...OWNER, request_id: `req-${instanceId}`, roles: [] },
          instance_id: instanceId,
          args: {},
        } as ConstructorParameters<typeof CommandRuntime>[1]);

      const done = await resized();
      await settleMovesForDelete(deleting(done), (await stack.store.getInstance(done))!);
      expect((await migrations.list(done))[0]?.status).toBe('confirmed');
      expect(await guests.get('fake-node-1', done)).toBeNull();
      expect(await guests.get('fake-node-2', done)).not.toBeNull();

      const moving = await tinyInstance();
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      vi.spyOn(FakeDriver.prototype, 'finishMigration').mockResolvedValueOnce({
        status: 'pending',
        expect: 'started',
        deadlineSeconds: 300,
      });
      await run(stack, 'resize_instance', moving, { args: { flavor: 'm1.small' } });
      const instance = (await stack.store.getInstance(moving))!;
      expect(instance).toMatchObject({ task_state: TaskState.RESIZE_FINISH, node: 'fake-node-2' });
      expect(await guests.get('fake-node-1', moving)).not.toBeNull();
      await settleMovesForDelete(deleting(moving), instance);
      expect(await guests.get('fake-node-1', moving)).toBeNull();
      expect((await migrations.list(moving))[0]?.status).toBe('error');
    });

    if (mode === 'async') {
      it('finishes a resize whose finish_migration is pending when its event arrives (once)', async () => {
        const id = await tinyInstance();
        const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
        const real = FakeDriver.prototype.finishMigration;
        vi.spyOn(FakeDriver.prototype, 'finishMigration').mockImplementationOnce(async function (
          this: InstanceType<typeof FakeDriver>,
          ...args
        ) {
          await real.apply(this, args);
          return { status: 'pending', expect: 'started', deadlineSeconds: 300 };
        });
        const resize = await run(stack, 'resize_instance', id, { args: { flavor: 'm1.small' } });
        expect(resize.status).toBe('running');
        expect(await stack.store.getInstance(id)).toMatchObject({
          task_state: TaskState.RESIZE_FINISH,
          flavor: { name: 'm1.small' },
        });

        const event = {
          instanceId: id,
          transition: 'started' as const,
          node: 'fake-node-2',
          occurredAt: new Date().toISOString(),
          source: 'fake' as const,
          sequence: Date.now() * 1000,
        };
        for (let i = 0; i < 2; i++) {
          await stack.sqs.send(
            new SendMessageCommand({
              QueueUrl: stack.topology.lifecycle.url,
              MessageBody: JSON.stringify(lifecycleEnvelope(event)),
            }),
          );
          await stack.drain('lifecycle');
        }
        expect(await stack.store.findActionByCommand(resize.command_id)).toMatchObject({
          status: 'succeeded',
        });
        expect(await stack.store.getInstance(id)).toMatchObject({
          vm_state: VmState.RESIZED,
          task_state: null,
          power_state: PowerState.RUNNING,
        });
        const trail = await eventTrail(stack, id);
        expect(trail.filter((t) => t === 'finish_resize.end')).toHaveLength(1);
        expect((await migrations.list(id))[0]?.status).toBe('finished');
      });
    }
  });
}
