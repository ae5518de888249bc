// resize_instance, migrate_instance, confirm_resize and revert_resize (nova-compute.md §1.3).
// A cold migration is a resize to the same flavor on another node; Nova runs both through one
// code path and announces both with the resize notifications, and so does Stratus.
//
//   API       lock, host, [ACTIVE, STOPPED], no task → RESIZE_PREP (progress 0)
//   prep      choose the destination (NoValidHost: task reverted, vm kept), the move claim,
//             Migration `pre-migrating`; exists (current period), resize.prep.start/.end
//   source    migration `migrating`, RESIZE_MIGRATING, resize.start, migrate_disk_and_power_off,
//             migration `post-migrating`, node = destination, RESIZE_MIGRATED, resize.end
//   dest      flavor switched, RESIZE_FINISH, finish_resize.start, finish_migration,
//             migration `finished`, RESIZED / None, launched_at = now, finish_resize.end
//   confirm   RESIZED → (RESIZE_CONFIRMING) → ACTIVE or STOPPED; confirm_migration removes the
//             source guest; migration `confirming` → `confirmed`
//   revert    RESIZED → RESIZE_REVERTING; exists; destroy on the destination; migration
//             `reverted`; finish_revert_migration on the source; flavor and node restored
//
// One command walks all of its steps, each a write conditional on the previous task_state. A
// redelivered command resumes from its instance's task_state and its migration's status (it
// owns both: the migration id is derived from the command id). A step whose driver call is
// pending waits for its lifecycle event, whose completion continues the walk from there.

import type { ArgsOf } from '../../commands/schemas.ts';
import { ErrorCode, StratusError, UnexpectedTaskStateError } from '../../errors.ts';
import { STRATUS_NAMESPACE, uuidv5 } from '../../notifications/message-id.ts';
import type { Notification } from '../../notifications/notification.ts';
import {
  type Migration,
  MigrationStatus,
  MigrationStatusConflictError,
  type MigrationFields,
  type MigrationStore,
  type MigrationType,
  isFinalStatus,
  migrationStoreOf,
} from '../../store/migration-store.ts';
import type { InstanceWrite } from '../../store/state-store.ts';
import type { ComputeDriver, MigrationInfo } from '../../virt/driver.ts';
import { NotSupportedError } from '../../virt/errors.ts';
import type { LifecycleEvent } from '../../virt/events.ts';
import type { OperationHandler } from '../executor.ts';
import type { Instance, InstanceChanges, InstanceFlavor } from '../instance.ts';
import { NoValidHostError, selectNode } from '../node-selection.ts';
import { type CommandRuntime, newAction } from '../runtime.ts';
import {
  LifecycleTransition,
  POWER_STATE_FOR_TRANSITION,
  PowerState,
  TaskState,
  VmState,
} from '../states.ts';
import {
  actionEvent,
  driverContext,
  expectLifecycle,
  ignoreFinished,
  isRetryable,
  NOTHING_PENDING,
  waitForDriver,
} from './common.ts';
import { loadOwnedInstance } from './instance-access.ts';
import { CLEAN_SHUTDOWN, taskOperation } from './task-operation.ts';
import { confirmMove, moveClaim as takeMoveClaim, revertMove } from '../../resources/claims.ts';
import { isComputeResourcesUnavailable } from '../../resources/errors.ts';

const S = MigrationStatus;

/** The vm_state a resize started from (Nova's system_metadata['old_vm_state']). */
const OLD_VM_STATE = 'old_vm_state';

/** Action progress keys: notifications that went out once, committed with their marker. */
const PREP_DONE = 'resize_prep_done';
const REVERT_EXISTS_SENT = 'revert_exists_sent';
const REVERT_START_SENT = 'revert_start_sent';

// ── Shared by every move (resize, cold and live migration) ─────────────────────────────────

/** The migration a command creates: its id is derived from the command id, so a retry finds it. */
export function migrationIdFor(commandId: string): string {
  return uuidv5(`migration:${commandId}`, STRATUS_NAMESPACE);
}

export function migrations(rt: CommandRuntime): MigrationStore {
  return migrationStoreOf(rt.deps);
}

/** What a driver needs of a Migration. */
export function migrationInfo(m: Migration): MigrationInfo {
  return {
    migration_id: m.id,
    migration_type: m.migration_type,
    source_compute: m.source_host,
    dest_compute: m.dest_host,
    source_node: m.source_node,
    dest_node: m.dest_node,
  };
}

/**
 * The resource tracker's move claim on the destination (Nova's rt.resize_claim and
 * live_migration_claim; its consumer is the migration). Resource claims belong to the
 * resource-tracker issue: this hook is where it takes the claim, and a no-op until then.
 */
export async function moveClaim(
  rt: CommandRuntime,
  instance: Instance,
  migration: Migration,
): Promise<void> {
  try {
    await takeMoveClaim(rt.deps, instance, migration);
  } catch (e) {
    // The destination filled up since it was chosen: Nova's claim failure is a NoValidHost.
    if (isComputeResourcesUnavailable(e))
      throw new NoValidHostError('There are not enough hosts available.');
    throw e;
  }
}

