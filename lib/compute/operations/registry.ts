// Every implemented operation's handler, by name. The lifecycle-events function uses it to
// finish whichever command's task an event completes; each command function imports only its
// own operation, so its bundle stays small.

import type { Operation } from '../../topology.ts';
import type { OperationHandler } from '../executor.ts';
import { buildAndRunInstance } from './build-and-run-instance.ts';
import { startInstance, stopInstance } from './power.ts';
import { terminateInstance } from './terminate-instance.ts';

export const OPERATION_HANDLERS: Partial<Record<Operation, OperationHandler<never>>> = {
  build_and_run_instance: buildAndRunInstance as OperationHandler<never>,
  terminate_instance: terminateInstance as OperationHandler<never>,
  stop_instance: stopInstance as OperationHandler<never>,
  start_instance: startInstance as OperationHandler<never>,
};
