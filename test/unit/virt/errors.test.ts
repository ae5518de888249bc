import { describe, expect, it } from 'vitest';
import { ErrorCode, StratusError } from '../../../lib/errors.ts';
import {
  DriverError,
  NotSupportedError,
  isDriverError,
  isNotSupported,
} from '../../../lib/virt/errors.ts';

describe('NotSupportedError', () => {
  it('is a 501 StratusError naming the driver and the Nova method', () => {
    const error = new NotSupportedError('fake', 'live_migration');
    expect(error).toBeInstanceOf(StratusError);
    expect(error.code).toBe(ErrorCode.NotSupported);
    expect(error.status).toBe(501);
    expect(error.message).toBe('The fake driver does not support live_migration');
    expect(error.driver).toBe('fake');
    expect(error.method).toBe('live_migration');
    expect(isNotSupported(error)).toBe(true);
  });

  it('appends a reason when one is given', () => {
    const error = new NotSupportedError('ec2', 'pause', 'EC2 cannot freeze a guest in memory');
    expect(error.message).toBe(
      'The ec2 driver does not support pause: EC2 cannot freeze a guest in memory',
    );
  });
});

describe('DriverError', () => {
  it('carries the Nova exception name and answers 500 for platform failures', () => {
    const cause = new Error('InsufficientInstanceCapacity');
    const error = new DriverError('ComputeResourcesUnavailable', 'no capacity', { cause });
    expect(error.novaException).toBe('ComputeResourcesUnavailable');
    expect(error.code).toBe(ErrorCode.DriverError);
    expect(error.status).toBe(500);
    expect(error.cause).toBe(cause);
    expect(isDriverError(error)).toBe(true);
    expect(isDriverError(error, 'ComputeResourcesUnavailable')).toBe(true);
    expect(isDriverError(error, 'InstanceExists')).toBe(false);
  });

  it.each([
    ['InstanceExists', ErrorCode.InstanceExists],
    ['InstanceNotRunning', ErrorCode.InstanceInvalidState],
    ['InstanceInvalidState', ErrorCode.InstanceInvalidState],
    ['DevicePathInUse', ErrorCode.InstanceInvalidState],
    ['InterfaceAttachFailed', ErrorCode.InstanceInvalidState],
    ['InterfaceDetachFailed', ErrorCode.InstanceInvalidState],
  ])('answers %s, a conflict with the guest state, with 409', (name, code) => {
    const error = new DriverError(name, 'conflict');
    expect(error.code).toBe(code);
    expect(error.status).toBe(409);
  });

  it('is not mistaken for NotSupported', () => {
    expect(isNotSupported(new DriverError('HypervisorUnavailable', 'down'))).toBe(false);
    expect(isDriverError(new NotSupportedError('fake', 'rebuild'))).toBe(false);
  });
});