/**
 * Drops a move claim: at the source when a move is confirmed or completes (the old usage goes),
 * at the destination when it is reverted or fails (the claim is aborted). No-op until the
 * resource tracker lands, like moveClaim.
 */
export async function dropMoveClaim(
  rt: CommandRuntime,
  migration: Migration,
  side: 'source' | 'dest',
): Promise<void> {
  if (side === 'source') await confirmMove(rt.deps, migration);
  else await revertMove(rt.deps, migration);
}

/**
 * Chooses a destination with the interim scheduler (lib/compute/node-selection.ts) for the
 * instance at `flavor`: another node unless the driver can migrate to the same host, in the
 * instance's availability zone (a move never changes the zone, so a revert has nothing to
 * restore), optionally the node an admin named.
 */
export async function selectDestination(
  rt: CommandRuntime,
  instance: Instance,
  flavor: InstanceFlavor,
  options: { requestedNode?: string; allowSameNode: boolean },
): Promise<{ node: string; availability_zone: string }> {
  const driver = rt.deps.driver;
  const candidates: Pick<ComputeDriver, 'getAvailableNodes' | 'getAvailableResource'> = {
    getAvailableNodes: async (ctx, refresh) =>
      (await driver.getAvailableNodes(ctx, refresh)).filter(
        (n) => options.allowSameNode || n !== instance.node,
      ),
    getAvailableResource: (ctx, node) => driver.getAvailableResource(ctx, node),
  };
  const request: Partial<ArgsOf<'build_and_run_instance'>> = {};
  if (options.requestedNode !== undefined) request.node = options.requestedNode;
  if (instance.availability_zone) request.availability_zone = instance.availability_zone;
  return selectNode(
    { driver: candidates as ComputeDriver },
    driverContext(rt),
    request as ArgsOf<'build_and_run_instance'>,
    { ...instance, flavor },
  );
}

/** Nova's API checks of a move: lock, host, launched, vm_state and no task. */
export async function checkMovable(
  rt: CommandRuntime,
  admin: boolean,
  vmStates: readonly VmState[],
): Promise<Instance> {
  const instance = await loadOwnedInstance(rt, admin);
  if (instance.locked && !admin) {
    throw new StratusError(
      ErrorCode.InstanceIsLocked,
      `Instance ${instance.instance_id} is locked`,
    );
  }
  if (!instance.host || !instance.node) {
    throw new StratusError(
      ErrorCode.InstanceInvalidState,
      `Instance ${instance.instance_id} is not ready (no host)`,
    );
  }
  if (!instance.launched_at) {
    throw new StratusError(
      ErrorCode.InstanceInvalidState,
      `Instance ${instance.instance_id} has not been launched`,
    );
  }
  if (!vmStates.includes(instance.vm_state) || instance.task_state !== null) {
    throw new StratusError(
      ErrorCode.InstanceInvalidState,
      `Cannot '${rt.command.operation}' instance ${instance.instance_id} while it is in vm_state ` +
        `${instance.vm_state}, task_state ${instance.task_state ?? 'None'}`,
    );
  }
  return instance;
}

/** A node an admin named must exist; it may be the current one only if the driver allows. */
export async function checkRequestedNode(
  rt: CommandRuntime,
  instance: Instance,
  node: string,
  allowSameNode: boolean,
): Promise<void> {
  if (node === instance.node && !allowSameNode) {
    throw new StratusError(
      ErrorCode.InvalidCommand,
      `Unable to migrate instance ${instance.instance_id} to its current host (${node}).`,
    );
  }
  const nodes = await rt.deps.driver.getAvailableNodes(driverContext(rt));
  if (!nodes.includes(node)) {
    throw new StratusError(ErrorCode.InvalidCommand, `Compute host ${node} could not be found.`);
  }
}

/** The instance must still be in `expected` with this command owning it. */
export function owned(rt: CommandRuntime, current: Instance, expected: TaskState): void {
  if (current.task_state !== expected || current.task_owner !== rt.command.command_id) {
    throw new UnexpectedTaskStateError(current.instance_id, [expected], current.task_state);
  }
}

/** One conditional instance write of this command's task, committed with its action changes. */
export async function stepWrite(
  rt: CommandRuntime,
  from: TaskState,
  write: {
    changes: (current: Instance) => InstanceChanges;
    /** Notifications after the compute.instance.update of the write. */
    after?: (next: Instance) => Notification[];
    /** Notifications before it. */
    before?: (old: Instance) => Notification[];
  } & Pick<InstanceWrite, 'event' | 'finish' | 'fault' | 'progress' | 'wait'>,
): Promise<Instance> {
  const { changes, after, before, ...action } = write;
  const res = await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    expect: { taskState: [from] },
    changes: (current) => {
      owned(rt, current, from);
      return changes(current);
    },
    notifications: (old, next) => [
      ...(before?.(old) ?? []),
      ...rt.updates(old, next),
      ...(after?.(next) ?? []),
    ],
    ...action,
    now: rt.now(),
  });
  return res.new;
}

