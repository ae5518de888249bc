// reboot_timeout (Nova's _poll_rebooting_instances): instances in a soft reboot's task states
// for longer than the timeout since their last update are handed to the driver's
// poll_rebooting_instances. Drivers that implement it do nothing but look (libvirt) — so here
// such a reboot is treated like a lifecycle wait that expired: the driver is asked whether the
// guest came back, and the reboot completes or fails by its own rule. A reboot that is not
// waiting on the driver (its command is still walking its steps) is left to that command.

import { requestIdForCommand } from '../../commands/parse.ts';
import { NotSupportedError } from '../../virt/errors.ts';
import { PROGRESS_PENDING_EXPECT } from '../operations/common.ts';
import type { ComputeDeps } from '../runtime.ts';
import { SOFT_REBOOT_STATES, type TaskState } from '../states.ts';
import {
  type InstanceSource,
  PeriodicTaskName,
  type TaskReport,
  handleOne,
  newReport,
  olderThan,
} from './report.ts';
import { instancesOnNodes } from './scan.ts';
import { isLifecycleTransition, settleWait } from './settle.ts';

const POLL_COMMAND = `periodic:${PeriodicTaskName.REBOOT_TIMEOUT}`;
const POLL_CONTEXT = { commandId: POLL_COMMAND, requestId: requestIdForCommand(POLL_COMMAND) };

/** Nova polls these (soft reboots only: a hard reboot is the recovery path itself). */
export const POLLED_REBOOT_STATES: readonly TaskState[] = SOFT_REBOOT_STATES;

function isStale(task: TaskState | null, updatedAt: string, timeout: number, now: Date): boolean {
  return task !== null && POLLED_REBOOT_STATES.includes(task) && olderThan(updatedAt, timeout, now);
}

async function pollReboot(
  deps: ComputeDeps,
  instanceId: string,
  timeout: number,
  now: Date,
): Promise<string> {
  const instance = await deps.store.getInstance(instanceId);
  if (!instance || !isStale(instance.task_state, instance.updated_at, timeout, now)) {
    return 'finished';
  }
  const action = instance.task_owner
    ? await deps.store.getAction({ kind: 'instance', id: instanceId }, instance.task_owner)
    : null;
  if (!action || action.status !== 'running') {
    deps.logger.warn('rebooting instance has no running reboot command', {
      instance_id: instanceId,
      task_state: instance.task_state,
      task_owner: instance.task_owner,
    });
    return 'no_command';
  }
  const expect = action.progress[PROGRESS_PENDING_EXPECT];
  if (!isLifecycleTransition(expect)) return 'not_waiting';
  return settleWait(deps, action, expect, now);
}

export async function pollRebootingInstances(
  deps: ComputeDeps,
  now: Date,
  instances: InstanceSource = () => instancesOnNodes(deps),
): Promise<TaskReport> {
  const report = newReport(PeriodicTaskName.REBOOT_TIMEOUT);
  const timeout = deps.config.reboot_timeout;
  if (timeout <= 0) return { ...report, skipped: 'disabled' };
  const stale = (await instances()).filter((i) =>
    isStale(i.task_state, i.updated_at, timeout, now),
  );
  if (stale.length === 0) return report;
  // Nova hands them to the driver first; a driver that cannot poll just leaves them to us.
  await deps.driver.pollRebootingInstances(POLL_CONTEXT, timeout, stale).catch((e: unknown) => {
    if (!(e instanceof NotSupportedError)) throw e;
  });
  for (const listed of stale) {
    await handleOne(deps, report, { instance_id: listed.instance_id }, () =>
      pollReboot(deps, listed.instance_id, timeout, now),
    );
  }
  return report;
}
