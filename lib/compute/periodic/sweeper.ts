// The lifecycle sweeper (ARCHITECTURE §2.5): a task the driver left pending waits for its
// lifecycle event until a deadline; when the deadline passed without the event, this settles
// the task from what the driver reports now. The index that lists expired waits is eventually
// consistent, so each action is re-read by key first; a late event after this changes nothing
// (the action is no longer running).

import { PROGRESS_PENDING_EXPECT } from '../operations/common.ts';
import type { ComputeDeps } from '../runtime.ts';
import { PeriodicTaskName, type TaskReport, handleOne, newReport, parseUtc } from './report.ts';
import { isLifecycleTransition, settleWait } from './settle.ts';

export async function sweepExpiredWaits(deps: ComputeDeps, now: Date): Promise<TaskReport> {
  const report = newReport(PeriodicTaskName.LIFECYCLE_SWEEPER);
  for (const listed of await deps.store.listWaitingActions(now)) {
    await handleOne(
      deps,
      report,
      { command_id: listed.command_id, instance_id: listed.instance_id },
      async () => {
        const action = await deps.store.getAction(listed.subject, listed.command_id);
        if (!action || action.status !== 'running') return 'finished';
        const expect = action.progress[PROGRESS_PENDING_EXPECT];
        if (!action.wait_until || parseUtc(action.wait_until) > now.getTime()) return 'not_due';
        if (!isLifecycleTransition(expect)) return 'not_waiting';
        // Lifecycle events are about guests: only instance actions wait on them.
        if (action.subject.kind !== 'instance' || !action.instance_id) {
          deps.logger.warn('waiting action is not an instance action; left as it is', {
            command_id: action.command_id,
            operation: action.operation,
          });
          return 'unsupported';
        }
        return settleWait(deps, action, expect, now);
      },
    );
  }
  return report;
}