/** Moves the migration from `from` to `to`; a retry that finds it there already goes on. */
export async function advance(
  rt: CommandRuntime,
  m: Migration,
  from: MigrationStatus,
  to: MigrationStatus,
  set?: MigrationFields,
): Promise<Migration> {
  if (m.status === to) return m;
  return migrations(rt).changeStatus({
    migration: m,
    expect: [from],
    status: to,
    ...(set ? { set } : {}),
    now: rt.now(),
  });
}

/** Marks a migration `error` (Nova's errors_out_migration) unless it already ended. */
export async function errorOutMigration(rt: CommandRuntime, m: Migration | null): Promise<void> {
  if (!m || isFinalStatus(m.status)) return;
  await migrations(rt)
    .changeStatus({ migration: m, expect: [m.status], status: S.ERROR, now: rt.now() })
    .catch((e: unknown) => {
      if (!(e instanceof MigrationStatusConflictError)) throw e;
    });
}

/** A migration ended `error` by an earlier attempt whose failure write did not land. */
export class MoveFailedEarlierError extends StratusError {
  constructor(migrationId: string) {
    super(ErrorCode.InternalError, `Migration ${migrationId} failed during an earlier attempt.`);
  }
}

/** A task of a move whose migration record is gone: nothing can finish it but a failure. */
export function missingMigration(instanceId: string): StratusError {
  return new StratusError(
    ErrorCode.InternalError,
    `Instance ${instanceId} is moving but its migration record could not be found.`,
  );
}

export function isConflict(e: unknown): boolean {
  return e instanceof UnexpectedTaskStateError || e instanceof MigrationStatusConflictError;
}

/**
 * Another writer moved the instance or its migration. While this command still owns the task,
 * the writer was this same command (its lifecycle completion racing the call that started it),
 * which carries on: nothing to do here. Otherwise another command took the task (a delete):
 * this one ends `failed`, and its migration `error`.
 */
export async function preempted(
  rt: CommandRuntime,
  error: StratusError,
  m: Migration | null,
): Promise<void> {
  const current = await rt.deps.store.getInstance(rt.command.instance_id);
  if (current?.task_owner === rt.command.command_id) return;
  try {
    await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
      finish: rt.outcome('failed', error),
    });
  } catch (e) {
    ignoreFinished(e);
    return; // it had ended already
  }
  await errorOutMigration(rt, m);
}

function withoutOldVmState(instance: Instance): Record<string, string> {
  const { [OLD_VM_STATE]: _old, ...rest } = instance.system_metadata;
  return rest;
}

/** The vm_state to return to: the one the resize started from (ACTIVE unless it was STOPPED). */
function preResizeVmState(instance: Instance): VmState {
  return instance.system_metadata[OLD_VM_STATE] === VmState.STOPPED
    ? VmState.STOPPED
    : VmState.ACTIVE;
}

function powersOn(instance: Instance): boolean {
  return instance.system_metadata[OLD_VM_STATE] !== VmState.STOPPED;
}

/** The newest resize or cold migration of an instance in one of `statuses`. */
async function latestColdMigration(
  rt: CommandRuntime,
  instanceId: string,
  statuses: readonly MigrationStatus[],
): Promise<Migration | null> {
  const newest = (await migrations(rt).list(instanceId)).find(
    (m) => m.migration_type !== 'live-migration',
  );
  return newest && statuses.includes(newest.status) ? newest : null;
}

function notResized(instanceId: string): StratusError {
  return new StratusError(
    ErrorCode.InvalidCommand,
    `Instance ${instanceId} has not been resized (no finished migration).`,
  );
}

// ── resize_instance and migrate_instance ───────────────────────────────────────────────────

const PREP_EVENT = 'compute_prep_resize';
const RESIZE_EVENT = 'compute_resize_instance';
const FINISH_EVENT = 'compute_finish_resize';
/** Scheduling failures are the conductor's (Nova records them under conductor_migrate_server). */
const SCHEDULE_EVENT = 'conductor_migrate_server';

const MOVABLE: readonly VmState[] = [VmState.ACTIVE, VmState.STOPPED];

type ColdMove = Extract<MigrationType, 'resize' | 'migration'>;

interface ColdMoveRequest {
  flavor: InstanceFlavor;
  requestedNode?: string;
}

/**
 * What the command asks for. Read only on the command's own path: a lifecycle completion has no
 * args, and needs none (the migration records the flavors and nodes).
 */
function requestOf(rt: CommandRuntime, kind: ColdMove, instance: Instance): ColdMoveRequest {
  if (kind === 'migration') {
    const args = rt.command.args as ArgsOf<'migrate_instance'>;
    return { flavor: instance.flavor, ...(args.node ? { requestedNode: args.node } : {}) };
  }
  const args = rt.command.args as ArgsOf<'resize_instance'>;
  const flavor = args.flavor === undefined ? undefined : rt.deps.flavors.find(args.flavor);
  if (!flavor) {
    throw new StratusError(ErrorCode.UnknownFlavor, `Flavor ${args.flavor} could not be found.`);
  }
  return { flavor: { ...flavor } };
}

