// EC2 errors → what the compute layer understands (reference §5). One table, so every driver
// method fails the same way for the same EC2 code:
//
// - capacity (InsufficientInstanceCapacity, Unsupported, host capacity) at launch →
//   ComputeResourcesUnavailable, Nova's reschedulable failure (its RescheduledException, and
//   NoValidHost once no other node is left). At start it is InstancePowerOnFailure instead: a
//   stopped instance cannot move.
// - quota (VcpuLimitExceeded, InstanceLimitExceeded) → Ec2QuotaExceededError, also
//   ComputeResourcesUnavailable (another node may have room), carrying the node whose
//   inventory is now known to be too large; the driver lowers that pool node's vCPUs to the
//   limit EC2 reported, so the next resource audit (getAvailableResource) shrinks it.
// - throttling (RequestLimitExceeded, Throttling…) → retried by the SDK (adaptive mode) and
//   then by the driver with capped exponential backoff (isThrottling); past the bound the
//   original error propagates and the compute layer's isRetryable lets SQS redeliver.
// - IncorrectInstanceState → InstanceInvalidState (409), naming the operation.
// - InvalidInstanceID.NotFound → tolerated for a bounded time after a launch (isNotFound; the
//   driver retries reads), otherwise the guest is gone.
// - UnsupportedHibernationConfiguration → NotSupportedError (501) for suspend, never a silent
//   cold stop.
//
// Messages never carry request parameters: an EC2 message is passed through `redact`, which
// removes any secret (admin password, user data, file contents) the caller names.

import { InstanceNotFoundError } from '../../errors.ts';
import { ComputeResourcesUnavailableError } from '../../resources/errors.ts';
import { DriverError, NotSupportedError } from '../errors.ts';

/** The driver name in NotSupported messages. */
export const EC2_DRIVER_NAME = 'ec2';

/** An SDK v3 error's EC2 code (its `name`, or `Code` on older shapes). */
export function ec2ErrorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const e = error as { name?: unknown; Code?: unknown; code?: unknown };
  for (const candidate of [e.Code, e.name, e.code]) {
    if (typeof candidate === 'string' && candidate !== 'Error') return candidate;
  }
  return undefined;
}

const THROTTLING_CODES = new Set([
  'RequestLimitExceeded',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottled',
  'RequestThrottledException',
  'EC2ThrottledException',
  'TooManyRequestsException',
  'SlowDown',
]);

