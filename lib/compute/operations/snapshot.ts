// snapshot_instance and backup_instance (nova-compute.md §1.2), and the small pieces every
// multi-step image operation shares (shelve.ts and rebuild.ts import them).
//
//   API      no lock check (on purpose: a lock guards against change, a snapshot changes
//            nothing); [ACTIVE, STOPPED, PAUSED, SUSPENDED]; the image is created `queued`
//            FIRST, then the task is taken: IMAGE_SNAPSHOT_PENDING (snapshot) or IMAGE_BACKUP
//   compute  snapshot: IMAGE_SNAPSHOT (expect IMAGE_SNAPSHOT_PENDING), power state refreshed;
//            snapshot.start; driver.snapshot walks IMAGE_PENDING_UPLOAD → IMAGE_UPLOADING
//            through its update_task_state callback, each write expecting the one before;
//            image active; backup: rotation (oldest beyond `rotation` deleted); task None
//            (expect IMAGE_UPLOADING); snapshot.end
//   failure  delete_image_on_error, task reverted, fault. An instance deleted meanwhile ends the
//            command quietly and deletes the image unless it is already active.
//
// A redelivered command resumes from the instance's task_state: the callback treats a step it
// finds already taken by this command as done, so a driver asked again walks through.

import type { ArgsOf } from '../../commands/schemas.ts';
import { ErrorCode, StratusError, UnexpectedTaskStateError } from '../../errors.ts';
import { imageStoreOf } from '../../images/deps.ts';
import { ImageStatus, ImageType } from '../../images/image-store.ts';
import {
  backupsBeyondRotation,
  imageIdForCommand,
  instanceImage,
  isVolumeBacked,
} from '../../images/instance-images.ts';
import type { Notification } from '../../notifications/notification.ts';
import type { InstanceWrite, WriteResult } from '../../store/state-store.ts';
import type { Operation } from '../../topology.ts';
import { NotSupportedError } from '../../virt/errors.ts';
import type { OperationHandler } from '../executor.ts';
import type { Instance, InstanceChanges } from '../instance.ts';
import { type CommandRuntime, newAction } from '../runtime.ts';
import { TaskState, VmState } from '../states.ts';
import {
  actionEvent,
  currentPowerState,
  driverContext,
  expectLifecycle,
  ignoreFinished,
  isRetryable,
  NOTHING_PENDING,
  waitForDriver,
} from './common.ts';
import { loadOwnedInstance } from './instance-access.ts';

// ── Shared pieces of the image operations ──────────────────────────────────────────────────