/** Nova's API checks on the new flavor (CannotResizeToSameFlavor, CannotResizeDisk). */
function checkNewFlavor(instance: Instance, flavor: InstanceFlavor): void {
  if (flavor.flavorid === instance.flavor.flavorid) {
    throw new StratusError(
      ErrorCode.InvalidCommand,
      'When resizing, instances must change flavor (CannotResizeToSameFlavor).',
    );
  }
  if (flavor.root_gb === 0 && instance.flavor.root_gb !== 0) {
    throw new StratusError(
      ErrorCode.InvalidCommand,
      'Server disk was unable to be resized because: Resize to zero disk flavor is not allowed.',
    );
  }
}

/** Scheduling and the destination's claim: creates the migration (`pre-migrating`). */
async function scheduleMove(rt: CommandRuntime, kind: ColdMove, instance: Instance): Promise<void> {
  const request = requestOf(rt, kind, instance);
  const allowSameNode = rt.deps.driver.capabilities.supports_migrate_to_same_host;
  const dest = await selectDestination(rt, instance, request.flavor, {
    allowSameNode,
    ...(request.requestedNode ? { requestedNode: request.requestedNode } : {}),
  });
  const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
  const now = rt.now().toISOString();
  const migration: Migration = {
    id: migrationIdFor(rt.command.command_id),
    instance_id: instance.instance_id,
    source_node: instance.node as string,
    dest_node: dest.node,
    source_host: instance.host as string,
    dest_host: rt.deps.config.host,
    old_flavor: { ...instance.flavor },
    new_flavor: request.flavor,
    migration_type: kind,
    status: S.PRE_MIGRATING,
    // The action's start: the same on every attempt, so a retry finds the same record.
    created_at: action?.start_time ?? now,
    updated_at: now,
    disk_info: null,
  };
  const created = await migrations(rt).create(migration);
  await moveClaim(rt, instance, created.created ? created.migration : created.existing);
}

/** resize.prep.* and the source's first step: RESIZE_PREP → RESIZE_MIGRATING. */
async function startMigrating(rt: CommandRuntime, instance: Instance, m: Migration) {
  const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
  if (!action?.progress[PREP_DONE]) {
    await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
      notifications: [
        rt.notifyExists(instance),
        rt.notify(instance, 'resize.prep.start'),
        rt.notify(instance, 'resize.prep.end', {
          extra: { new_instance_type: m.new_flavor.name, new_instance_type_id: m.new_flavor.id },
        }),
      ],
      event: actionEvent(rt, PREP_EVENT, 'Success'),
      progress: { [PREP_DONE]: true },
    });
  }
  await advance(rt, m, S.PRE_MIGRATING, S.MIGRATING);
  await stepWrite(rt, TaskState.RESIZE_PREP, {
    changes: (c) => ({
      task_state: TaskState.RESIZE_MIGRATING,
      system_metadata: { ...c.system_metadata, [OLD_VM_STATE]: c.vm_state },
    }),
    after: (next) => [rt.notify(next, 'resize.start', { includeFixedIps: true })],
  });
}

/** The disk is on its way: the instance now lives on the destination (RESIZE_MIGRATED). */
async function afterMigrateDisk(
  rt: CommandRuntime,
  m: Migration,
  powerState: PowerState,
  diskInfo: string,
): Promise<void> {
  await advance(rt, m, S.MIGRATING, S.POST_MIGRATING, { disk_info: diskInfo });
  await stepWrite(rt, TaskState.RESIZE_MIGRATING, {
    changes: () => ({
      task_state: TaskState.RESIZE_MIGRATED,
      host: m.dest_host,
      node: m.dest_node,
      power_state: powerState,
    }),
    after: (next) => [rt.notify(next, 'resize.end', { includeFixedIps: true })],
    event: actionEvent(rt, RESIZE_EVENT, 'Success'),
    progress: NOTHING_PENDING,
    wait: null,
  });
}

/** The final write: RESIZED / None on the destination, launched_at now. */
async function finishResize(
  rt: CommandRuntime,
  m: Migration,
  powerState: PowerState,
): Promise<void> {
  await advance(rt, m, S.POST_MIGRATING, S.FINISHED);
  await stepWrite(rt, TaskState.RESIZE_FINISH, {
    changes: () => ({
      vm_state: VmState.RESIZED,
      task_state: null,
      task_owner: null,
      power_state: powerState,
      launched_at: rt.now().toISOString(),
    }),
    after: (next) => [rt.notify(next, 'finish_resize.end', { includeFixedIps: true })],
    event: actionEvent(rt, FINISH_EVENT, 'Success'),
    finish: rt.outcome('succeeded'),
    progress: NOTHING_PENDING,
    wait: null,
  });
}

async function currentMigration(rt: CommandRuntime): Promise<Migration | null> {
  return migrations(rt).get(rt.command.instance_id, migrationIdFor(rt.command.command_id));
}

