// trigger_crash_dump and set_admin_password (nova-compute.md §1.1).
//
// trigger_crash_dump sets no task_state and changes no state (Nova: "the effect of a trigger
// depends on user's configuration"): lock, host, vm in ALLOW_TRIGGER_CRASH_DUMP, no task;
// trigger_crash_dump.start, the driver call, trigger_crash_dump.end. Its errors (NotSupported,
// InstanceNotRunning, …) are expected ones: a fault and a failed outcome, nothing to revert.
//
// set_admin_password: lock, ACTIVE, no task → UPDATING_PASSWORD; no start/end notifications. A
// guest that is not RUNNING fails it (InstancePasswordSetFailed); NotSupported is a 501; the
// guest-agent errors pass through; any other driver error becomes a generic "error setting admin
// password" so nothing the driver said (which might echo the password) reaches the answer. The
// task is cleared in every case. The new password goes to the driver and nowhere else: it is
// never logged, stored or published.

import type { ArgsOf } from '../../commands/schemas.ts';
import { ErrorCode, InstanceNotFoundError, StratusError } from '../../errors.ts';
import { isDriverError, isNotSupported } from '../../virt/errors.ts';
import type { OperationHandler } from '../executor.ts';
import type { Instance } from '../instance.ts';
import { ALLOW_TRIGGER_CRASH_DUMP, PowerState, TaskState, VmState } from '../states.ts';
import { actionEvent, currentPowerState, isRetryable } from './common.ts';
import { driverContext, taskOperation } from './task-operation.ts';

const CRASH_DUMP_EVENT = 'compute_trigger_crash_dump';

// The API half of the template fits (no task_state is set); its compute half cannot send
// trigger_crash_dump.end, because a write that changes no instance field commits no
// notifications (Nova's no-op save). The compute half below records on the action instead.
const crashDumpApi = taskOperation({
  operation: 'trigger_crash_dump',
  vmStates: ALLOW_TRIGGER_CRASH_DUMP,
  taskState: null,
  notify: 'trigger_crash_dump',
  actionEvent: CRASH_DUMP_EVENT,
  run: (rt, instance) => rt.deps.driver.triggerCrashDump(driverContext(rt), instance),
  final: () => ({}),
  onFailure: 'revert',
});

export const triggerCrashDump: OperationHandler<void> = {
  operation: 'trigger_crash_dump',
  prepare: crashDumpApi.prepare,
  start: crashDumpApi.start,

  async perform(rt) {
    const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
    if (action?.status !== 'running') return;
    const instance = await rt.deps.store.getInstance(rt.command.instance_id);
    if (!instance) {
      const error = new InstanceNotFoundError(rt.command.instance_id);
      await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
        finish: rt.outcome('failed', error),
      });
      return;
    }
    if (!action.progress.started) {
      await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
        notifications: [rt.notify(instance, 'trigger_crash_dump.start')],
        progress: { started: true },
      });
    }
    try {
      await rt.deps.driver.triggerCrashDump(driverContext(rt), instance);
    } catch (e) {
      if (isRetryable(e)) throw e;
      // A fault needs the instance write path; it changes no field of the instance.
      await rt.deps.store.updateInstance({
        instanceId: rt.command.instance_id,
        action: rt.actionRef,
        expect: {},
        changes: {},
        fault: rt.fault(instance, e),
        event: actionEvent(rt, CRASH_DUMP_EVENT, 'Error'),
        finish: rt.outcome('failed', e),
        now: rt.now(),
      });
      return;
    }
    await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
      notifications: [rt.notify(instance, 'trigger_crash_dump.end')],
      event: actionEvent(rt, CRASH_DUMP_EVENT, 'Success'),
      finish: rt.outcome('succeeded'),
    });
  },
};

/** Nova's InstancePasswordSetFailed. A guest that is not running is a state conflict (409). */
function passwordSetFailed(instance: Instance, reason: string, notRunning = false): StratusError {
  const message = `Failed to set admin password on ${instance.instance_id} because ${reason}`;
  void notRunning; // both are Nova's InstancePasswordSetFailed (409)
  return new StratusError(ErrorCode.InstancePasswordSetFailed, message);
}

/** Driver errors Nova lets through unchanged (after clearing the task). */
const PASSED_THROUGH = ['InstanceAgentNotEnabled', 'SetAdminPasswdNotSupported'];

export const setAdminPassword = taskOperation({
  operation: 'set_admin_password',
  vmStates: [VmState.ACTIVE],
  taskState: TaskState.UPDATING_PASSWORD,
  actionEvent: 'compute_set_admin_password',
  run: async (rt, instance) => {
    if ((await currentPowerState(rt, instance)) !== PowerState.RUNNING) {
      throw passwordSetFailed(instance, `instance ${instance.instance_id} is not running`, true);
    }
    const { new_password: newPassword } = rt.command.args as ArgsOf<'set_admin_password'>;
    try {
      await rt.deps.driver.setAdminPassword(driverContext(rt), instance, newPassword);
    } catch (e) {
      if (isRetryable(e) || isNotSupported(e)) throw e;
      if (PASSED_THROUGH.some((name) => isDriverError(e, name))) throw e;
      // Only the error's class: its message is the driver's and might contain the password.
      rt.deps.logger.warn('set_admin_password failed', {
        instance_id: instance.instance_id,
        error_name: (e as Error).name,
      });
      throw passwordSetFailed(instance, 'error setting admin password');
    }
    rt.deps.logger.info('Admin password set', { instance_id: instance.instance_id });
  },
  // Nothing but the task changes.
  final: () => ({}),
  onFailure: 'revert',
});
