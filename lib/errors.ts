// Enumerated error codes. Every answer Stratus gives (outcome, fault, log line) names one of
// these, so operators can alert on a code and producers can branch on it.

export const ErrorCode = {
  // 400: the command itself is wrong
  MalformedJson: 'MalformedJson',
  InvalidCommand: 'InvalidCommand',
  WrongQueue: 'WrongQueue',
  UnknownFlavor: 'UnknownFlavor',
  CommandIdReused: 'CommandIdReused',
  // 403
  Forbidden: 'Forbidden',
  // 404
  InstanceNotFound: 'InstanceNotFound',
  // 409
  InstanceInvalidState: 'InstanceInvalidState',
  InstanceIsLocked: 'InstanceIsLocked',
  UnexpectedTaskState: 'UnexpectedTaskState',
  UnexpectedDeletingTaskState: 'UnexpectedDeletingTaskState',
  InstanceUpdateConflict: 'InstanceUpdateConflict',
  InstanceExists: 'InstanceExists',
  // Nova's specific conflicts and lookups (volumes, ports, hosts)
  InvalidDevicePath: 'InvalidDevicePath',
  InvalidVolume: 'InvalidVolume',
  TooManyDiskDevices: 'TooManyDiskDevices',
  VolumeBDMNotFound: 'VolumeBDMNotFound',
  PortNotFound: 'PortNotFound',
  NetworkNotFoundForInstance: 'NetworkNotFoundForInstance',
  FixedIpNotFoundForSpecificInstance: 'FixedIpNotFoundForSpecificInstance',
  ComputeHostNotFound: 'ComputeHostNotFound',
  DevicePathInUse: 'DevicePathInUse',
  PortInUse: 'PortInUse',
  InstanceNotRescuable: 'InstanceNotRescuable',
  InstancePasswordSetFailed: 'InstancePasswordSetFailed',
  // 501
  NotSupported: 'NotSupported',
  // 500
  BuildAbort: 'BuildAbort',
  DriverError: 'DriverError',
  LifecycleTimeout: 'LifecycleTimeout',
  InternalError: 'InternalError',
  ConfigError: 'ConfigError',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** HTTP-like status of each code, as CONTRACT §1 "Outcome" defines. */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  MalformedJson: 400,
  InvalidCommand: 400,
  WrongQueue: 400,
  UnknownFlavor: 400,
  CommandIdReused: 400,
  Forbidden: 403,
  InstanceNotFound: 404,
  InstanceInvalidState: 409,
  InstanceIsLocked: 409,
  UnexpectedTaskState: 409,
  UnexpectedDeletingTaskState: 409,
  InstanceUpdateConflict: 409,
  InstanceExists: 409,
  NotSupported: 501,
  InstanceNotRescuable: 400,
  InstancePasswordSetFailed: 409,
  InvalidDevicePath: 400,
  InvalidVolume: 400,
  TooManyDiskDevices: 403,
  VolumeBDMNotFound: 404,
  PortNotFound: 404,
  NetworkNotFoundForInstance: 404,
  FixedIpNotFoundForSpecificInstance: 404,
  ComputeHostNotFound: 404,
  DevicePathInUse: 409,
  PortInUse: 409,

  BuildAbort: 500,
  DriverError: 500,
  LifecycleTimeout: 500,
  InternalError: 500,
  ConfigError: 500,
};

/** A failure Stratus understands: it has a code, an HTTP-like status and a safe message. */
export class StratusError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = code;
    this.code = code;
    this.status = HTTP_STATUS[code];
  }
}

/**
 * Nova's `UnexpectedTaskStateError` family. A mismatch whose actual task_state is `deleting`
 * is its own class, because build and snapshot treat it as "the instance went away" and stop
 * quietly instead of failing.
 */
export class UnexpectedTaskStateError extends StratusError {
  readonly expected: readonly (string | null)[];
  readonly actual: string | null;

  constructor(
    instanceId: string,
    expected: readonly (string | null)[],
    actual: string | null,
    code: ErrorCode = ErrorCode.UnexpectedTaskState,
  ) {
    super(
      code,
      `Conflict updating instance ${instanceId}. Expected: {'task_state': ${JSON.stringify(expected)}}. ` +
        `Actual: {'task_state': ${JSON.stringify(actual)}}`,
    );
    this.expected = expected;
    this.actual = actual;
  }
}

export class UnexpectedDeletingTaskStateError extends UnexpectedTaskStateError {
  constructor(instanceId: string, expected: readonly (string | null)[]) {
    super(instanceId, expected, 'deleting', ErrorCode.UnexpectedDeletingTaskState);
  }
}

export class InstanceNotFoundError extends StratusError {
  constructor(instanceId: string) {
    super(ErrorCode.InstanceNotFound, `Instance ${instanceId} could not be found.`);
  }
}

export function isStratusError(e: unknown): e is StratusError {
  return e instanceof StratusError;
}

/** Nova truncates fault and error-notification messages to 255 characters. */
export function truncateMessage(message: string, max = 255): string {
  return message.length <= max ? message : message.slice(0, max);
}
