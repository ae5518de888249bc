// live_migrate_instance through SQS: Nova's events and migration statuses, where the guest ends
// up, forbidden states, locks, the admin-only node choice, rollback on a driver failure, 501 when
// the driver cannot live-migrate, and completion of a pending migration by its lifecycle event.

import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { lifecycleEnvelope } from '../../lib/compute/lifecycle-transport.ts';
import type * as Registry from '../../lib/compute/operations/registry.ts';
import { PowerState, TaskState, VmState } from '../../lib/compute/states.ts';
import { DynamoDbMigrationStore } from '../../lib/store/migration-store.ts';
import { DynamoDbFakeHypervisorStore } from '../../lib/virt/fake/dynamodb-store.ts';
import {
  activeInstance,
  eventTrail,
  expectForbiddenStatesRejected,
  forceState,
  run,
} from '../support/operations.ts';
import { type TestStack, startTestStack } from '../support/stack.ts';

// Until the registry lists live_migrate_instance, the lifecycle function must know it to finish
// a pending migration; this is exactly the line the registry gains. The mocked module outlives
// vi.resetModules, so its table is refilled from each test stack's fresh modules.
const lifecycleHandlers: Record<string, unknown> = {};
vi.doMock('../../lib/compute/operations/registry.ts', () => ({
  OPERATION_HANDLERS: lifecycleHandlers,
}));

async function registerHandlers(): Promise<void> {
  const registry = await vi.importActual<typeof Registry>(
    '../../lib/compute/operations/registry.ts',
  );
  const live = await import('../../lib/compute/operations/live-migration.ts');
  Object.assign(lifecycleHandlers, registry.OPERATION_HANDLERS, {
    live_migrate_instance: live.liveMigrateInstance,
  });
}

const QUIET = { info() {}, warn() {}, error() {} };

const LIVE_TRAIL = [
  'update:active/migrating',
  'live_migration.pre.start',
  'live_migration.pre.end',
  'live_migration._post.start',
  'live_migration.post.dest.start',
  'update:active/-',
  'live_migration.post.dest.end',
  'live_migration._post.end',
];

