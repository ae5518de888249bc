// live_migrate_instance (nova-compute.md §1.4). The vm_state never changes; the task is
// MIGRATING from the API's write until the instance runs on the destination (or rolled back).
//
//   API        lock, host, [ACTIVE, PAUSED], no task → MIGRATING (an admin may name the node)
//   conductor  choose the destination; Migration `accepted`; checks on both ends
//              (check_can_live_migrate_destination / _source, check_source_migrate_data_at_dest);
//              any failure: migration `error`, task None, vm unchanged, fault
//   source     migration `preparing`; live_migration.pre.start, pre_live_migration,
//              live_migration.pre.end; migration `running`; live_migration (pending: waits for
//              `migration_completed`); any failure: rollback — live_migration._rollback.*,
//              live_migration.rollback.dest.*, migration `failed`, task None, vm unchanged, fault
//   post       live_migration._post.start, post_live_migration(_at_source),
//              live_migration.post.dest.start, post_live_migration_at_destination, migration
//              `completed`, node = destination, power_state refreshed, task None,
//              live_migration.post.dest.end, live_migration._post.end
//
// The migration's status is the step marker: a redelivered command, or the lifecycle event of a
// pending live_migration, resumes at the step its migration records.

import type { ArgsOf } from '../../commands/schemas.ts';
import { ErrorCode, StratusError, UnexpectedTaskStateError } from '../../errors.ts';
import type { Notification } from '../../notifications/notification.ts';
import { type Migration, MigrationStatus } from '../../store/migration-store.ts';
import type { LiveMigrateData } from '../../virt/driver.ts';
import { NotSupportedError } from '../../virt/errors.ts';
import type { Instance } from '../instance.ts';
import { type CommandRuntime, newAction } from '../runtime.ts';
import { LifecycleTransition, TaskState, VmState } from '../states.ts';
import {
  actionEvent,
  driverContext,
  expectLifecycle,
  ignoreFinished,
  isRetryable,
  NOTHING_PENDING,
  waitForDriver,
} from './common.ts';
import {
  type MoveHandler,
  MoveFailedEarlierError,
  advance,
  checkMovable,
  checkRequestedNode,
  dropMoveClaim,
  errorOutMigration,
  isConflict,
  migrationIdFor,
  migrationInfo,
  migrations,
  missingMigration,
  moveClaim,
  owned,
  preempted,
  selectDestination,
  stepWrite,
} from './resize.ts';

const S = MigrationStatus;
const LIVE_MIGRATABLE: readonly VmState[] = [VmState.ACTIVE, VmState.PAUSED];

/** Action progress keys: notifications sent once, committed with their marker. */
const PRE_START_SENT = 'live_pre_start_sent';
const PRE_DONE = 'live_pre_done';
const POST_START_SENT = 'live_post_start_sent';

const CHECK_EVENT = 'compute_check_can_live_migrate_destination';
const PRE_EVENT = 'compute_pre_live_migration';
const LIVE_EVENT = 'compute_live_migration';
const POST_DEST_EVENT = 'compute_post_live_migration_at_destination';
const ROLLBACK_EVENT = 'compute__rollback_live_migration';

function migrateDataOf(m: Migration): LiveMigrateData {
  if (!m.migrate_data) throw missingMigration(m.instance_id);
  return m.migrate_data;
}

async function currentMigration(rt: CommandRuntime): Promise<Migration | null> {
  return migrations(rt).get(rt.command.instance_id, migrationIdFor(rt.command.command_id));
}

/** Failed in the checks, before anything moved: the conductor's failure (migration `error`). */
class PreCheckFailure extends Error {
  constructor(cause: unknown) {
    super('live migration pre-check failed', { cause });
    this.name = 'PreCheckFailure';
  }
}

/** The conductor: destination, migration `accepted`, the checks on both ends. */
async function schedule(rt: CommandRuntime, instance: Instance): Promise<void> {
  const args = rt.command.args as ArgsOf<'live_migrate_instance'>;
  let dest: { node: string };
  try {
    dest = await selectDestination(rt, instance, instance.flavor, {
      allowSameNode: false,
      ...(args.node !== undefined ? { requestedNode: args.node } : {}),
    });
  } catch (e) {
    throw new PreCheckFailure(e);
  }
  const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
  const now = rt.now().toISOString();
  await migrations(rt).create({
    id: migrationIdFor(rt.command.command_id),
    instance_id: instance.instance_id,
    source_node: instance.node as string,
    dest_node: dest.node,
    source_host: instance.host as string,
    dest_host: rt.deps.config.host,
    old_flavor: { ...instance.flavor },
    new_flavor: { ...instance.flavor },
    migration_type: 'live-migration',
    status: S.ACCEPTED,
    created_at: action?.start_time ?? now,
    updated_at: now,
    migrate_data: null,
  });
}

