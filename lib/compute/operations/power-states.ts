// pause_instance, unpause_instance, suspend_instance and resume_instance (nova-compute.md §1.1).
//
// Pause and unpause revert the task on failure (vm_state unchanged). Suspend and resume run the
// driver inside Nova's _error_out_instance_on_exception: a driver that cannot do it
// (NotSupported, 501) puts the vm_state back where it was, any other failure is an ERROR
// instance. Suspend remembers the vm_state it left in system_metadata['old_vm_state']; resume
// pops it (default ACTIVE).

import { ALL_VM_STATES, PowerState, TaskState, VmState } from '../states.ts';
import { driverContext, taskOperation } from './task-operation.ts';

const OLD_VM_STATE = 'old_vm_state';

export const pauseInstance = taskOperation({
  operation: 'pause_instance',
  vmStates: [VmState.ACTIVE],
  taskState: TaskState.PAUSING,
  notify: 'pause',
  actionEvent: 'compute_pause_instance',
  expects: 'paused',
  run: (rt, instance) => rt.deps.driver.pause(driverContext(rt), instance),
  final: (_i, power) => ({ vm_state: VmState.PAUSED, power_state: power ?? PowerState.PAUSED }),
  onFailure: 'revert',
});

export const unpauseInstance = taskOperation({
  operation: 'unpause_instance',
  vmStates: [VmState.PAUSED],
  taskState: TaskState.UNPAUSING,
  notify: 'unpause',
  actionEvent: 'compute_unpause_instance',
  expects: 'resumed',
  run: (rt, instance) => rt.deps.driver.unpause(driverContext(rt), instance),
  final: (_i, power) => ({ vm_state: VmState.ACTIVE, power_state: power ?? PowerState.RUNNING }),
  onFailure: 'revert',
});

export const suspendInstance = taskOperation({
  operation: 'suspend_instance',
  vmStates: [VmState.ACTIVE],
  taskState: TaskState.SUSPENDING,
  notify: 'suspend',
  actionEvent: 'compute_suspend_instance',
  expects: 'suspended',
  run: (rt, instance) => rt.deps.driver.suspend(driverContext(rt), instance),
  final: (instance, power) => ({
    vm_state: VmState.SUSPENDED,
    power_state: power ?? PowerState.SUSPENDED,
    system_metadata: { ...instance.system_metadata, [OLD_VM_STATE]: instance.vm_state },
  }),
  // The vm_state the instance had while the task ran (ACTIVE).
  onFailure: { errorOutTo: (instance) => instance.vm_state },
});

/** The vm_state suspend left, if it is one (Nova defaults to ACTIVE for older records). */
function stateBeforeSuspend(systemMetadata: Record<string, string>): VmState {
  const old = systemMetadata[OLD_VM_STATE];
  return (ALL_VM_STATES as readonly string[]).includes(old ?? '')
    ? (old as VmState)
    : VmState.ACTIVE;
}

export const resumeInstance = taskOperation({
  operation: 'resume_instance',
  vmStates: [VmState.SUSPENDED],
  taskState: TaskState.RESUMING,
  notify: 'resume',
  actionEvent: 'compute_resume_instance',
  expects: 'resumed',
  run: (rt, instance) => rt.deps.driver.resume(driverContext(rt), instance),
  final: (instance, power) => {
    const { [OLD_VM_STATE]: _popped, ...systemMetadata } = instance.system_metadata;
    return {
      vm_state: stateBeforeSuspend(instance.system_metadata),
      power_state: power ?? PowerState.RUNNING,
      system_metadata: systemMetadata,
    };
  },
  // Still SUSPENDED: the guest did not resume.
  onFailure: { errorOutTo: (instance) => instance.vm_state },
});