/** Walks the resize from wherever its instance and migration are. */
async function walkResize(rt: CommandRuntime, kind: ColdMove): Promise<void> {
  for (;;) {
    const instance = await rt.deps.store.getInstance(rt.command.instance_id);
    if (!instance || instance.task_owner !== rt.command.command_id) {
      throw new UnexpectedTaskStateError(
        rt.command.instance_id,
        [TaskState.RESIZE_PREP],
        instance?.task_state ?? null,
      );
    }
    const m = await currentMigration(rt);
    if (m?.status === S.ERROR) throw new MoveFailedEarlierError(m.id);
    const need = (x: Migration | null): Migration => {
      if (!x) throw missingMigration(instance.instance_id);
      return x;
    };
    switch (instance.task_state) {
      case TaskState.RESIZE_PREP:
        if (!m) await scheduleMove(rt, kind, instance);
        else await startMigrating(rt, instance, m);
        break;
      case TaskState.RESIZE_MIGRATING: {
        const mig = need(m);
        await expectLifecycle(rt, LifecycleTransition.STOPPED);
        const result = await rt.deps.driver.migrateDiskAndPowerOff(driverContext(rt), instance, {
          destHost: mig.dest_host,
          destNode: mig.dest_node,
          flavor: mig.new_flavor,
          ...CLEAN_SHUTDOWN,
        });
        if (result.status === 'pending') {
          // Keep disk_info for the completion; the event may have completed the step already.
          await migrations(rt)
            .changeStatus({
              migration: mig,
              expect: [S.MIGRATING],
              status: S.MIGRATING,
              set: { disk_info: result.diskInfo },
              now: rt.now(),
            })
            .catch((e: unknown) => {
              if (!(e instanceof MigrationStatusConflictError)) throw e;
            });
          await waitForDriver(rt, result.deadlineSeconds).catch(ignoreFinished);
          return;
        }
        await afterMigrateDisk(rt, mig, result.powerState, result.diskInfo);
        break;
      }
      case TaskState.RESIZE_MIGRATED: {
        const mig = need(m);
        await stepWrite(rt, TaskState.RESIZE_MIGRATED, {
          changes: () => ({ task_state: TaskState.RESIZE_FINISH, flavor: { ...mig.new_flavor } }),
          after: (next) => [rt.notify(next, 'finish_resize.start', { includeFixedIps: true })],
        });
        break;
      }
      case TaskState.RESIZE_FINISH: {
        const mig = need(m);
        const powerOn = powersOn(instance);
        await expectLifecycle(
          rt,
          powerOn ? LifecycleTransition.STARTED : LifecycleTransition.STOPPED,
        );
        const result = await rt.deps.driver.finishMigration(
          driverContext(rt),
          migrationInfo(mig),
          instance,
          {
            diskInfo: mig.disk_info ?? '[]',
            imageMeta: instance.image_meta,
            resizeInstance: mig.migration_type === 'resize',
            blockDeviceMapping: instance.block_device_mapping,
            powerOn,
          },
        );
        if (result.status === 'pending') {
          await waitForDriver(rt, result.deadlineSeconds).catch(ignoreFinished);
          return;
        }
        await finishResize(rt, mig, result.powerState);
        return;
      }
      default:
        throw new UnexpectedTaskStateError(
          instance.instance_id,
          [TaskState.RESIZE_PREP],
          instance.task_state,
        );
    }
  }
}

/** The action event of the phase a task_state belongs to. */
function phaseEvent(task: TaskState | null): string {
  if (task === TaskState.RESIZE_PREP) return PREP_EVENT;
  if (task === TaskState.RESIZE_MIGRATING) return RESIZE_EVENT;
  return FINISH_EVENT;
}

/**
 * Nova's failure rules for a resize or cold migration (§1.3), by the phase that failed:
 * - scheduling (NoValidHost): task reverted, vm kept, fault — the conductor's failure, so no
 *   resize.error;
 * - prep: vm ERROR; migrate_disk_and_power_off: _error_out_instance_on_exception(old vm_state)
 *   (NotSupported → vm kept, anything else → ERROR);
 * - finish: flavor rolled back, vm ERROR.
 * Every one: migration `error`, the destination claim dropped, fault, resize.error, task None.
 */
async function failResize(rt: CommandRuntime, error: unknown): Promise<void> {
  const m = await currentMigration(rt);
  const current = await rt.deps.store.getInstance(rt.command.instance_id);
  if (!current || current.task_owner !== rt.command.command_id || current.task_state === null) {
    return preempted(
      rt,
      new UnexpectedTaskStateError(
        rt.command.instance_id,
        [TaskState.RESIZE_PREP],
        current?.task_state ?? null,
      ),
      m,
    );
  }
  const phase = current.task_state;
  const scheduling = error instanceof NoValidHostError;
  await errorOutMigration(rt, m);
  if (m) await dropMoveClaim(rt, m, 'dest');
  const changes = (): InstanceChanges => {
    const task = { task_state: null, task_owner: null };
    if (scheduling) return task;
    if (phase === TaskState.RESIZE_MIGRATING) {
      return error instanceof NotSupportedError ? task : { ...task, vm_state: VmState.ERROR };
    }
    if (phase === TaskState.RESIZE_MIGRATED || phase === TaskState.RESIZE_FINISH) {
      return { ...task, vm_state: VmState.ERROR, ...(m ? { flavor: { ...m.old_flavor } } : {}) };
    }
    return { ...task, vm_state: VmState.ERROR };
  };
  await stepWrite(rt, phase, {
    changes,
    after: (next) => (scheduling ? [] : [rt.notifyError(next, 'resize', error)]),
    fault: rt.fault(current, error),
    event: actionEvent(rt, scheduling ? SCHEDULE_EVENT : phaseEvent(phase), 'Error'),
    finish: rt.outcome('failed', error),
    progress: NOTHING_PENDING,
    wait: null,
  });
}

