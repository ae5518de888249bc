// build_and_run_instance (nova-compute.md §1.1): the API creates the instance BUILDING /
// SCHEDULING, the scheduler picks a node, then compute walks
//   None → NETWORKING → BLOCK_DEVICE_MAPPING → SPAWNING → ACTIVE / None / RUNNING
// each step a conditional write expecting the previous task_state. A redelivered command
// resumes at the step its instance records; spawn itself is idempotent (the driver's
// ClientToken is the command id), so a crash between spawn and the final write spawns once.

import type { ArgsOf, Command } from '../../commands/schemas.ts';
import { ErrorCode, StratusError, UnexpectedTaskStateError, isStratusError } from '../../errors.ts';
import type { DriverResult } from '../../virt/driver.ts';
import type { OperationHandler } from '../executor.ts';
import type { Instance } from '../instance.ts';
import { dropInstanceClaims } from '../../resources/claims.ts';
import {
  type ComputeResourcesUnavailableError,
  NoValidHostError,
  isComputeResourcesUnavailable,
} from '../../resources/errors.ts';
import { selectAndClaim } from '../../resources/scheduler.ts';
import type { CommandRuntime } from '../runtime.ts';
import { newAction } from '../runtime.ts';
import { POWER_STATE_FOR_TRANSITION, PowerState, TaskState, VmState } from '../states.ts';
import {
  NOTHING_PENDING,
  driverContext,
  expectLifecycle,
  ignoreFinished,
  isRetryable,
  waitForDriver,
} from './common.ts';

type BuildArgs = ArgsOf<'build_and_run_instance'>;
type BuildRuntime = CommandRuntime & { command: Command<'build_and_run_instance'> };

/** The action event Nova records around the compute manager's build method. */
const BUILD_EVENT = 'compute__do_build_and_run_instance';
function initialInstance(rt: BuildRuntime, args: BuildArgs, now: string): Instance {
  const flavor = rt.deps.flavors.find(args.flavor);
  if (!flavor)
    throw new StratusError(ErrorCode.UnknownFlavor, `Flavor ${args.flavor} could not be found.`);
  const cmd = rt.command;
  const displayName = args.display_name ?? `Server ${cmd.instance_id}`;
  return {
    instance_id: cmd.instance_id,
    project_id: cmd.context.project_id,
    user_id: cmd.context.user_id,
    display_name: displayName,
    hostname: args.hostname ?? `server-${cmd.instance_id.slice(0, 8)}`,
    reservation_id: `r-${cmd.instance_id.slice(0, 8)}`,
    flavor: { ...flavor },
    image_ref: args.image_ref,
    image_meta: {},
    system_metadata: {},
    metadata: args.metadata ?? {},
    key_name: args.key_name ?? null,
    security_groups: args.security_groups ?? ['default'],
    ports: [],
    block_device_mapping: (args.block_device_mapping ?? []).map((b) => ({
      volume_id: b.volume_id,
      device_name: b.device_name ?? null,
      boot_index: b.boot_index ?? null,
      delete_on_termination: b.delete_on_termination,
    })),
    root_device_name:
      (args.block_device_mapping ?? []).find((b) => b.boot_index === 0)?.device_name ?? null,
    vm_state: VmState.BUILDING,
    task_state: TaskState.SCHEDULING,
    power_state: PowerState.NOSTATE,
    task_owner: cmd.command_id,
    progress: 0,
    host: null,
    node: null,
    availability_zone: args.availability_zone ?? null,
    locked: false,
    locked_by: null,
    locked_reason: null,
    os_type: null,
    architecture: null,
    kernel_id: '',
    ramdisk_id: '',
    access_ip_v4: null,
    access_ip_v6: null,
    created_at: now,
    updated_at: now,
    launched_at: null,
    terminated_at: null,
    deleted_at: null,
    deleted: false,
    version: 1,
  };
}

/** A write of this command's build step: it must still own the task. */
function owned(rt: CommandRuntime, current: Instance, expected: TaskState | null): void {
  if (current.task_owner !== rt.command.command_id) {
    throw new UnexpectedTaskStateError(current.instance_id, [expected], current.task_state);
  }
}

