// get_console_output and get_diagnostics (nova-compute.md §1.7): read-only calls that need the
// instance on a host, ignore the lock and set no task_state. The data goes into the outcome's
// `result`; nothing about the instance changes (a driver failure leaves a fault, as Nova's
// @wrap_instance_fault does).
//
//   console output   driver.get_console_output, the last `tail_length` lines, decoded as ASCII
//                    with replacement characters (Nova's _tail_log and decode('ascii','replace'))
//   diagnostics      the guest must be RUNNING (driver.get_info) else InstanceInvalidState 409
//                    (failed, with a fault, as Nova's compute raises it); the driver's dict

import type { ArgsOf } from '../../commands/schemas.ts';
import { ErrorCode, InstanceNotFoundError, StratusError } from '../../errors.ts';
import type { OperationHandler } from '../executor.ts';
import type { Instance } from '../instance.ts';
import { type CommandRuntime, newAction } from '../runtime.ts';
import { POWER_STATE_NAMES, PowerState } from '../states.ts';
import { driverContext, isRetryable } from './common.ts';
import {
  type ApiRules,
  checkInstance,
  finishFailed,
  finishSucceeded,
  runningInstance,
} from './no-task-operation.ts';

/** check_instance_host only: any vm/task state, lock ignored. */
const INFO_RULES: ApiRules = { vmStates: 'any', taskStates: 'any', checksLock: false };

/**
 * The outcome is stored on the action and sent as the reply (SQS: 256 KiB a message), so a
 * console log is capped to its newest part. Nova has no cap; tail_length is the usual one.
 */
export const MAX_CONSOLE_OUTPUT_BYTES = 64 * 1024;

/** Nova's _tail_log: the last `length` lines ('\n'-separated); 0 lines is ''. */
export function tailLog(log: string, length: number | undefined): string {
  if (length === undefined) return log;
  if (length <= 0) return '';
  return log.split('\n').slice(-length).join('\n');
}

/** decode('ascii', 'replace'): every non-ASCII character becomes U+FFFD. */
export function asciiWithReplacement(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[^\x00-\x7f]/gu, '\ufffd');
}

/** The newest part of `text` that fits in `maxBytes` of UTF-8 (never half a character). */
export function capToNewestBytes(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  let start = bytes.length - maxBytes;
  // Skip continuation bytes (10xxxxxx) so the cut falls on a character boundary.
  while (start < bytes.length && (bytes[start]! & 0xc0) === 0x80) start += 1;
  return bytes.subarray(start).toString('utf8');
}

/** An informational operation: start the action, ask the driver, answer with its data. */
function informational(
  operation: 'get_console_output' | 'get_diagnostics',
  options: {
    read: (rt: CommandRuntime, instance: Instance) => Promise<unknown>;
  },
): OperationHandler<void> {
  return {
    operation,
    async prepare(rt, admin) {
      await checkInstance(rt, admin, INFO_RULES);
    },
    async start(rt) {
      await rt.deps.store.startAction(newAction(rt.command, rt.subject, rt.now()));
    },
    async perform(rt) {
      const instance = await runningInstance(rt);
      if (!instance) return;
      let result: unknown;
      try {
        result = await options.read(rt, instance);
      } catch (e) {
        if (isRetryable(e)) throw e;
        await finishFailed(rt, instance, e);
        return;
      }
      await finishSucceeded(rt, instance, { result });
    },
  };
}

export const getConsoleOutput = informational('get_console_output', {
  async read(rt, instance) {
    const { tail_length } = rt.command.args as ArgsOf<'get_console_output'>;
    const log = await rt.deps.driver.getConsoleOutput(driverContext(rt), instance);
    const output = asciiWithReplacement(tailLog(log, tail_length));
    return { output: capToNewestBytes(output, MAX_CONSOLE_OUTPUT_BYTES) };
  },
});

/** Nova's _get_power_state: the driver's view; a guest it does not know is NOSTATE. */
async function guestPowerState(rt: CommandRuntime, instance: Instance): Promise<PowerState> {
  try {
    return (await rt.deps.driver.getInfo(driverContext(rt), instance)).state;
  } catch (e) {
    if (e instanceof InstanceNotFoundError) return PowerState.NOSTATE;
    throw e;
  }
}

export const getDiagnostics = informational('get_diagnostics', {
  // Checked by compute, as Nova's get_diagnostics does: a guest that is not running fails the
  // command with InstanceInvalidState (409) and a fault.
  async read(rt, instance) {
    const state = await guestPowerState(rt, instance);
    if (state !== PowerState.RUNNING) {
      throw new StratusError(
        ErrorCode.InstanceInvalidState,
        `Instance ${instance.instance_id} in power state ${POWER_STATE_NAMES[state]}. ` +
          'Cannot get_diagnostics while the instance is in this state.',
      );
    }
    return rt.deps.driver.getDiagnostics(driverContext(rt), instance);
  },
});
