// stop_instance and start_instance (nova-compute.md §1.1, power_off / power_on).

import type { ArgsOf } from '../../commands/schemas.ts';
import { PowerState, TaskState, VmState } from '../states.ts';
import { CLEAN_SHUTDOWN, FORCED_SHUTDOWN, driverContext, taskOperation } from './task-operation.ts';

export const stopInstance = taskOperation({
  operation: 'stop_instance',
  vmStates: [VmState.ACTIVE, VmState.ERROR],
  taskState: TaskState.POWERING_OFF,
  initialChanges: () => ({ progress: 0 }),
  notify: 'power_off',
  actionEvent: 'compute_stop_instance',
  expects: 'stopped',
  run: (rt, instance) => {
    const args = rt.command.args as ArgsOf<'stop_instance'>;
    return rt.deps.driver.powerOff(
      driverContext(rt),
      instance,
      args.clean_shutdown ? CLEAN_SHUTDOWN : FORCED_SHUTDOWN,
    );
  },
  final: (_i, power) => ({ vm_state: VmState.STOPPED, power_state: power ?? PowerState.SHUTDOWN }),
  onFailure: 'revert',
});

export const startInstance = taskOperation({
  operation: 'start_instance',
  vmStates: [VmState.STOPPED],
  taskState: TaskState.POWERING_ON,
  notify: 'power_on',
  actionEvent: 'compute_start_instance',
  expects: 'started',
  run: (rt, instance) => rt.deps.driver.powerOn(driverContext(rt), instance),
  final: (_i, power) => ({ vm_state: VmState.ACTIVE, power_state: power ?? PowerState.RUNNING }),
  onFailure: 'revert',
});