/** Nova's API checks: lock (unless ignored), host, launched, vm_state, task_state None. */
export function checkApiPreconditions(
  rt: CommandRuntime,
  instance: Instance,
  rules: {
    vmStates: readonly VmState[];
    checksLock: boolean;
    admin: boolean;
    requiresHost?: boolean;
  },
): void {
  if (rules.checksLock && instance.locked && !rules.admin) {
    throw new StratusError(
      ErrorCode.InstanceIsLocked,
      `Instance ${instance.instance_id} is locked`,
    );
  }
  if ((rules.requiresHost ?? true) && !instance.host) {
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
  if (!rules.vmStates.includes(instance.vm_state) || instance.task_state !== null) {
    throw new StratusError(
      ErrorCode.InstanceInvalidState,
      `Cannot '${rt.command.operation}' instance ${instance.instance_id} while it is in vm_state ` +
        `${instance.vm_state}, task_state ${instance.task_state ?? 'None'}`,
    );
  }
}

type OwnedWrite = Omit<InstanceWrite, 'instanceId' | 'action' | 'expect' | 'changes' | 'now'> & {
  /** The task_states this write accepts (Nova's expected_task_state). */
  expect: readonly (TaskState | null)[];
  vmState?: readonly VmState[];
  changes: (current: Instance) => InstanceChanges;
};

/** A write of this command's task: the task must be one it expects AND this command's own. */
export function ownedWrite(rt: CommandRuntime, write: OwnedWrite): Promise<WriteResult> {
  const { expect, vmState, changes, ...rest } = write;
  return rt.deps.store.updateInstance({
    ...rest,
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    expect: { taskState: expect, ...(vmState ? { vmState } : {}) },
    changes: (current) => {
      if (current.task_owner !== rt.command.command_id) {
        throw new UnexpectedTaskStateError(current.instance_id, expect, current.task_state);
      }
      return changes(current);
    },
    now: rt.now(),
  });
}

/**
 * One step of a task walk: `from` → `to`, expecting `from`. A step this command already took
 * (the task is at `to` or past it in `sequence`) is a replay and writes nothing.
 */
export async function advanceTask(
  rt: CommandRuntime,
  sequence: readonly TaskState[],
  from: TaskState | null,
  to: TaskState,
  extra: {
    changes?: (current: Instance) => InstanceChanges;
    before?: (old: Instance) => Notification[];
  } = {},
): Promise<Instance> {
  const taken = sequence.slice(Math.max(0, sequence.indexOf(to)));
  const res = await ownedWrite(rt, {
    expect: [from, ...taken.filter((t) => t !== from)],
    changes: (current) =>
      current.task_state !== null && taken.includes(current.task_state)
        ? {}
        : { ...extra.changes?.(current), task_state: to },
    notifications: (old, next) => [...(extra.before?.(old) ?? []), ...rt.updates(old, next)],
  });
  return res.new;
}

/** The instance when this command still owns its task; null when it was deleted or pre-empted. */
export async function ownedInstance(rt: CommandRuntime): Promise<Instance | null> {
  const current = await rt.deps.store.getInstance(rt.command.instance_id);
  if (!current || current.deleted || current.task_owner !== rt.command.command_id) return null;
  return current;
}

/** The running action's progress (empty when it is gone or finished). */
export async function progressOf(rt: CommandRuntime): Promise<Record<string, unknown>> {
  const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
  return action?.status === 'running' ? action.progress : {};
}

/**
 * Another command took the task (a delete), or a twin of this one finished it: this run is over.
 * Nova aborts quietly (no fault); the action ends `failed` unless it already ended.
 */
export async function endPreempted(rt: CommandRuntime, error: unknown): Promise<void> {
  await rt.deps.store
    .recordOnAction(rt.subject, rt.command.command_id, { finish: rt.outcome('failed', error) })
    .catch(ignoreFinished);
}

/** True when the instance is being or has been deleted (a guest left behind must go). */
export function isBeingDeleted(instance: Instance | null): boolean {
  return (
    instance !== null &&
    (instance.task_state === TaskState.DELETING ||
      instance.deleted ||
      instance.vm_state === VmState.DELETED)
  );
}

/**
 * Runs a step of a command and applies Nova's failure rules: infrastructure faults propagate
 * (SQS retries), a command that lost its task ends quietly, anything else is the operation's
 * failure while it still owns the task.
 */
export async function guarded(
  rt: CommandRuntime,
  body: () => Promise<void>,
  handlers: {
    failed: (current: Instance, error: unknown) => Promise<void>;
    preempted?: (current: Instance | null, error: unknown) => Promise<void>;
  },
): Promise<void> {
  try {
    await body();
  } catch (e) {
    if (isRetryable(e)) throw e;
    const current = await ownedInstance(rt);
    if (!current) {
      await handlers.preempted?.(await rt.deps.store.getInstance(rt.command.instance_id), e);
      return endPreempted(rt, e);
    }
    try {
      await handlers.failed(current, e);
    } catch (inner) {
      if (isRetryable(inner)) throw inner;
      if (await ownedInstance(rt)) throw inner;
      return endPreempted(rt, e); // pre-empted while recording the failure
    }
  }
}

/**
 * The sweeper gave up on a lifecycle event that never came: the operation's own failure rule
 * applies, exactly as if its driver call had failed with `error`.
 */
export function abandonWith(
  rt: CommandRuntime,
  error: StratusError,
  handlers: Parameters<typeof guarded>[2],
): Promise<void> {
  return guarded(
    rt,
    async () => {
      throw error;
    },
    handlers,
  );
}

/** Records that the task now waits on the driver; the lifecycle event (or sweeper) goes on. */
export async function awaitDriver(rt: CommandRuntime, deadlineSeconds: number): Promise<void> {
  await waitForDriver(rt, deadlineSeconds).catch(ignoreFinished);
}

// ── snapshot_instance / backup_instance ────────────────────────────────────────────────────

export const SNAPSHOT_VM_STATES: readonly VmState[] = [
  VmState.ACTIVE,
  VmState.STOPPED,
  VmState.PAUSED,
  VmState.SUSPENDED,
];

interface SnapshotKind {
  operation: Extract<Operation, 'snapshot_instance' | 'backup_instance'>;
  /** The task the API sets. */
  apiTask: TaskState;
  /** The task compute runs the snapshot under (the callback's first expectation). */
  computeTask: TaskState;
  imageType: ImageType;
  actionEvent: string;
}

const SNAPSHOT: SnapshotKind = {
  operation: 'snapshot_instance',
  apiTask: TaskState.IMAGE_SNAPSHOT_PENDING,
  computeTask: TaskState.IMAGE_SNAPSHOT,
  imageType: ImageType.SNAPSHOT,
  actionEvent: 'compute_snapshot_instance',
};

const BACKUP: SnapshotKind = {
  operation: 'backup_instance',
  apiTask: TaskState.IMAGE_BACKUP,
  computeTask: TaskState.IMAGE_BACKUP,
  imageType: ImageType.BACKUP,
  actionEvent: 'compute_backup_instance',
};

function taskSequence(kind: SnapshotKind): TaskState[] {
  return [
    ...new Set([
      kind.apiTask,
      kind.computeTask,
      TaskState.IMAGE_PENDING_UPLOAD,
      TaskState.IMAGE_UPLOADING,
    ]),
  ];
}

/** Backup settings kept on the action: a lifecycle completion has no command args. */
const PROGRESS_BACKUP_TYPE = 'backup_type';
const PROGRESS_ROTATION = 'rotation';
const PROGRESS_STARTED = 'snapshot_started';

/** Nova's backup rotation: delete this instance's backups of the type beyond `rotation`. */
async function rotateBackups(
  rt: CommandRuntime,
  instance: Instance,
  backupType: string,
  rotation: number,
): Promise<string[]> {
  const images = imageStoreOf(rt.deps);
  const backups = await images.list({
    instance_uuid: instance.instance_id,
    image_type: ImageType.BACKUP,
    backup_type: backupType,
  });
  const rotated: string[] = [];
  for (const old of backupsBeyondRotation(backups, rotation)) {
    // Nova logs a failed delete and goes on with the rest.
    try {
      if (await images.delete(old.id, rt.now())) rotated.push(old.id);
    } catch (e) {
      if (isRetryable(e)) throw e;
      rt.deps.logger.warn('backup rotation could not delete an image', {
        image_id: old.id,
        error_name: (e as Error).name,
      });
    }
  }
  return rotated;
}

/** The final write (and the completion path of a pending upload). */
async function finishSnapshot(rt: CommandRuntime, kind: SnapshotKind): Promise<void> {
  const imageId = imageIdForCommand(rt.command.command_id);
  const images = imageStoreOf(rt.deps);
  const image = await images.get(imageId);
  if (image?.status !== ImageStatus.ACTIVE) await images.setStatus(imageId, 'active', rt.now());
  const instance = await ownedInstance(rt);
  const progress = await progressOf(rt);
  let rotated: string[] = [];
  if (kind === BACKUP && instance) {
    rotated = await rotateBackups(
      rt,
      instance,
      String(progress[PROGRESS_BACKUP_TYPE]),
      Number(progress[PROGRESS_ROTATION]),
    );
  }
  await ownedWrite(rt, {
    expect: [TaskState.IMAGE_UPLOADING],
    changes: () => ({ task_state: null, task_owner: null }),
    notifications: (old, next) => [...rt.updates(old, next), rt.notify(next, 'snapshot.end')],
    event: actionEvent(rt, kind.actionEvent, 'Success'),
    finish: rt.outcome(
      'succeeded',
      undefined,
      kind === BACKUP ? { image_id: imageId, rotated_image_ids: rotated } : { image_id: imageId },
    ),
    progress: NOTHING_PENDING,
  });
}

async function failSnapshot(
  rt: CommandRuntime,
  kind: SnapshotKind,
  current: Instance,
  error: unknown,
): Promise<void> {
  // delete_image_on_error
  await imageStoreOf(rt.deps)
    .delete(imageIdForCommand(rt.command.command_id), rt.now())
    .catch((e: unknown) => {
      if (isRetryable(e)) throw e;
      rt.deps.logger.warn('could not delete the image of a failed snapshot', {
        error_name: (e as Error).name,
      });
    });
  await ownedWrite(rt, {
    expect: taskSequence(kind),
    changes: () => ({ task_state: null, task_owner: null }),
    notifications: (old, next) => rt.updates(old, next),
    fault: rt.fault(current, error),
    event: actionEvent(rt, kind.actionEvent, 'Error'),
    finish: rt.outcome('failed', error),
    progress: NOTHING_PENDING,
  });
}

/** The instance went away mid-snapshot: a non-active image goes with it. */
async function snapshotPreempted(rt: CommandRuntime): Promise<void> {
  const images = imageStoreOf(rt.deps);
  const imageId = imageIdForCommand(rt.command.command_id);
  const image = await images.get(imageId);
  if (image && image.status !== ImageStatus.ACTIVE) await images.delete(imageId, rt.now());
}

async function runSnapshot(rt: CommandRuntime, kind: SnapshotKind): Promise<void> {
  const sequence = taskSequence(kind);
  const imageId = imageIdForCommand(rt.command.command_id);
  let instance = await ownedInstance(rt);
  if (!instance) throw new UnexpectedTaskStateError(rt.command.instance_id, sequence, null);
  const progress = await progressOf(rt);
  if (!progress[PROGRESS_STARTED]) {
    // Compute takes over (snapshot: IMAGE_SNAPSHOT, expect IMAGE_SNAPSHOT_PENDING) and saves
    // the power state it reads from the driver.
    const power = await currentPowerState(rt, instance);
    instance = (
      await ownedWrite(rt, {
        expect: [kind.apiTask, kind.computeTask],
        changes: () => ({ task_state: kind.computeTask, power_state: power }),
        notifications: (old, next) => rt.updates(old, next),
      })
    ).new;
    await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
      notifications: [rt.notify(instance, 'snapshot.start')],
      progress: { [PROGRESS_STARTED]: true },
    });
  }
  const result = await rt.deps.driver.snapshot(
    driverContext(rt),
    instance,
    imageId,
    async (task, expected) => {
      await advanceTask(rt, sequence, expected ?? kind.computeTask, task);
    },
  );
  if (result.status === 'pending') {
    // The upload finishes later. A transition is recorded after the call (the driver names it
    // only now); without one, the sweeper's deadline finishes or fails the task.
    if (result.expect) await expectLifecycle(rt, result.expect, result.deadlineSeconds);
    else await awaitDriver(rt, result.deadlineSeconds);
    return;
  }
  await finishSnapshot(rt, kind);
}