for (const mode of ['sync', 'async'] as const) {
  describe(`live migration (${mode} driver)`, () => {
    let stack: TestStack;
    let migrations: DynamoDbMigrationStore;
    let guests: DynamoDbFakeHypervisorStore;

    beforeAll(async () => {
      stack = await startTestStack({
        label: `live-${mode}`,
        options: {
          notify_on_state_change: 'vm_and_task_state',
          fake_async: mode === 'async' ? 'true' : 'false',
          admin_producers: '["000000000000"]',
          fake_nodes: JSON.stringify([
            { node: 'fake-node-1', vcpus: 256, memory_mb: 65536, local_gb: 5000 },
            { node: 'fake-node-2', vcpus: 256, memory_mb: 65536, local_gb: 5000 },
          ]),
        },
        operations: ['live_migrate_instance'],
      });
      await registerHandlers();
      migrations = new DynamoDbMigrationStore(stack.doc, stack.config.tables.state);
      guests = new DynamoDbFakeHypervisorStore({
        client: stack.doc,
        tableName: stack.config.tables.fakeHypervisor,
      });
    });

    afterEach(() => vi.restoreAllMocks());

    async function instanceOn(): Promise<{ id: string; source: string; dest: string }> {
      const id = await activeInstance(stack);
      const source = (await stack.store.getInstance(id))!.node!;
      await stack.receiveEvents();
      return { id, source, dest: source === 'fake-node-1' ? 'fake-node-2' : 'fake-node-1' };
    }

    it('moves an ACTIVE instance to another node without changing its vm_state', async () => {
      const { id, source, dest } = await instanceOn();
      const live = await run(stack, 'live_migrate_instance', id);
      expect(live).toMatchObject({
        status: 'succeeded',
        events: [
          { event: 'compute_check_can_live_migrate_destination', result: 'Success' },
          { event: 'compute_pre_live_migration', result: 'Success' },
          { event: 'compute_live_migration', result: 'Success' },
          { event: 'compute_post_live_migration_at_destination', result: 'Success' },
        ],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        task_owner: null,
        power_state: PowerState.RUNNING,
        node: dest,
        flavor: { name: 'm1.tiny' },
      });
      expect(await eventTrail(stack, id)).toEqual(LIVE_TRAIL);
      expect((await migrations.list(id))[0]).toMatchObject({
        migration_type: 'live-migration',
        status: 'completed',
        source_node: source,
        dest_node: dest,
        migrate_data: { source_node: source, dest_node: dest },
      });
      expect(await guests.get(source, id)).toBeNull();
      expect((await guests.get(dest, id))?.powerState).toBe(PowerState.RUNNING);
    });

    it('moves a PAUSED instance and leaves it PAUSED; an admin may name the node', async () => {
      const { id, dest } = await instanceOn();
      await forceState(stack, id, { vm_state: VmState.PAUSED });
      const live = await run(stack, 'live_migrate_instance', id, {
        args: { node: dest },
        roles: ['admin'],
      });
      expect(live.status).toBe('succeeded');
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.PAUSED,
        task_state: null,
        node: dest,
      });
    });

    it('refuses a node from a non-admin (403), an unknown or the current node (400)', async () => {
      const { id, source, dest } = await instanceOn();
      const before = await stack.store.getInstance(id);
      expect(await run(stack, 'live_migrate_instance', id, { args: { node: dest } })).toMatchObject(
        { status: 'rejected', error_code: 'Forbidden', outcome: { error: { code: 403 } } },
      );
      for (const node of ['no-such-node', source]) {
        expect(
          await run(stack, 'live_migrate_instance', id, { args: { node }, roles: ['admin'] }),
        ).toMatchObject({ status: 'rejected', outcome: { error: { code: 400 } } });
      }
      expect((await stack.store.getInstance(id))?.version).toBe(before?.version);
    });

    it('rejects every vm_state Nova forbids, and a running task, changing nothing', async () => {
      const { id } = await instanceOn();
      await expectForbiddenStatesRejected(stack, 'live_migrate_instance', id, [
        VmState.ACTIVE,
        VmState.PAUSED,
      ]);
      await forceState(stack, id, { vm_state: VmState.ACTIVE, task_state: TaskState.REBOOTING });
      expect(await run(stack, 'live_migrate_instance', id)).toMatchObject({
        status: 'rejected',
        error_code: 'InstanceInvalidState',
      });
    });

    it('rejects a locked instance for its owner and lets an admin through', async () => {
      const { id, dest } = await instanceOn();
      await forceState(stack, id, { locked: true, locked_by: 'admin' });
      expect(await run(stack, 'live_migrate_instance', id)).toMatchObject({
        status: 'rejected',
        error_code: 'InstanceIsLocked',
        outcome: { error: { code: 409 } },
      });
      expect((await stack.store.getInstance(id))?.task_state).toBeNull();
      const admin = await run(stack, 'live_migrate_instance', id, { roles: ['admin'] });
      expect(admin.status).toBe('succeeded');
      expect((await stack.store.getInstance(id))?.node).toBe(dest);
    });

    it('rolls back when the driver’s live migration fails: task None, vm kept, migration failed', async () => {
      const { id, source } = await instanceOn();
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      const { DriverError } = await import('../../lib/virt/errors.ts');
      vi.spyOn(FakeDriver.prototype, 'liveMigration').mockRejectedValueOnce(
        new DriverError('MigrationError', 'the memory copy did not converge'),
      );
      const live = await run(stack, 'live_migrate_instance', id);
      expect(live).toMatchObject({
        status: 'failed',
        events: [
          { event: 'compute_check_can_live_migrate_destination', result: 'Success' },
          { event: 'compute_pre_live_migration', result: 'Success' },
          { event: 'compute__rollback_live_migration', result: 'Error' },
        ],
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        task_owner: null,
        node: source,
      });
      expect((await migrations.list(id))[0]?.status).toBe('failed');
      expect((await stack.store.listFaults(id)).at(-1)?.message).toMatch(/did not converge/);
      expect(await eventTrail(stack, id)).toEqual([
        'update:active/migrating',
        'live_migration.pre.start',
        'live_migration.pre.end',
        'live_migration._rollback.start',
        'update:active/-',
        'live_migration.rollback.dest.start',
        'live_migration.rollback.dest.end',
        'live_migration._rollback.end',
      ]);
      expect(await guests.get(source, id)).not.toBeNull();
    });

    it('answers 501 when the driver cannot live-migrate, changing only the task back', async () => {
      const { id, source } = await instanceOn();
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      const { NotSupportedError } = await import('../../lib/virt/errors.ts');
      vi.spyOn(FakeDriver.prototype, 'checkCanLiveMigrateDestination').mockRejectedValueOnce(
        new NotSupportedError('fake', 'check_can_live_migrate_destination'),
      );
      const live = await run(stack, 'live_migrate_instance', id);
      expect(live).toMatchObject({
        status: 'failed',
        error_code: 'NotSupported',
        outcome: { error: { code: 501 } },
      });
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        node: source,
      });
      expect((await migrations.list(id))[0]?.status).toBe('error');
      expect(await eventTrail(stack, id)).toEqual(['update:active/migrating', 'update:active/-']);
    });

    it('errors the instance out on the destination when post-migration fails there', async () => {
      const { id, dest } = await instanceOn();
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      const { DriverError } = await import('../../lib/virt/errors.ts');
      vi.spyOn(FakeDriver.prototype, 'postLiveMigrationAtDestination').mockRejectedValueOnce(
        new DriverError('HypervisorUnavailable', 'the destination did not plug the ports'),
      );
      const live = await run(stack, 'live_migrate_instance', id);
      expect(live.status).toBe('failed');
      expect(await stack.store.getInstance(id)).toMatchObject({
        vm_state: VmState.ERROR,
        task_state: null,
        node: dest,
      });
      expect((await migrations.list(id))[0]?.status).toBe('error');
    });

    it('lets the sweeper settle a live migration whose event never came, by where the guest is', async () => {
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      const { composeComputeDeps } = await import('../../lib/compose.ts');
      const { settleWait } = await import('../../lib/compute/periodic/settle.ts');
      const deps = composeComputeDeps(stack.config, QUIET);
      const real = FakeDriver.prototype.liveMigration;
      const pending = { status: 'pending', expect: 'migration_completed', deadlineSeconds: 300 };

      // The guest moved: post-migration runs.
      const moved = await instanceOn();
      vi.spyOn(FakeDriver.prototype, 'liveMigration').mockImplementationOnce(async function (
        this: InstanceType<typeof FakeDriver>,
        ...args
      ) {
        await real.apply(this, args);
        return pending as Awaited<ReturnType<typeof real>>;
      });
      const first = await run(stack, 'live_migrate_instance', moved.id);
      expect(first.status).toBe('running');
      const a = await stack.store.getAction({ kind: 'instance', id: moved.id }, first.command_id);
      await settleWait(deps, a!, 'migration_completed', new Date());
      expect(await stack.store.getInstance(moved.id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        node: moved.dest,
      });
      expect((await migrations.list(moved.id))[0]?.status).toBe('completed');

      // The guest never left: rolled back.
      const stuck = await instanceOn();
      vi.spyOn(FakeDriver.prototype, 'liveMigration').mockResolvedValueOnce(
        pending as Awaited<ReturnType<typeof real>>,
      );
      const second = await run(stack, 'live_migrate_instance', stuck.id);
      expect(second.status).toBe('running');
      const b = await stack.store.getAction({ kind: 'instance', id: stuck.id }, second.command_id);
      await settleWait(deps, b!, 'migration_completed', new Date());
      expect(await stack.store.getInstance(stuck.id)).toMatchObject({
        vm_state: VmState.ACTIVE,
        task_state: null,
        node: stuck.source,
      });
      expect(await stack.store.findActionByCommand(second.command_id)).toMatchObject({
        status: 'failed',
        error_code: 'LifecycleTimeout',
      });
      expect((await migrations.list(stuck.id))[0]?.status).toBe('failed');
    });

    if (mode === 'async') {
      it('finishes a pending live migration when migration_completed arrives (once)', async () => {
        const { id, dest } = await instanceOn();
        const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
        const real = FakeDriver.prototype.liveMigration;
        vi.spyOn(FakeDriver.prototype, 'liveMigration').mockImplementationOnce(async function (
          this: InstanceType<typeof FakeDriver>,
          ...args
        ) {
          await real.apply(this, args);
          return { status: 'pending', expect: 'migration_completed', deadlineSeconds: 300 };
        });
        const live = await run(stack, 'live_migrate_instance', id);
        expect(live.status).toBe('running');
        expect(await stack.store.getInstance(id)).toMatchObject({
          task_state: TaskState.MIGRATING,
        });
        expect((await migrations.list(id))[0]?.status).toBe('running');

        const event = {
          instanceId: id,
          transition: 'migration_completed' as const,
          node: dest,
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
        expect(await stack.store.findActionByCommand(live.command_id)).toMatchObject({
          status: 'succeeded',
        });
        expect(await stack.store.getInstance(id)).toMatchObject({
          vm_state: VmState.ACTIVE,
          task_state: null,
          node: dest,
          power_state: PowerState.RUNNING,
        });
        expect(await eventTrail(stack, id)).toEqual(LIVE_TRAIL);
        expect((await migrations.list(id))[0]?.status).toBe('completed');
      });
    }
  });
}