/** A move's handler: it completes pending steps from events and fails them for the sweeper. */
export type MoveHandler = OperationHandler<void> & {
  complete(rt: CommandRuntime, event: LifecycleEvent): Promise<void>;
  abandon(rt: CommandRuntime, error: StratusError): Promise<void>;
};

/** Runs a walk, turning its errors into Nova's outcomes. */
async function guarded(
  rt: CommandRuntime,
  walk: () => Promise<void>,
  fail: (error: unknown) => Promise<void>,
  migration: () => Promise<Migration | null>,
): Promise<void> {
  try {
    await walk();
  } catch (e) {
    if (isConflict(e)) {
      const current = await rt.deps.store.getInstance(rt.command.instance_id);
      const conflict = e as StratusError;
      // The migration moved to `error` under a task this command still owns: an earlier
      // attempt's failure that did not finish; finish it now.
      const failedEarlier =
        e instanceof MigrationStatusConflictError &&
        e.actual === S.ERROR &&
        current?.task_owner === rt.command.command_id;
      if (!failedEarlier) return preempted(rt, conflict, await migration());
    }
    if (isRetryable(e)) throw e;
    await fail(e);
  }
}

function coldMove(kind: ColdMove) {
  const operation = kind === 'resize' ? 'resize_instance' : 'migrate_instance';
  const handler: MoveHandler = {
    operation,

    async prepare(rt, admin) {
      if (kind === 'migration') {
        const args = rt.command.args as ArgsOf<'migrate_instance'>;
        if (args.node !== undefined && !admin) {
          throw new StratusError(ErrorCode.Forbidden, 'Only an admin may choose the node');
        }
      }
      const instance = await checkMovable(rt, admin, MOVABLE);
      const request = requestOf(rt, kind, instance);
      if (kind === 'resize') checkNewFlavor(instance, request.flavor);
      if (request.requestedNode !== undefined) {
        const sameHost = rt.deps.driver.capabilities.supports_migrate_to_same_host;
        await checkRequestedNode(rt, instance, request.requestedNode, sameHost);
      }
    },

    /** The API's write: the action starts and the task is taken in one commit. */
    async start(rt) {
      await rt.deps.store.updateInstance({
        instanceId: rt.command.instance_id,
        action: rt.actionRef,
        startAction: newAction(rt.command, rt.subject, rt.now()),
        expect: { taskState: [null], vmState: MOVABLE },
        changes: {
          task_state: TaskState.RESIZE_PREP,
          task_owner: rt.command.command_id,
          progress: 0,
        },
        notifications: (old, next) => rt.updates(old, next),
        now: rt.now(),
      });
    },

    async perform(rt) {
      const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
      if (action?.status !== 'running') return;
      await guarded(
        rt,
        () => walkResize(rt, kind),
        (e) => failResize(rt, e),
        () => currentMigration(rt),
      );
    },

    /** The sweeper gave up on a pending driver step: Nova's failure rule for its phase. */
    async abandon(rt, error) {
      await guarded(
        rt,
        () => Promise.reject(error),
        (e) => failResize(rt, e),
        () => currentMigration(rt),
      );
    },

    /** A pending driver step reported done: record it and walk on. */
    async complete(rt, event) {
      await guarded(
        rt,
        async () => {
          const instance = await rt.deps.store.getInstance(rt.command.instance_id);
          const m = await currentMigration(rt);
          if (!instance) throw new UnexpectedTaskStateError(rt.command.instance_id, [], null);
          if (!m) throw missingMigration(instance.instance_id);
          const power = POWER_STATE_FOR_TRANSITION[event.transition];
          if (instance.task_state === TaskState.RESIZE_MIGRATING) {
            owned(rt, instance, TaskState.RESIZE_MIGRATING);
            await afterMigrateDisk(rt, m, power, m.disk_info ?? '[]');
            await walkResize(rt, m.migration_type as ColdMove);
            return;
          }
          owned(rt, instance, TaskState.RESIZE_FINISH);
          await finishResize(rt, m, power);
        },
        (e) => failResize(rt, e),
        () => currentMigration(rt),
      );
    },
  };
  return handler;
}

export const resizeInstance = coldMove('resize');
export const migrateInstance = coldMove('migration');

// ── confirm_resize ─────────────────────────────────────────────────────────────────────────

/**
 * Nova's confirm takes no task_state (the migration's `confirming` is its lock). Stratus's lock
 * is the task_state, so confirm holds Nova's RESIZE_CONFIRMING while it runs: a confirm and a
 * revert (or two confirms) can never both proceed, and the property "no instance is ever in
 * two tasks" holds for it too.
 */
