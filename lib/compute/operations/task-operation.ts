// Most of Nova's instance operations share one shape (nova-compute.md §1.1):
//
//   API      check lock / host / launched / vm_state / task_state, set task_state (CAS)
//   compute  <action>.start, driver call(s), final vm / task / power state, <action>.end
//   failure  revert the task (vm unchanged) with a fault — or error the instance out
//
// A TaskOperationSpec states one operation's rules; taskOperation() turns it into an
// OperationHandler with Nova's concurrency (each write names the state it expects), idempotent
// resumption (a redelivered command continues while it owns the task), completion from
// lifecycle events, and one outcome.

import { ErrorCode, StratusError, UnexpectedTaskStateError, isStratusError } from '../../errors.ts';
import type { Notification } from '../../notifications/notification.ts';
import type { Operation } from '../../topology.ts';
import type { DriverResult } from '../../virt/driver.ts';
import { NotSupportedError } from '../../virt/errors.ts';
import type { LifecycleEvent } from '../../virt/events.ts';
import type { OperationHandler } from '../executor.ts';
import type { Instance, InstanceChanges } from '../instance.ts';
import { type CommandRuntime, newAction } from '../runtime.ts';
import {
  type LifecycleTransition,
  POWER_STATE_FOR_TRANSITION,
  type PowerState,
  type TaskState,
  type VmState,
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

/** What a failed driver call does to the instance (Nova's decorators). */
export type FailureRule =
  /** @reverts_task_state: task back to None, vm_state unchanged, fault recorded. */
  | 'revert'
  /**
   * _error_out_instance_on_exception(vm): NotImplemented → vm_state back to `vm`, task None;
   * anything else → vm_state ERROR. A fault is recorded either way.
   */
  | { errorOutTo: (instance: Instance) => VmState }
  /** Every error is an ERROR instance (e.g. rescue). */
  | 'error';

export interface TaskOperationSpec {
  operation: Operation;
  /** vm_states the API accepts (check_instance_state). */
  vmStates: readonly VmState[] | 'any';
  /** task_states the API accepts; default [null] (no task running). */
  taskStates?: readonly (TaskState | null)[] | 'any';
  /** check_instance_lock (default true; snapshot, backup, consoles, diagnostics ignore it). */
  checksLock?: boolean;
  /** check_instance_host: the instance must be on a node (default true). */
  requiresHost?: boolean;
  /** must_have_launched (default true). */
  mustHaveLaunched?: boolean;
  /** Extra API-side checks (read-only); throw StratusError to reject. */
  precheck?: (rt: CommandRuntime, instance: Instance, admin: boolean) => void | Promise<void>;
  /** The task_state the API sets; null for operations that set none (e.g. trigger_crash_dump). */
  taskState: TaskState | null;
  /** Other fields the API writes with the task (progress 0, deleted_at, system metadata…). */
  initialChanges?: (instance: Instance, rt: CommandRuntime) => InstanceChanges;
  /** `compute.instance.<notify>.start/.end`; undefined for operations Nova does not announce. */
  notify?: string;
  /** Extra payload keys for the .start / .end events (Nova's **kw). */
  notifyExtra?: (instance: Instance, rt: CommandRuntime) => Record<string, unknown>;
  /** The instance action event (`compute_<method>`). */
  actionEvent: string;
  /**
   * The driver work. Returning a pending DriverResult leaves the task waiting for the lifecycle
   * transition `expects`; void or a done result finishes now.
   */
  run: (rt: CommandRuntime, instance: Instance) => Promise<DriverResult | void>;
  /** The transition a pending run waits for. */
  expects?: LifecycleTransition;
  /** The final fields (vm_state, power_state, …); task_state and owner are cleared for you. */
  final: (instance: Instance, powerState: PowerState | null, rt: CommandRuntime) => InstanceChanges;
  /** Informational results returned in the outcome's `result`. */
  result?: (instance: Instance, rt: CommandRuntime) => unknown;
  onFailure: FailureRule;
  /** Notifications after the .end event (e.g. rescue's mid-period exists). */
  after?: (next: Instance, rt: CommandRuntime) => Notification[];
}

const PROGRESS_RESULT = 'result';

function ownsTask(rt: CommandRuntime, spec: TaskOperationSpec, current: Instance): void {
  if (spec.taskState === null) return;
  if (current.task_state !== spec.taskState || current.task_owner !== rt.command.command_id) {
    throw new UnexpectedTaskStateError(current.instance_id, [spec.taskState], current.task_state);
  }
}

/** The final write of a successful run; also the completion path of a lifecycle event. */
async function finish(
  rt: CommandRuntime,
  spec: TaskOperationSpec,
  powerState: PowerState | null,
): Promise<void> {
  const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
  const stored = action?.progress[PROGRESS_RESULT];
  await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    expect: spec.taskState === null ? {} : { taskState: [spec.taskState] },
    changes: (current) => {
      ownsTask(rt, spec, current);
      return {
        ...spec.final(current, powerState, rt),
        ...(spec.taskState === null ? {} : { task_state: null, task_owner: null }),
      };
    },
    notifications: (old, next) => [
      ...rt.updates(old, next),
      ...(spec.notify
        ? [rt.notify(next, `${spec.notify}.end`, { extra: spec.notifyExtra?.(next, rt) })]
        : []),
      ...(spec.after?.(next, rt) ?? []),
    ],
    event: actionEvent(rt, spec.actionEvent, 'Success'),
    finish: rt.outcome(
      'succeeded',
      undefined,
      typeof stored === 'string' ? JSON.parse(stored) : undefined,
    ),
    progress: NOTHING_PENDING,
    now: rt.now(),
  });
}