async function check(rt: CommandRuntime, instance: Instance, m: Migration): Promise<void> {
  const args = rt.command.args as ArgsOf<'live_migrate_instance'>;
  const ctx = driverContext(rt);
  const driver = rt.deps.driver;
  let data: LiveMigrateData;
  try {
    const destCheck = await driver.checkCanLiveMigrateDestination(ctx, instance, {
      destNode: m.dest_node,
      blockMigration: args.block_migration ?? false,
      diskOverCommit: false,
    });
    try {
      data = await driver.checkCanLiveMigrateSource(ctx, instance, destCheck);
      data = await driver.checkSourceMigrateDataAtDest(ctx, instance, data, migrationInfo(m));
    } finally {
      await driver.cleanupLiveMigrationDestinationCheck(ctx, destCheck);
    }
  } catch (e) {
    if (isRetryable(e)) throw e;
    throw new PreCheckFailure(e);
  }
  await moveClaim(rt, instance, m);
  await advance(rt, m, S.ACCEPTED, S.PREPARING, { migrate_data: data });
  await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
    event: actionEvent(rt, CHECK_EVENT, 'Success'),
  });
}

/** pre_live_migration on the destination, then migration `running`. */
async function pre(rt: CommandRuntime, instance: Instance, m: Migration): Promise<void> {
  const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
  let data = migrateDataOf(m);
  if (!action?.progress[PRE_DONE]) {
    if (!action?.progress[PRE_START_SENT]) {
      await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
        notifications: [rt.notify(instance, 'live_migration.pre.start')],
        progress: { [PRE_START_SENT]: true },
      });
    }
    data = await rt.deps.driver.preLiveMigration(driverContext(rt), instance, data);
    await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
      notifications: [rt.notify(instance, 'live_migration.pre.end')],
      event: actionEvent(rt, PRE_EVENT, 'Success'),
      progress: { [PRE_DONE]: true },
    });
  }
  await advance(rt, m, S.PREPARING, S.RUNNING, { migrate_data: data });
}

/** The source's post-migration and the destination's: the instance now runs there. */
async function post(rt: CommandRuntime, m: Migration): Promise<void> {
  const instance = await rt.deps.store.getInstance(rt.command.instance_id);
  if (!instance) throw new UnexpectedTaskStateError(rt.command.instance_id, [], null);
  owned(rt, instance, TaskState.MIGRATING);
  const ctx = driverContext(rt);
  const driver = rt.deps.driver;
  const data = migrateDataOf(m);
  const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
  if (!action?.progress[POST_START_SENT]) {
    await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
      notifications: [rt.notify(instance, 'live_migration._post.start', { includeFixedIps: true })],
      event: actionEvent(rt, LIVE_EVENT, 'Success'),
      progress: { [POST_START_SENT]: true },
    });
  }
  if (m.status === S.RUNNING) {
    await driver.postLiveMigration(ctx, instance, data);
    await driver.postLiveMigrationAtSource(ctx, instance, instance.ports).catch((e: unknown) => {
      // A source-side cleanup hook (Nova unplugs the VIFs there); a driver without one has
      // nothing to clean up.
      if (!(e instanceof NotSupportedError)) throw e;
    });
    await driver.postLiveMigrationAtDestination(ctx, instance, data);
  }
  const atDest: Instance = { ...instance, host: m.dest_host, node: m.dest_node };
  const info = await driver.getInfo(ctx, atDest);
  await advance(rt, m, S.RUNNING, S.COMPLETED);
  await dropMoveClaim(rt, m, 'source');
  await stepWrite(rt, TaskState.MIGRATING, {
    changes: () => ({
      task_state: null,
      task_owner: null,
      host: m.dest_host,
      node: m.dest_node,
      power_state: info.state,
    }),
    before: (old) => [rt.notify(old, 'live_migration.post.dest.start', { includeFixedIps: true })],
    after: (next) => [
      rt.notify(next, 'live_migration.post.dest.end', { includeFixedIps: true }),
      rt.notify(next, 'live_migration._post.end', { includeFixedIps: true }),
    ],
    event: actionEvent(rt, POST_DEST_EVENT, 'Success'),
    finish: rt.outcome('succeeded'),
    progress: NOTHING_PENDING,
    wait: null,
  });
}