async function step(
  rt: BuildRuntime,
  from: TaskState | null,
  to: TaskState | null,
  extra: {
    changes?: Partial<Instance>;
    before?: (i: Instance) => ReturnType<CommandRuntime['notify']>[];
  } = {},
): Promise<Instance> {
  const res = await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    expect: { taskState: [from], vmState: [VmState.BUILDING] },
    changes: (current) => {
      owned(rt, current, from);
      return { ...extra.changes, task_state: to };
    },
    notifications: (old, next) => [...(extra.before?.(old) ?? []), ...rt.updates(old, next)],
    now: rt.now(),
  });
  return res.new;
}

/** Nova's [scheduler]max_attempts: a build tries at most this many nodes. */
export const MAX_BUILD_ATTEMPTS = 3;
/** system_metadata key: the nodes this build was rescheduled away from (JSON list). */
const TRIED_NODES = 'build_retry_nodes';

function triedNodes(instance: Instance): string[] {
  const raw = instance.system_metadata[TRIED_NODES];
  return raw ? (JSON.parse(raw) as string[]) : [];
}

/**
 * Nova's reschedule (RescheduledException): the node could not run the guest after all (EC2 had
 * no capacity, or the account's quota said no), so the build sends create.error, goes back to
 * SCHEDULING without a node and picks another, never one it tried. After MAX_BUILD_ATTEMPTS
 * nodes, or when none is left, the scheduler's "No valid host was found" fails the build.
 */
async function reschedule(
  rt: BuildRuntime,
  instance: Instance,
  error: ComputeResourcesUnavailableError,
): Promise<Instance> {
  const tried = [...new Set([...triedNodes(instance), ...(instance.node ? [instance.node] : [])])];
  if (tried.length >= MAX_BUILD_ATTEMPTS) {
    throw new NoValidHostError(
      `Exceeded max scheduling attempts ${MAX_BUILD_ATTEMPTS} for instance ` +
        `${instance.instance_id}. Last exception: ${error.message}`,
    );
  }
  rt.deps.logger.warn('rescheduling build', {
    instance_id: instance.instance_id,
    node: instance.node,
    reason: error.message,
  });
  const next = await step(rt, TaskState.SPAWNING, TaskState.SCHEDULING, {
    changes: {
      host: null,
      node: null,
      availability_zone: null,
      system_metadata: { ...instance.system_metadata, [TRIED_NODES]: JSON.stringify(tried) },
    },
    before: (i) => [rt.notifyError(i, 'create', error)],
  });
  // After the write, so a crash in between leaves the claim for SCHEDULING to free.
  if (instance.node) await dropInstanceClaims(rt.deps, instance.instance_id, [instance.node]);
  return next;
}

/**
 * A pending spawn's network info. Ports are driver facts, not task state: they are kept even
 * when the lifecycle event already finished the build, and never overwrite known ports.
 */
async function afterPendingSpawn(rt: CommandRuntime, ports: Instance['ports']): Promise<void> {
  const [instance, action] = await Promise.all([
    rt.deps.store.getInstance(rt.command.instance_id),
    rt.deps.store.getAction(rt.subject, rt.command.command_id),
  ]);
  const ownsSpawn =
    instance?.task_state === TaskState.SPAWNING && instance.task_owner === rt.command.command_id;
  const finishedByItsEvent =
    action?.status === 'succeeded' && instance?.vm_state === VmState.ACTIVE;
  if (!ownsSpawn && !finishedByItsEvent) {
    // A delete took the task while the driver was spawning: the guest must not outlive it.
    return preempted(
      rt,
      new UnexpectedTaskStateError(
        rt.command.instance_id,
        [TaskState.SPAWNING],
        instance?.task_state ?? null,
      ),
    );
  }
  if (ports.length === 0) return;
  await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    expect: ownsSpawn ? { taskState: [TaskState.SPAWNING] } : { vmState: [VmState.ACTIVE] },
    changes: (current) => (current.ports.length === 0 ? { ports } : {}),
    now: rt.now(),
  });
}