export const confirmResize = taskOperation({
  operation: 'confirm_resize',
  vmStates: [VmState.RESIZED],
  taskState: TaskState.RESIZE_CONFIRMING,
  notify: 'resize.confirm',
  actionEvent: 'compute_confirm_resize',
  precheck: async (rt, instance) => {
    if (!(await latestColdMigration(rt, instance.instance_id, [S.FINISHED]))) {
      throw notResized(instance.instance_id);
    }
  },
  run: async (rt, instance) => {
    let m = await latestColdMigration(rt, instance.instance_id, [
      S.FINISHED,
      S.CONFIRMING,
      S.CONFIRMED,
    ]);
    if (!m) throw notResized(instance.instance_id);
    try {
      if (m.status === S.FINISHED) m = await advance(rt, m, S.FINISHED, S.CONFIRMING);
      if (m.status === S.CONFIRMING) {
        // The guest on the source goes; the instance stays on the destination.
        await rt.deps.driver.confirmMigration(driverContext(rt), migrationInfo(m), instance);
        await dropMoveClaim(rt, m, 'source');
        await advance(rt, m, S.CONFIRMING, S.CONFIRMED);
      }
    } catch (e) {
      if (!isRetryable(e)) await errorOutMigration(rt, m);
      throw e;
    }
  },
  // Nova: STOPPED if the guest is shut down, else ACTIVE (from the cached power_state).
  final: (i) => ({
    vm_state: i.power_state === PowerState.SHUTDOWN ? VmState.STOPPED : VmState.ACTIVE,
    system_metadata: withoutOldVmState(i),
  }),
  onFailure: 'error',
});

// ── revert_resize ──────────────────────────────────────────────────────────────────────────

const REVERT_EVENT = 'compute_revert_resize';
const FINISH_REVERT_EVENT = 'compute_finish_revert_resize';

async function revertMigration(rt: CommandRuntime): Promise<Migration | null> {
  return latestColdMigration(rt, rt.command.instance_id, [S.FINISHED, S.REVERTING, S.REVERTED]);
}

/** The source's final write: flavor, node and the pre-resize vm_state restored. */
async function finishRevert(
  rt: CommandRuntime,
  m: Migration,
  powerState: PowerState,
): Promise<void> {
  await stepWrite(rt, TaskState.RESIZE_REVERTING, {
    changes: (c) => ({
      vm_state: preResizeVmState(c),
      task_state: null,
      task_owner: null,
      flavor: { ...m.old_flavor },
      host: m.source_host,
      node: m.source_node,
      power_state: powerState,
      launched_at: rt.now().toISOString(),
      system_metadata: withoutOldVmState(c),
    }),
    after: (next) => [rt.notify(next, 'resize.revert.end')],
    event: actionEvent(rt, FINISH_REVERT_EVENT, 'Success'),
    finish: rt.outcome('succeeded'),
    progress: NOTHING_PENDING,
    wait: null,
  });
}

async function walkRevert(rt: CommandRuntime): Promise<void> {
  const instance = await rt.deps.store.getInstance(rt.command.instance_id);
  if (!instance) throw new UnexpectedTaskStateError(rt.command.instance_id, [], null);
  owned(rt, instance, TaskState.RESIZE_REVERTING);
  let m = await revertMigration(rt);
  if (!m) throw missingMigration(instance.instance_id);
  if (m.status === S.FINISHED) m = await advance(rt, m, S.FINISHED, S.REVERTING);
  const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);

  if (m.status === S.REVERTING) {
    // The destination's half (Nova's revert_resize): usage up to now, then the new guest goes.
    if (!action?.progress[REVERT_EXISTS_SENT]) {
      await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
        notifications: [rt.notifyExists(instance)],
        progress: { [REVERT_EXISTS_SENT]: true },
      });
    }
    // A pending destroy needs no wait: nothing here depends on when the guest is gone.
    await rt.deps.driver.destroy(driverContext(rt), {
      ...instance,
      host: m.dest_host,
      node: m.dest_node,
    });
    await dropMoveClaim(rt, m, 'dest');
    m = await advance(rt, m, S.REVERTING, S.REVERTED);
    await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
      event: actionEvent(rt, REVERT_EVENT, 'Success'),
    });
  }

  // The source's half (Nova's finish_revert_resize): resize.revert.start, then the instance is
  // saved back on the source with its old flavor before the driver brings the guest back there
  // (so a sweeper asking the driver about the wait asks the source).
  if (!action?.progress[REVERT_START_SENT]) {
    await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
      notifications: [rt.notify(instance, 'resize.revert.start')],
      progress: { [REVERT_START_SENT]: true },
    });
  }
  const source = m;
  const atSource = await stepWrite(rt, TaskState.RESIZE_REVERTING, {
    changes: () => ({
      flavor: { ...source.old_flavor },
      host: source.source_host,
      node: source.source_node,
    }),
  });
  const powerOn = powersOn(atSource);
  await expectLifecycle(rt, powerOn ? LifecycleTransition.STARTED : LifecycleTransition.STOPPED);
  const result = await rt.deps.driver.finishRevertMigration(
    driverContext(rt),
    atSource,
    migrationInfo(m),
    { powerOn },
  );
  if (result.status === 'pending') {
    await waitForDriver(rt, result.deadlineSeconds).catch(ignoreFinished);
    return;
  }
  await finishRevert(rt, m, result.powerState);
}