async function walk(rt: CommandRuntime): Promise<void> {
  for (;;) {
    const instance = await rt.deps.store.getInstance(rt.command.instance_id);
    if (!instance) throw new UnexpectedTaskStateError(rt.command.instance_id, [], null);
    owned(rt, instance, TaskState.MIGRATING);
    const m = await currentMigration(rt);
    if (!m) {
      await schedule(rt, instance);
      continue;
    }
    switch (m.status) {
      case S.ACCEPTED:
        await check(rt, instance, m);
        break;
      case S.PREPARING:
        await pre(rt, instance, m);
        break;
      case S.RUNNING: {
        await expectLifecycle(rt, LifecycleTransition.MIGRATION_COMPLETED);
        const result = await rt.deps.driver.liveMigration(
          driverContext(rt),
          instance,
          migrateDataOf(m),
        );
        if (result.status === 'pending') {
          await waitForDriver(rt, result.deadlineSeconds).catch(ignoreFinished);
          return;
        }
        await post(rt, m);
        return;
      }
      case S.COMPLETED:
        await post(rt, m);
        return;
      case S.ERROR:
      case S.FAILED:
        throw new MoveFailedEarlierError(m.id);
      default:
        throw missingMigration(instance.instance_id);
    }
  }
}

/**
 * The conductor's failure (checks, scheduling): the instance is back where it was (task None,
 * vm unchanged), the migration `error`, a fault. Nothing moved, so there is nothing to roll back.
 */
async function failPreCheck(rt: CommandRuntime, error: unknown, m: Migration | null) {
  await errorOutMigration(rt, m);
  const current = await rt.deps.store.getInstance(rt.command.instance_id);
  await stepWrite(rt, TaskState.MIGRATING, {
    changes: () => ({ task_state: null, task_owner: null, progress: 0 }),
    ...(current ? { fault: rt.fault(current, error) } : {}),
    event: actionEvent(rt, CHECK_EVENT, 'Error'),
    finish: rt.outcome('failed', error),
    progress: NOTHING_PENDING,
    wait: null,
  });
}

/**
 * Nova's _rollback_live_migration: the destination forgets the guest, the source keeps it; task
 * None, vm unchanged, migration `failed`, a fault. The driver's rollback calls are best effort:
 * the instance must not stay MIGRATING because a cleanup failed.
 */
async function rollback(rt: CommandRuntime, error: unknown, m: Migration): Promise<void> {
  const ctx = driverContext(rt);
  const current = await rt.deps.store.getInstance(rt.command.instance_id);
  if (current && m.migrate_data) {
    const cleanup = (step: string) => (e: unknown) =>
      rt.deps.logger.warn('live migration rollback step did not finish', {
        step,
        error_name: (e as Error).name,
      });
    await rt.deps.driver
      .rollbackLiveMigrationAtDestination(ctx, current, m.migrate_data, { destroyDisks: true })
      .catch(cleanup('rollback_live_migration_at_destination'));
    await rt.deps.driver
      .rollbackLiveMigrationAtSource(ctx, current, m.migrate_data)
      .catch(cleanup('rollback_live_migration_at_source'));
  }
  await dropMoveClaim(rt, m, 'dest');
  if (m.status !== S.FAILED && m.status !== S.ERROR) {
    await migrations(rt)
      .changeStatus({ migration: m, expect: [m.status], status: S.FAILED, now: rt.now() })
      .catch(() => undefined);
  }
  await stepWrite(rt, TaskState.MIGRATING, {
    changes: () => ({ task_state: null, task_owner: null, progress: 0 }),
    before: (old) => [rt.notify(old, 'live_migration._rollback.start')],
    after: (next): Notification[] => [
      rt.notify(next, 'live_migration.rollback.dest.start'),
      rt.notify(next, 'live_migration.rollback.dest.end'),
      rt.notify(next, 'live_migration._rollback.end'),
    ],
    ...(current ? { fault: rt.fault(current, error) } : {}),
    event: actionEvent(rt, ROLLBACK_EVENT, 'Error'),
    finish: rt.outcome('failed', error),
    progress: NOTHING_PENDING,
    wait: null,
  });
}

/**
 * After the guest moved (post-migration failed): the instance is on the destination but in
 * ERROR, as Nova's post_live_migration_at_destination leaves it; migration `error`.
 */