/** The final write of a successful spawn; also the completion path for a lifecycle event. */
export async function finishSpawn(
  rt: CommandRuntime,
  powerState: PowerState,
  ports?: Instance['ports'],
): Promise<void> {
  const now = rt.now();
  await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    expect: { taskState: [TaskState.SPAWNING], vmState: [VmState.BUILDING] },
    changes: (current) => {
      owned(rt, current, TaskState.SPAWNING);
      return {
        vm_state: VmState.ACTIVE,
        task_state: null,
        task_owner: null,
        power_state: powerState,
        launched_at: now.toISOString(),
        ...(ports ? { ports } : {}),
      };
    },
    notifications: (old, next) => [
      ...rt.updates(old, next),
      rt.notify(next, 'create.end', { extra: { message: 'Success' }, includeFixedIps: true }),
    ],
    event: {
      event: BUILD_EVENT,
      start_time: now.toISOString(),
      finish_time: now.toISOString(),
      result: 'Success',
    },
    finish: rt.outcome('succeeded'),
    progress: NOTHING_PENDING,
    now,
  });
}

/** Nova's failure rule for a build: fault, create.error, ERROR / None; the guest is cleaned up. */
export async function failBuild(rt: CommandRuntime, error: unknown): Promise<void> {
  const now = rt.now();
  const current = await rt.deps.store.getInstance(rt.command.instance_id);
  try {
    await rt.deps.store.updateInstance({
      instanceId: rt.command.instance_id,
      action: rt.actionRef,
      expect: { vmState: [VmState.BUILDING] },
      changes: (c) => {
        owned(rt, c, c.task_state);
        return {
          vm_state: VmState.ERROR,
          task_state: null,
          task_owner: null,
          power_state: PowerState.NOSTATE,
        };
      },
      notifications: (old, next) => [
        ...rt.updates(old, next),
        rt.notifyError(next, 'create', error),
      ],
      fault: current ? rt.fault(current, error) : undefined,
      event: {
        event: BUILD_EVENT,
        start_time: now.toISOString(),
        finish_time: now.toISOString(),
        result: 'Error',
      },
      finish: rt.outcome('failed', error),
      now,
    });
  } catch (e) {
    if (!isPreemption(e)) throw e;
    return preempted(rt, e);
  }
  // Nova aborts the instance claim of a failed build: its resources are free again.
  if (current?.node) await dropInstanceClaims(rt.deps, rt.command.instance_id, [current.node]);
  // The failure is recorded; now clean up what the spawn may have left behind (Nova destroys it
  // too). Cleanup comes second so a crash here cannot make a redelivery spawn again. A guest
  // that survives a failed cleanup is destroyed when the ERROR instance is deleted.
  if (current?.node) {
    await rt.deps.driver.destroy(driverContext(rt), current).catch((e: unknown) =>
      rt.deps.logger.warn('cleanup after failed build did not finish', {
        error_name: (e as Error).name,
      }),
    );
  }
}

/**
 * The task or the record moved on under this build: a delete took the task, or finished and
 * left the record DELETED (a vm_state conflict). Either way the build is over.
 */
function isPreemption(e: unknown): e is StratusError {
  return (
    e instanceof UnexpectedTaskStateError ||
    (isStratusError(e) && e.code === ErrorCode.InstanceUpdateConflict)
  );
}

/**
 * Another command took the task (a delete, in practice). Nova aborts the build quietly: no
 * create.error, no fault. The guest this build may have spawned is destroyed so none leaks.
 */
async function preempted(rt: CommandRuntime, error: StratusError): Promise<void> {
  const current = await rt.deps.store.getInstance(rt.command.instance_id);
  const beingDeleted =
    current !== null &&
    (current.task_state === TaskState.DELETING ||
      current.deleted ||
      current.vm_state === VmState.DELETED);
  // Only a delete justifies destroying the guest; any other conflict (the build's own lifecycle
  // event finished it a moment ago) must leave a live instance's guest alone.
  if (current && beingDeleted) await rt.deps.driver.destroy(driverContext(rt), current);
  try {
    await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
      finish: rt.outcome('failed', error),
    });
  } catch (e) {
    if (!(isStratusError(e) && e.status === 409)) throw e; // already finished: nothing to add
  }
}

async function spawn(
  rt: BuildRuntime,
  instance: Instance,
): Promise<DriverResult & { ports?: Instance['ports'] }> {
  const args = rt.command.args;
  return rt.deps.driver.spawn(driverContext(rt), instance, {
    imageRef: instance.image_ref,
    imageMeta: instance.image_meta,
    injectedFiles: args.injected_files ?? [],
    adminPassword: args.admin_password ?? null,
    userData: args.user_data ?? null,
    requestedNetworks: args.networks ?? [],
    blockDeviceMapping: instance.block_device_mapping,
    powerOn: true,
  });
}

