// Driver failures. Nova tells "the driver cannot do this" (NotImplementedError, answered 501)
// apart from "the driver tried and failed" (a named NovaException the manager reacts to, e.g.
// ComputeResourcesUnavailable → reschedule). Both keep those meanings here.

import { ErrorCode, StratusError } from '../errors.ts';

/** Nova's [NI]: the driver does not implement the method. Always HTTP 501. */
export class NotSupportedError extends StratusError {
  readonly driver: string;
  /** Nova's method name, e.g. `live_migration`. */
  readonly method: string;

  constructor(driver: string, method: string, reason?: string) {
    super(
      ErrorCode.NotSupported,
      `The ${driver} driver does not support ${method}${reason === undefined ? '' : `: ${reason}`}`,
    );
    this.driver = driver;
    this.method = method;
  }
}

/** The Nova exception names drivers raise and the manager branches on. */
export const NovaDriverException = {
  ComputeResourcesUnavailable: 'ComputeResourcesUnavailable',
  ComputeHostNotFound: 'ComputeHostNotFound',
  DevicePathInUse: 'DevicePathInUse',
  HypervisorUnavailable: 'HypervisorUnavailable',
  InstanceExists: 'InstanceExists',
  InstanceInvalidState: 'InstanceInvalidState',
  InstanceNotRescuable: 'InstanceNotRescuable',
  InstanceNotRunning: 'InstanceNotRunning',
  InstancePowerOffFailure: 'InstancePowerOffFailure',
  InstancePowerOnFailure: 'InstancePowerOnFailure',
  InstanceRebootFailure: 'InstanceRebootFailure',
  InstanceResumeFailure: 'InstanceResumeFailure',
  InstanceSuspendFailure: 'InstanceSuspendFailure',
  InstanceUnRescueFailure: 'InstanceUnRescueFailure',
  InterfaceAttachFailed: 'InterfaceAttachFailed',
  InterfaceDetachFailed: 'InterfaceDetachFailed',
  VolumeAttachFailed: 'VolumeAttachFailed',
  VolumeNotFound: 'VolumeNotFound',
} as const;
export type NovaDriverException = (typeof NovaDriverException)[keyof typeof NovaDriverException];

/**
 * Exceptions that say "the guest's current state forbids this call", not "the platform broke".
 * They answer 409: retrying the same command without changing the state fails the same way, so
 * a producer should read them as a conflict, and an operator should not be paged for them as
 * for a 500. Nova itself gives DevicePathInUse a 409; the others are Nova `Invalid` (400) that
 * the API translates to 409 where it meets them (InstanceInvalidState).
 */
const CONFLICT_CODES: Partial<Record<string, ErrorCode>> = {
  InstanceExists: ErrorCode.InstanceExists,
  InstanceInvalidState: ErrorCode.InstanceInvalidState,
  InstanceNotRunning: ErrorCode.InstanceInvalidState,
  DevicePathInUse: ErrorCode.InstanceInvalidState,
  InterfaceAttachFailed: ErrorCode.InstanceInvalidState,
  InterfaceDetachFailed: ErrorCode.InstanceInvalidState,
};

/** A driver call that failed, named by the Nova exception it stands for. */
export class DriverError extends StratusError {
  /** The Nova exception class name, e.g. `ComputeResourcesUnavailable`. */
  readonly novaException: string;

  constructor(
    novaException: NovaDriverException | string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(CONFLICT_CODES[novaException] ?? ErrorCode.DriverError, message, options);
    this.novaException = novaException;
  }
}

export function isNotSupported(error: unknown): error is NotSupportedError {
  return error instanceof NotSupportedError;
}

/** True when `error` is a DriverError for the named Nova exception. */
export function isDriverError(error: unknown, novaException?: string): error is DriverError {
  return (
    error instanceof DriverError &&
    (novaException === undefined || error.novaException === novaException)
  );
}
