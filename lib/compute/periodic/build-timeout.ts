// instance_build_timeout (Nova's _check_instance_build_time): an instance still BUILDING longer
// than the timeout after it was created is set to ERROR. Stratus also records a fault and sends
// create.error, and ends the build's command `failed` in the same commit, so no action is left
// running. The write names the task_state and owner it read: a build that moved on meanwhile
// (or finished) is not touched, and is looked at again next run.

import { ErrorCode, StratusError, UnexpectedTaskStateError, isStratusError } from '../../errors.ts';
import type { Instance } from '../instance.ts';
import { runtimeForAction } from '../lifecycle.ts';
import { NOTHING_PENDING } from '../operations/common.ts';
import { type ComputeDeps, deliverCommitted, newAction } from '../runtime.ts';
import { VmState } from '../states.ts';
import { periodicRuntime } from './commands.ts';
import {
  type InstanceSource,
  PeriodicTaskName,
  type TaskReport,
  handleOne,
  newReport,
  olderThan,
} from './report.ts';
import { instancesOnNodes } from './scan.ts';

/** Nova logs "Instance build timed out. Set to error state."; here it is the fault's message. */
export function buildTimeoutError(timeoutSeconds: number): StratusError {
  return new StratusError(
    ErrorCode.LifecycleTimeout,
    `Instance build timed out after ${timeoutSeconds} seconds. Set to error state.`,
  );
}

async function errorOutBuild(
  deps: ComputeDeps,
  instanceId: string,
  timeout: number,
  now: Date,
): Promise<string> {
  const instance = await deps.store.getInstance(instanceId);
  if (!instance || instance.vm_state !== VmState.BUILDING) return 'finished';
  if (!olderThan(instance.created_at, timeout, now)) return 'not_due';
  const { task_state: task, task_owner: owner } = instance;
  const ownerAction = owner
    ? await deps.store.getAction({ kind: 'instance', id: instanceId }, owner)
    : null;
  const build = ownerAction?.status === 'running' ? ownerAction : null;
  // The build's own command carries the outcome; an instance no running command owns gets an
  // action of this task (created and finished in the same write).
  const rt = build
    ? runtimeForAction(deps, build)
    : periodicRuntime(deps, PeriodicTaskName.INSTANCE_BUILD_TIMEOUT, instance);
  const error = buildTimeoutError(timeout);
  try {
    await deps.store.updateInstance({
      instanceId,
      action: rt.actionRef,
      ...(build ? {} : { startAction: newAction(rt.command, rt.subject, rt.now()) }),
      expect: { vmState: [VmState.BUILDING], taskState: [task] },
      changes: (current: Instance) => {
        if (current.task_owner !== owner) {
          throw new UnexpectedTaskStateError(instanceId, [task], current.task_state);
        }
        return { vm_state: VmState.ERROR, task_state: null, task_owner: null };
      },
      notifications: (old, next) => [
        ...rt.updates(old, next),
        rt.notifyError(next, 'create', error),
      ],
      fault: rt.fault(instance, error),
      finish: rt.outcome('failed', error),
      progress: NOTHING_PENDING,
      now: rt.now(),
    });
  } catch (e) {
    // The build moved on (a step, its finish, a delete): not the state this decision was on.
    if (isStratusError(e) && e.status === 409) return 'raced';
    throw e;
  }
  await deliverCommitted(deps, rt.subject, rt.command.command_id);
  deps.logger.warn('Instance build timed out. Set to error state.', {
    instance_id: instanceId,
    command_id: rt.command.command_id,
    task_state: task,
  });
  return 'errored';
}

export async function checkInstanceBuildTime(
  deps: ComputeDeps,
  now: Date,
  instances: InstanceSource = () => instancesOnNodes(deps),
): Promise<TaskReport> {
  const report = newReport(PeriodicTaskName.INSTANCE_BUILD_TIMEOUT);
  const timeout = deps.config.instance_build_timeout;
  if (timeout <= 0) return { ...report, skipped: 'disabled' };
  for (const listed of await instances()) {
    if (listed.vm_state !== VmState.BUILDING || !olderThan(listed.created_at, timeout, now)) {
      continue;
    }
    await handleOne(deps, report, { instance_id: listed.instance_id }, () =>
      errorOutBuild(deps, listed.instance_id, timeout, now),
    );
  }
  return report;
}