/**
 * A failed revert: vm ERROR, task None, migration `error`, fault. Once the destination's guest
 * is gone (migration `reverted`) the instance is back on the source with its old flavor, as
 * Nova saves it before finish_revert_migration.
 */
async function failRevert(rt: CommandRuntime, error: unknown): Promise<void> {
  const m = await revertMigration(rt);
  const current = await rt.deps.store.getInstance(rt.command.instance_id);
  if (!current || current.task_owner !== rt.command.command_id) {
    return preempted(
      rt,
      new UnexpectedTaskStateError(
        rt.command.instance_id,
        [TaskState.RESIZE_REVERTING],
        current?.task_state ?? null,
      ),
      m,
    );
  }
  const destGone = m?.status === S.REVERTED;
  await errorOutMigration(rt, m);
  await stepWrite(rt, TaskState.RESIZE_REVERTING, {
    changes: () => ({
      vm_state: VmState.ERROR,
      task_state: null,
      task_owner: null,
      ...(m && destGone
        ? { flavor: { ...m.old_flavor }, host: m.source_host, node: m.source_node }
        : {}),
    }),
    fault: rt.fault(current, error),
    event: actionEvent(rt, destGone ? FINISH_REVERT_EVENT : REVERT_EVENT, 'Error'),
    finish: rt.outcome('failed', error),
    progress: NOTHING_PENDING,
    wait: null,
  });
}

export const revertResize: MoveHandler = {
  operation: 'revert_resize',

  async prepare(rt, admin) {
    const instance = await checkMovable(rt, admin, [VmState.RESIZED]);
    if (!(await latestColdMigration(rt, instance.instance_id, [S.FINISHED]))) {
      throw notResized(instance.instance_id);
    }
  },

  async start(rt) {
    await rt.deps.store.updateInstance({
      instanceId: rt.command.instance_id,
      action: rt.actionRef,
      startAction: newAction(rt.command, rt.subject, rt.now()),
      expect: { taskState: [null], vmState: [VmState.RESIZED] },
      changes: { task_state: TaskState.RESIZE_REVERTING, task_owner: rt.command.command_id },
      notifications: (old, next) => rt.updates(old, next),
      now: rt.now(),
    });
  },

  async perform(rt) {
    const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
    if (action?.status !== 'running') return;
    await guarded(
      rt,
      () => walkRevert(rt),
      (e) => failRevert(rt, e),
      () => revertMigration(rt),
    );
  },

  async abandon(rt, error) {
    await guarded(
      rt,
      () => Promise.reject(error),
      (e) => failRevert(rt, e),
      () => revertMigration(rt),
    );
  },

  async complete(rt, event) {
    await guarded(
      rt,
      async () => {
        const instance = await rt.deps.store.getInstance(rt.command.instance_id);
        const m = await revertMigration(rt);
        if (!instance) throw new UnexpectedTaskStateError(rt.command.instance_id, [], null);
        if (!m) throw missingMigration(instance.instance_id);
        owned(rt, instance, TaskState.RESIZE_REVERTING);
        await finishRevert(rt, m, POWER_STATE_FOR_TRANSITION[event.transition]);
      },
      (e) => failRevert(rt, e),
      () => revertMigration(rt),
    );
  },
};

// ── for terminate_instance ─────────────────────────────────────────────────────────────────

/**
 * What deleting an instance does to its moves; terminate_instance calls it before destroying the
 * guest on the instance's node. Nova's API confirms the resize of a RESIZED instance first (the
 * source guest goes, the migration is `confirmed`). A move the delete pre-empted may have left a
 * guest on its other node: that one is destroyed, and the migration ends `error`. Every step is
 * idempotent, so a redelivered delete may run it again.
 */
export async function settleMovesForDelete(rt: CommandRuntime, instance: Instance): Promise<void> {
  const ctx = driverContext(rt);
  for (const m of await migrations(rt).list(instance.instance_id)) {
    if (isFinalStatus(m.status)) continue;
    const confirmable =
      m.migration_type !== 'live-migration' &&
      instance.vm_state === VmState.RESIZED &&
      (m.status === S.FINISHED || m.status === S.CONFIRMING);
    if (confirmable) {
      await rt.deps.driver.confirmMigration(ctx, migrationInfo(m), instance);
      await dropMoveClaim(rt, m, 'source');
      const confirming = await advance(rt, m, S.FINISHED, S.CONFIRMING);
      await advance(rt, confirming, S.CONFIRMING, S.CONFIRMED);
      continue;
    }
    const other =
      instance.node === m.dest_node
        ? { node: m.source_node, host: m.source_host }
        : { node: m.dest_node, host: m.dest_host };
    if (other.node !== instance.node) await rt.deps.driver.destroy(ctx, { ...instance, ...other });
    await dropMoveClaim(rt, m, 'dest');
    await errorOutMigration(rt, m);
  }
}
