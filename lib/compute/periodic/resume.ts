// Periodic commands run inside the scheduled function, not from a queue, so nothing redelivers
// one whose run was cut off (a timeout, a crash) the way SQS redelivers a producer's command.
// This task is their redelivery: a task owned by a periodic command whose action has been
// running longer than any run lasts, and is not waiting on a lifecycle event (the sweeper
// handles those), is run again under its own command id, which resumes it where it stopped.

import { isOperation } from '../../topology.ts';
import type { ComputeDeps } from '../runtime.ts';
import { isPeriodicCommandId, runPeriodicCommand } from './commands.ts';
import {
  type InstanceSource,
  PeriodicTaskName,
  type TaskReport,
  handleOne,
  newReport,
  olderThan,
} from './report.ts';
import { instancesOnNodes } from './scan.ts';
import { STALLED_AFTER_SECONDS } from './settings.ts';

async function resume(deps: ComputeDeps, instanceId: string, now: Date): Promise<string> {
  const instance = await deps.store.getInstance(instanceId);
  const owner = instance?.task_owner ?? null;
  if (!instance || !isPeriodicCommandId(owner)) return 'finished';
  const action = await deps.store.getAction({ kind: 'instance', id: instanceId }, owner!);
  if (!action || action.status !== 'running') return 'finished';
  if (action.wait_until) return 'waiting';
  if (!olderThan(action.start_time, STALLED_AFTER_SECONDS, now)) return 'in_progress';
  if (!isOperation(action.operation)) return 'unsupported';
  return runPeriodicCommand(deps, {
    task: PeriodicTaskName.RESUME_PERIODIC_COMMANDS,
    commandId: owner!,
    operation: action.operation,
    instance,
  });
}

export async function resumePeriodicCommands(
  deps: ComputeDeps,
  now: Date,
  instances: InstanceSource = () => instancesOnNodes(deps),
): Promise<TaskReport> {
  const report = newReport(PeriodicTaskName.RESUME_PERIODIC_COMMANDS);
  for (const listed of await instances()) {
    if (!isPeriodicCommandId(listed.task_owner)) continue;
    await handleOne(deps, report, { instance_id: listed.instance_id }, () =>
      resume(deps, listed.instance_id, now),
    );
  }
  return report;
}