export const buildAndRunInstance: OperationHandler<Instance> = {
  operation: 'build_and_run_instance',

  complete: (rt, event) => finishSpawn(rt, POWER_STATE_FOR_TRANSITION[event.transition]),
  abandon: (rt, error) => failBuild(rt, error),

  async prepare(rt, admin) {
    const brt = rt as BuildRuntime;
    const args = brt.command.args;
    if (args.node !== undefined && !admin) {
      throw new StratusError(ErrorCode.Forbidden, 'Only an admin may choose the node');
    }
    const instance = initialInstance(brt, args, rt.now().toISOString());
    const existing = await rt.deps.store.getInstance(instance.instance_id);
    if (existing) {
      throw new StratusError(
        ErrorCode.InstanceExists,
        `Instance ${instance.instance_id} already exists.`,
      );
    }
    return instance;
  },

  async start(rt, instance) {
    const action = newAction(rt.command, rt.subject, rt.now());
    const created = await rt.deps.store.createInstance(
      instance,
      action,
      rt.updates(null, instance),
    );
    if (!created.created) {
      // Lost a race with another command for the same instance id: nothing of ours was written.
      throw new StratusError(
        ErrorCode.InstanceExists,
        `Instance ${instance.instance_id} already exists.`,
      );
    }
  },

  async perform(rt) {
    const brt = rt as BuildRuntime;
    const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
    if (action?.status !== 'running') return;
    try {
      let instance = await rt.deps.store.getInstance(rt.command.instance_id);
      while (instance) {
        if (instance.task_owner !== rt.command.command_id) {
          throw new UnexpectedTaskStateError(
            instance.instance_id,
            [instance.task_state],
            instance.task_state,
          );
        }
        switch (instance.task_state) {
          case TaskState.SCHEDULING: {
            // The resource tracker picks a node and claims the flavor there in one
            // transaction (no over-commit); a redelivered build gets its own claim back.
            const { args } = brt.command;
            const tried = triedNodes(instance);
            // A reschedule left the failed nodes' claims behind if it crashed: free them.
            if (tried.length > 0) await dropInstanceClaims(rt.deps, instance.instance_id, tried);
            const placed = await selectAndClaim(rt.deps, instance, {
              exclude: tried,
              ...(args.node !== undefined ? { node: args.node } : {}),
              ...(args.availability_zone !== undefined
                ? { availability_zone: args.availability_zone }
                : {}),
              ctx: driverContext(rt),
            });
            instance = await step(brt, TaskState.SCHEDULING, null, {
              changes: {
                host: rt.deps.config.host,
                node: placed.node,
                availability_zone: placed.availability_zone,
              },
            });
            break;
          }
          case null:
            instance = await step(brt, null, TaskState.NETWORKING, {
              before: (i) => [rt.notify(i, 'create.start', { extra: { image_name: i.image_ref } })],
            });
            break;
          case TaskState.NETWORKING:
            instance = await step(brt, TaskState.NETWORKING, TaskState.BLOCK_DEVICE_MAPPING);
            break;
          case TaskState.BLOCK_DEVICE_MAPPING:
            instance = await step(brt, TaskState.BLOCK_DEVICE_MAPPING, TaskState.SPAWNING);
            break;
          case TaskState.SPAWNING: {
            // Expect the platform's event before asking: a fast driver may report it before
            // spawn even returns, and the lifecycle handler must recognise it.
            await expectLifecycle(rt, 'started');
            let result: Awaited<ReturnType<typeof spawn>>;
            try {
              result = await spawn(brt, instance);
            } catch (e) {
              if (!isComputeResourcesUnavailable(e)) throw e;
              instance = await reschedule(brt, instance, e);
              break;
            }
            if (result.status === 'done') {
              await finishSpawn(rt, result.powerState, result.ports);
            } else {
              await waitForDriver(rt, result.deadlineSeconds).catch(ignoreFinished);
              await afterPendingSpawn(rt, result.ports ?? []);
            }
            return;
          }
          default:
            throw new UnexpectedTaskStateError(
              instance.instance_id,
              [TaskState.SPAWNING],
              instance.task_state,
            );
        }
      }
    } catch (e) {
      if (isPreemption(e)) return preempted(rt, e);
      if (!isStratusError(e) && !(e instanceof Error)) throw e;
      if (isRetryable(e)) throw e;
      await failBuild(rt, e);
    }
  },
};