/** Nova's failure rules for the operation; never leaves the task set. */
async function fail(rt: CommandRuntime, spec: TaskOperationSpec, error: unknown): Promise<void> {
  const current = await rt.deps.store.getInstance(rt.command.instance_id);
  const rule = spec.onFailure;
  await rt.deps.store.updateInstance({
    instanceId: rt.command.instance_id,
    action: rt.actionRef,
    expect: spec.taskState === null ? {} : { taskState: [spec.taskState] },
    changes: (c) => {
      ownsTask(rt, spec, c);
      const task = spec.taskState === null ? {} : { task_state: null, task_owner: null };
      if (rule === 'revert') return task;
      if (rule === 'error') return { ...task, vm_state: 'error' as VmState };
      return {
        ...task,
        vm_state: error instanceof NotSupportedError ? rule.errorOutTo(c) : ('error' as VmState),
      };
    },
    notifications: (old, next) => rt.updates(old, next),
    fault: current ? rt.fault(current, error) : undefined,
    event: actionEvent(rt, spec.actionEvent, 'Error'),
    finish: rt.outcome('failed', error),
    progress: NOTHING_PENDING,
    now: rt.now(),
  });
}

function checkState(spec: TaskOperationSpec, instance: Instance): void {
  const vmOk = spec.vmStates === 'any' || spec.vmStates.includes(instance.vm_state);
  const allowedTasks = spec.taskStates ?? [null];
  const taskOk = allowedTasks === 'any' || allowedTasks.includes(instance.task_state);
  if (!vmOk || !taskOk) {
    throw new StratusError(
      ErrorCode.InstanceInvalidState,
      `Cannot '${spec.operation}' instance ${instance.instance_id} while it is in vm_state ` +
        `${instance.vm_state}, task_state ${instance.task_state ?? 'None'}`,
    );
  }
}