/** Throttling: retry with backoff, never a failure of the operation. */
export function isThrottling(error: unknown): boolean {
  const code = ec2ErrorCode(error);
  if (code !== undefined && THROTTLING_CODES.has(code)) return true;
  return (error as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode === 429;
}

/** The id (instance) is unknown to EC2: gone, or not yet visible (eventual consistency). */
export function isInstanceNotFound(error: unknown): boolean {
  return ec2ErrorCode(error) === 'InvalidInstanceID.NotFound';
}

const CAPACITY_CODES = new Set([
  'InsufficientInstanceCapacity',
  'InsufficientHostCapacity',
  'InsufficientCapacityOnHost',
  'InsufficientCapacity',
  'Unsupported',
  'UnavailableHostRequirements',
  'IncompatibleHostRequirements',
  'InvalidHostId.NotFound',
  'InvalidHostID.NotFound',
  'InvalidHostState',
]);

const QUOTA_CODES = new Set(['VcpuLimitExceeded', 'InstanceLimitExceeded', 'HostLimitExceeded']);

/** What the driver was doing: decides the Nova exception an EC2 code becomes. */
export type Ec2Operation =
  | 'spawn'
  | 'destroy'
  | 'reboot'
  | 'power_off'
  | 'power_on'
  | 'suspend'
  | 'resume'
  | 'snapshot'
  | 'attach_volume'
  | 'detach_volume'
  | 'attach_interface'
  | 'detach_interface'
  | 'migrate_disk_and_power_off'
  | 'finish_migration'
  | 'finish_revert_migration'
  | 'soft_delete'
  | 'restore'
  | 'trigger_crash_dump'
  | 'get_console_output'
  | 'get_info'
  | 'get_available_resource';

/** The Nova exception an operation raises for a failure that has no better name. */
const OPERATION_FAILURE: Record<Ec2Operation, string> = {
  spawn: 'BuildAbortException',
  destroy: 'InstanceTerminationFailure',
  reboot: 'InstanceRebootFailure',
  power_off: 'InstancePowerOffFailure',
  power_on: 'InstancePowerOnFailure',
  suspend: 'InstanceSuspendFailure',
  resume: 'InstanceResumeFailure',
  snapshot: 'InstanceSnapshotFailure',
  attach_volume: 'VolumeAttachFailed',
  detach_volume: 'VolumeDetachFailed',
  attach_interface: 'InterfaceAttachFailed',
  detach_interface: 'InterfaceDetachFailed',
  migrate_disk_and_power_off: 'ResizeError',
  finish_migration: 'ResizeError',
  finish_revert_migration: 'ResizeError',
  soft_delete: 'InstancePowerOffFailure',
  restore: 'InstancePowerOnFailure',
  trigger_crash_dump: 'TriggerCrashDumpNotSupported',
  get_console_output: 'ConsoleNotAvailable',
  get_info: 'HypervisorUnavailable',
  get_available_resource: 'HypervisorUnavailable',
};

/**
 * A quota (not capacity) refusal. Like ComputeResourcesUnavailable it lets the build try another
 * node; `node` is the node whose inventory EC2 just contradicted, and `vcpuLimit` the limit EC2
 * reported (VcpuLimitExceeded says "… your current vCPU limit of N …"), when it did.
 */
export class Ec2QuotaExceededError extends ComputeResourcesUnavailableError {
  readonly ec2Code: string;
  readonly vcpuLimit: number | null;
  /** The resource tracker should refresh this node's inventory (Ec2Driver lowered it). */
  readonly refreshInventory = true;

  constructor(node: string, ec2Code: string, vcpuLimit: number | null) {
    super(node, [
      `EC2 ${ec2Code}: the account's quota for node ${node} is exhausted` +
        (vcpuLimit === null ? '' : ` (vCPU limit ${vcpuLimit})`),
    ]);
    this.ec2Code = ec2Code;
    this.vcpuLimit = vcpuLimit;
  }
}

/** EC2 had no capacity for the launch: Nova's reschedulable ComputeResourcesUnavailable. */
export class Ec2CapacityError extends ComputeResourcesUnavailableError {
  readonly ec2Code: string;

  constructor(node: string, ec2Code: string) {
    super(node, [`EC2 ${ec2Code}: no capacity for this launch on node ${node}`]);
    this.ec2Code = ec2Code;
  }
}

/** The vCPU limit in a VcpuLimitExceeded message, if it names one. */
export function vcpuLimitFrom(message: string | undefined): number | null {
  const match = /vCPU limit of (\d+)/i.exec(message ?? '');
  return match ? Number(match[1]) : null;
}

/** Removes every secret (and its base64 form) from a message. */
export function redact(message: string, secrets: readonly (string | null | undefined)[]): string {
  let out = message;
  for (const secret of secrets) {
    if (!secret || secret.length < 4) continue;
    for (const form of [secret, Buffer.from(secret, 'utf8').toString('base64')]) {
      out = out.split(form).join('[redacted]');
    }
  }
  return out;
}

export interface TranslateContext {
  operation: Ec2Operation;
  instanceId?: string;
  node?: string | null;
  /** Values that must not appear in the message (admin password, user data, file contents). */
  secrets?: readonly (string | null | undefined)[];
}

function describe(error: unknown, secrets: TranslateContext['secrets']): string {
  const code = ec2ErrorCode(error) ?? 'UnknownError';
  const message = error instanceof Error ? error.message : String(error);
  return `EC2 ${code}: ${redact(message, secrets ?? [])}`;
}

/**
 * The compute-layer error for an EC2 failure. Throttling, 5xx and network errors come back
 * unchanged: they are infrastructure faults the compute layer retries (SQS redelivery).
 */
export function translateEc2Error(error: unknown, context: TranslateContext): unknown {
  const code = ec2ErrorCode(error);
  const status = (error as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
  if (isThrottling(error) || (status !== undefined && status >= 500) || code === undefined) {
    return error;
  }
  if (error instanceof DriverError || error instanceof NotSupportedError) return error;
  const { operation } = context;
  const who = context.instanceId === undefined ? '' : ` for instance ${context.instanceId}`;
  const subject = context.instanceId === undefined ? '' : ` ${context.instanceId}`;
  const node = context.node ?? '(unknown node)';
  const cause = { cause: error };
  const failure = OPERATION_FAILURE[operation];

  if (CAPACITY_CODES.has(code)) {
    // Only a launch can go elsewhere; a stopped instance that cannot start stays where it is.
    return operation === 'spawn'
      ? new Ec2CapacityError(node, code)
      : new DriverError(failure, `${describe(error, context.secrets)}${who}`, cause);
  }
  if (QUOTA_CODES.has(code)) {
    const limit = vcpuLimitFrom(error instanceof Error ? error.message : undefined);
    return operation === 'spawn'
      ? new Ec2QuotaExceededError(node, code, limit)
      : new DriverError(failure, `${describe(error, context.secrets)}${who}`, cause);
  }
  switch (code) {
    case 'IncorrectInstanceState':
    case 'IncorrectState':
      return new DriverError(
        'InstanceInvalidState',
        `Instance${subject} is not in a state that allows ${operation} on EC2 ` +
          `(${describe(error, context.secrets)}). Retry once the instance has finished its current transition.`,
        cause,
      );
    case 'UnsupportedHibernationConfiguration':
      return new NotSupportedError(
        EC2_DRIVER_NAME,
        operation,
        `the instance${subject} cannot hibernate (it was not launched ` +
          'hibernation-enabled, or its type, AMI or root volume does not allow it)',
      );
    case 'InvalidInstanceID.NotFound':
    case 'InvalidInstanceID.Malformed':
      return context.instanceId === undefined
        ? new DriverError('InstanceNotFound', describe(error, context.secrets), cause)
        : new InstanceNotFoundError(context.instanceId);
    case 'InvalidAMIID.NotFound':
    case 'InvalidAMIID.Malformed':
    case 'InvalidAMIID.Unavailable':
      return new DriverError('ImageNotFound', describe(error, context.secrets), cause);
    case 'InvalidVolume.NotFound':
      return new DriverError('VolumeNotFound', describe(error, context.secrets), cause);
    case 'InvalidDevice.InUse':
      return new DriverError('DevicePathInUse', describe(error, context.secrets), cause);
    case 'UnauthorizedOperation':
    case 'AuthFailure':
    case 'OptInRequired':
    case 'Blocked':
    case 'PendingVerification':
      return new DriverError('VirtDriverNotReady', describe(error, context.secrets), cause);
    default:
      return new DriverError(failure, `${describe(error, context.secrets)}${who}`, cause);
  }
}