function snapshotOperation(kind: SnapshotKind): OperationHandler<Instance> & {
  complete(rt: CommandRuntime): Promise<void>;
  abandon(rt: CommandRuntime, error: StratusError): Promise<void>;
} {
  const rules = (rt: CommandRuntime) => ({
    failed: (current: Instance, e: unknown) => failSnapshot(rt, kind, current, e),
    preempted: () => snapshotPreempted(rt),
  });
  const guard = (rt: CommandRuntime, body: () => Promise<void>) => guarded(rt, body, rules(rt));
  return {
    operation: kind.operation,

    async prepare(rt, admin) {
      const instance = await loadOwnedInstance(rt, admin);
      checkApiPreconditions(rt, instance, {
        vmStates: SNAPSHOT_VM_STATES,
        checksLock: false,
        admin,
      });
      if (isVolumeBacked(instance)) {
        // Nova's API refuses a backup (InvalidRequest) and snapshots a volume-backed server
        // through Cinder (snapshot_volume_backed); Stratus has no volume service to snapshot
        // with, so it says so (501) before anything changes.
        if (kind === BACKUP) {
          throw new StratusError(
            ErrorCode.InvalidCommand,
            "It's not supported to backup volume backed instance.",
          );
        }
        throw new NotSupportedError(
          rt.deps.driver.name,
          'snapshot_volume_backed',
          'volume-backed instances cannot be snapshotted',
        );
      }
      return instance;
    },

    /** Nova's API: the image first, then the task; a lost task write deletes the image again. */
    async start(rt, instance) {
      const images = imageStoreOf(rt.deps);
      const now = rt.now();
      const backupArgs =
        kind === BACKUP ? (rt.command.args as ArgsOf<'backup_instance'>) : undefined;
      const snapshotArgs =
        kind === SNAPSHOT ? (rt.command.args as ArgsOf<'snapshot_instance'>) : undefined;
      const name = (backupArgs ?? snapshotArgs)!.image_name;
      const image = instanceImage(instance, {
        id: imageIdForCommand(rt.command.command_id),
        name,
        imageType: kind.imageType,
        userId: rt.command.context.user_id,
        extraProperties: backupArgs
          ? { backup_type: backupArgs.backup_type }
          : (snapshotArgs?.metadata ?? {}),
        now,
      });
      await images.create(image);
      try {
        await rt.deps.store.updateInstance({
          instanceId: rt.command.instance_id,
          action: rt.actionRef,
          startAction: {
            ...newAction(rt.command, rt.subject, now),
            progress: backupArgs
              ? {
                  [PROGRESS_BACKUP_TYPE]: backupArgs.backup_type,
                  [PROGRESS_ROTATION]: backupArgs.rotation,
                }
              : {},
          },
          expect: { taskState: [null], vmState: SNAPSHOT_VM_STATES },
          changes: { task_state: kind.apiTask, task_owner: rt.command.command_id },
          notifications: (old, next) => rt.updates(old, next),
          now,
        });
      } catch (e) {
        // The command did not start (lost the race for the task): its image must not linger.
        // If its action exists after all (a twin delivery started it), the image is that one's.
        if (!(await rt.deps.store.getAction(rt.subject, rt.command.command_id))) {
          await images.delete(image.id, now);
        }
        throw e;
      }
    },

    async perform(rt) {
      const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
      if (action?.status !== 'running') return;
      await guard(rt, () => runSnapshot(rt, kind));
    },

    async complete(rt) {
      await guard(rt, () => finishSnapshot(rt, kind));
    },

    abandon: (rt, error) => abandonWith(rt, error, rules(rt)),
  };
}

export const snapshotInstance = snapshotOperation(SNAPSHOT);
export const backupInstance = snapshotOperation(BACKUP);