async function failPost(rt: CommandRuntime, error: unknown, m: Migration): Promise<void> {
  await errorOutMigration(rt, m);
  const current = await rt.deps.store.getInstance(rt.command.instance_id);
  await stepWrite(rt, TaskState.MIGRATING, {
    changes: () => ({
      vm_state: VmState.ERROR,
      task_state: null,
      task_owner: null,
      host: m.dest_host,
      node: m.dest_node,
    }),
    ...(current ? { fault: rt.fault(current, error) } : {}),
    event: actionEvent(rt, POST_DEST_EVENT, 'Error'),
    finish: rt.outcome('failed', error),
    progress: NOTHING_PENDING,
    wait: null,
  });
}

async function fail(rt: CommandRuntime, error: unknown): Promise<void> {
  const m = await currentMigration(rt);
  const current = await rt.deps.store.getInstance(rt.command.instance_id);
  if (
    !current ||
    current.task_owner !== rt.command.command_id ||
    current.task_state !== TaskState.MIGRATING
  ) {
    return preempted(
      rt,
      new UnexpectedTaskStateError(
        rt.command.instance_id,
        [TaskState.MIGRATING],
        current?.task_state ?? null,
      ),
      m,
    );
  }
  const cause = error instanceof PreCheckFailure ? error.cause : error;
  if (!m || error instanceof PreCheckFailure || m.status === S.ACCEPTED) {
    return failPreCheck(rt, cause, m);
  }
  if (m.status === S.COMPLETED) return failPost(rt, cause, m);
  // A post-migration step that failed after live_migration itself finished: the guest moved.
  const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
  if (action?.progress[POST_START_SENT]) return failPost(rt, cause, m);
  return rollback(rt, cause, m);
}

/** Whether the driver shows the guest on the destination and no longer on the source. */
async function movedToDestination(rt: CommandRuntime, m: Migration): Promise<boolean> {
  const instance = await rt.deps.store.getInstance(rt.command.instance_id);
  if (!instance) return false;
  const ctx = driverContext(rt);
  const at = (node: string, host: string): Instance => ({ ...instance, node, host });
  const [onDest, onSource] = await Promise.all([
    rt.deps.driver.instanceExists(ctx, at(m.dest_node, m.dest_host)),
    rt.deps.driver.instanceExists(ctx, at(m.source_node, m.source_host)),
  ]);
  return onDest && !onSource;
}

async function guarded(rt: CommandRuntime, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (e) {
    if (isConflict(e)) return preempted(rt, e as StratusError, await currentMigration(rt));
    if (isRetryable(e)) throw e;
    await fail(rt, e);
  }
}

export const liveMigrateInstance: MoveHandler = {
  operation: 'live_migrate_instance',

  async prepare(rt, admin) {
    const args = rt.command.args as ArgsOf<'live_migrate_instance'>;
    if (args.node !== undefined && !admin) {
      throw new StratusError(ErrorCode.Forbidden, 'Only an admin may choose the node');
    }
    const instance = await checkMovable(rt, admin, LIVE_MIGRATABLE);
    if (args.node !== undefined) await checkRequestedNode(rt, instance, args.node, false);
  },

  async start(rt) {
    await rt.deps.store.updateInstance({
      instanceId: rt.command.instance_id,
      action: rt.actionRef,
      startAction: newAction(rt.command, rt.subject, rt.now()),
      expect: { taskState: [null], vmState: LIVE_MIGRATABLE },
      changes: { task_state: TaskState.MIGRATING, task_owner: rt.command.command_id },
      notifications: (old, next) => rt.updates(old, next),
      now: rt.now(),
    });
  },

  async perform(rt) {
    const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
    if (action?.status !== 'running') return;
    await guarded(rt, () => walk(rt));
  },

  /**
   * The sweeper found no `migration_completed` in time. The hypervisor is authoritative: a guest
   * that runs on the destination and is gone from the source did move, so post-migration runs;
   * otherwise the migration is rolled back.
   */
  async abandon(rt, error) {
    await guarded(rt, async () => {
      const m = await currentMigration(rt);
      if (m?.status === S.RUNNING && (await movedToDestination(rt, m))) return post(rt, m);
      throw error;
    });
  },

  /** A pending live_migration reported `migration_completed`: post-migration runs now. */
  async complete(rt) {
    await guarded(rt, async () => {
      const m = await currentMigration(rt);
      if (!m) throw missingMigration(rt.command.instance_id);
      await post(rt, m);
    });
  },
};