export function taskOperation(spec: TaskOperationSpec): OperationHandler<void> & {
  complete(rt: CommandRuntime, event: LifecycleEvent): Promise<void>;
  abandon(rt: CommandRuntime, error: StratusError): Promise<void>;
} {
  const checksLock = spec.checksLock ?? true;
  return {
    operation: spec.operation,

    async prepare(rt, admin) {
      const instance = await loadOwnedInstance(rt, admin);
      if (checksLock && instance.locked && !admin) {
        throw new StratusError(
          ErrorCode.InstanceIsLocked,
          `Instance ${instance.instance_id} is locked`,
        );
      }
      if ((spec.requiresHost ?? true) && !instance.host) {
        throw new StratusError(
          ErrorCode.InstanceInvalidState,
          `Instance ${instance.instance_id} is not ready (no host)`,
        );
      }
      if ((spec.mustHaveLaunched ?? true) && !instance.launched_at) {
        throw new StratusError(
          ErrorCode.InstanceInvalidState,
          `Instance ${instance.instance_id} has not been launched`,
        );
      }
      checkState(spec, instance);
      await spec.precheck?.(rt, instance, admin);
    },

    /** The API's write: start the action and take the task in one commit (nothing else changes). */
    async start(rt) {
      const allowedTasks = spec.taskStates ?? [null];
      await rt.deps.store.updateInstance({
        instanceId: rt.command.instance_id,
        action: rt.actionRef,
        startAction: newAction(rt.command, rt.subject, rt.now()),
        expect: {
          ...(allowedTasks === 'any' ? {} : { taskState: allowedTasks }),
          ...(spec.vmStates === 'any' ? {} : { vmState: spec.vmStates }),
        },
        changes: (current) => ({
          ...spec.initialChanges?.(current, rt),
          ...(spec.taskState === null
            ? {}
            : { task_state: spec.taskState, task_owner: rt.command.command_id }),
        }),
        notifications: (old, next) => rt.updates(old, next),
        now: rt.now(),
      });
    },

    async perform(rt) {
      const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
      if (action?.status !== 'running') return;
      const instance = await rt.deps.store.getInstance(rt.command.instance_id);
      try {
        if (!instance)
          throw new UnexpectedTaskStateError(rt.command.instance_id, [spec.taskState], null);
        ownsTask(rt, spec, instance);
        // .start goes out once: it is committed with the action's first compute-side record.
        if (spec.notify && !action.progress.started) {
          await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
            notifications: [
              rt.notify(instance, `${spec.notify}.start`, {
                extra: spec.notifyExtra?.(instance, rt),
              }),
            ],
            progress: { started: true },
          });
        }
        if (spec.expects) await expectLifecycle(rt, spec.expects);
        const result = await spec.run(rt, instance);
        if (spec.result) {
          await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
            progress: { [PROGRESS_RESULT]: JSON.stringify(spec.result(instance, rt)) },
          });
        }
        if (result && result.status === 'pending') {
          // The lifecycle event finishes it (it may already have).
          await waitForDriver(rt, result.deadlineSeconds).catch(ignoreFinished);
          return;
        }
        await finish(rt, spec, result ? result.powerState : null);
      } catch (e) {
        if (e instanceof UnexpectedTaskStateError) {
          // Another command (a delete, a hard reboot) took the task: this one is over.
          await rt.deps.store
            .recordOnAction(rt.subject, rt.command.command_id, { finish: rt.outcome('failed', e) })
            .catch((x: unknown) => {
              if (!(isStratusError(x) && x.status === 409)) throw x;
            });
          return;
        }
        if (isRetryable(e)) throw e;
        await fail(rt, spec, e);
      }
    },

    async complete(rt, lifecycleEvent) {
      await finish(rt, spec, POWER_STATE_FOR_TRANSITION[lifecycleEvent.transition]);
    },

    async abandon(rt, error) {
      await fail(rt, spec, error);
    },
  };
}

/** power_off's timeouts: clean = Nova's shutdown_timeout / retry interval, forced = 0 / 0. */
export const CLEAN_SHUTDOWN = { timeout: 60, retryInterval: 10 } as const;
export const FORCED_SHUTDOWN = { timeout: 0, retryInterval: 0 } as const;

export { driverContext };
