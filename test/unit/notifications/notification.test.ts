import { describe, expect, it } from 'vitest';
import { ErrorCode, StratusError } from '../../../lib/errors.ts';
import { eventMessageId } from '../../../lib/notifications/message-id.ts';
import {
  apiFaultNotification,
  describeError,
  envelopeOf,
  errorNotification,
  instanceNotification,
} from '../../../lib/notifications/notification.ts';
import { instancePayload } from '../../../lib/notifications/payload.ts';
import { assertValidDetail } from '../../../lib/notifications/schemas.ts';
import { INSTANCE_ID, buildInstance } from './fixtures.ts';

const NOW = new Date('2024-03-10T10:30:00.250Z');
const base = { host: 'stratus', commandId: 'cmd-1', requestId: 'req-1', now: NOW };

describe('instanceNotification', () => {
  it('builds the envelope around the legacy payload', () => {
    const n = instanceNotification({
      ...base,
      instance: buildInstance(),
      eventType: 'compute.instance.create.end',
      extra: { message: 'Success' },
      includeFixedIps: true,
    });
    expect(n).toEqual({
      message_id: eventMessageId('cmd-1', 'compute.instance.create.end'),
      publisher_id: 'compute.stratus',
      event_type: 'compute.instance.create.end',
      priority: 'INFO',
      timestamp: '2024-03-10 10:30:00.250000',
      request_id: 'req-1',
      command_id: 'cmd-1',
      payload: {
        ...instancePayload(buildInstance(), { includeFixedIps: true }),
        message: 'Success',
      },
      instance_id: INSTANCE_ID,
    });
    expect(() => assertValidDetail(envelopeOf(n))).not.toThrow();
  });

  it('is deterministic: the same inputs give the same message_id and content', () => {
    const input = {
      ...base,
      instance: buildInstance(),
      eventType: 'compute.instance.power_off.start',
    };
    expect(instanceNotification(input)).toEqual(instanceNotification(input));
  });

  it('merges extra keys last, so they override instance fields (Nova **kw)', () => {
    const n = instanceNotification({
      ...base,
      instance: buildInstance(),
      eventType: 'compute.instance.rebuild.start',
      extra: { image_ref_url: 'old-image', image_name: 'cirros' },
    });
    expect(n.payload.image_ref_url).toBe('old-image');
    expect(n.payload.image_name).toBe('cirros');
  });

  it('uses the discriminator in the message id', () => {
    const input = { ...base, instance: buildInstance(), eventType: 'compute.instance.exists' };
    expect(instanceNotification({ ...input, discriminator: 'x' }).message_id).toBe(
      eventMessageId('cmd-1', 'compute.instance.exists', 'x'),
    );
  });

  it('is ERROR priority exactly for .error event types', () => {
    const instance = buildInstance();
    const priority = (eventType: string) =>
      instanceNotification({ ...base, instance, eventType }).priority;
    expect(priority('compute.instance.create.error')).toBe('ERROR');
    expect(priority('compute.instance.create.end')).toBe('INFO');
    expect(priority('compute.instance.error.start')).toBe('INFO');
  });

  it('refuses to carry a secret', () => {
    expect(() =>
      instanceNotification({
        ...base,
        instance: buildInstance(),
        eventType: 'compute.instance.create.start',
        extra: { admin_password: 'hunter2' },
      }),
    ).toThrow(/admin_password/);
  });
});

describe('errorNotification', () => {
  it('adds exception, message and code to the payload with priority ERROR', () => {
    const n = errorNotification({
      ...base,
      instance: buildInstance(),
      action: 'reboot',
      error: new StratusError(ErrorCode.DriverError, 'the hypervisor said no'),
    });
    expect(n.event_type).toBe('compute.instance.reboot.error');
    expect(n.priority).toBe('ERROR');
    expect(n.message_id).toBe(eventMessageId('cmd-1', 'compute.instance.reboot.error'));
    expect(n.payload).toMatchObject({
      exception: 'DriverError',
      message: 'the hypervisor said no',
      code: 500,
      instance_id: INSTANCE_ID,
    });
    expect(() => assertValidDetail(envelopeOf(n))).not.toThrow();
  });

  it('truncates the message to 255 characters', () => {
    const n = errorNotification({
      ...base,
      instance: buildInstance(),
      action: 'create',
      error: { exception: 'BuildAbort', message: 'x'.repeat(1000), code: 500 },
    });
    expect(n.payload.message).toBe('x'.repeat(255));
    expect(n.payload.exception).toBe('BuildAbort');
  });

  it('lets the error fields win over extra keys of the same name', () => {
    const n = errorNotification({
      ...base,
      instance: buildInstance(),
      action: 'resize',
      extra: { code: 200, new_instance_type: 'm1.large' },
      error: { exception: 'NotSupported', message: 'no', code: 501 },
    });
    expect(n.payload.code).toBe(501);
    expect(n.payload.new_instance_type).toBe('m1.large');
  });
});

describe('describeError', () => {
  it("follows Nova's exception_to_dict", () => {
    expect(describeError(new StratusError(ErrorCode.InstanceIsLocked, 'locked'))).toEqual({
      exception: 'InstanceIsLocked',
      message: 'locked',
      code: 409,
    });
    expect(describeError(new TypeError('boom'))).toEqual({
      exception: 'TypeError',
      message: 'boom',
      code: 500,
    });
    expect(describeError(new RangeError(''))).toEqual({
      exception: 'RangeError',
      message: 'RangeError',
      code: 500,
    });
    expect(describeError('a string')).toEqual({
      exception: 'InternalError',
      message: 'InternalError',
      code: 500,
    });
  });
});

describe('apiFaultNotification', () => {
  it('is an ERROR from api.<host> with the CONTRACT payload', () => {
    const n = apiFaultNotification({
      ...base,
      operation: 'reboot_instance',
      instanceId: INSTANCE_ID,
      exception: 'InstanceInvalidState',
      status: 409,
    });
    expect(n).toEqual({
      message_id: eventMessageId('cmd-1', 'api.fault'),
      publisher_id: 'api.stratus',
      event_type: 'api.fault',
      priority: 'ERROR',
      timestamp: '2024-03-10 10:30:00.250000',
      request_id: 'req-1',
      command_id: 'cmd-1',
      payload: {
        operation: 'reboot_instance',
        instance_id: INSTANCE_ID,
        exception: 'InstanceInvalidState',
        status: 409,
      },
      instance_id: INSTANCE_ID,
    });
    expect(() => assertValidDetail(envelopeOf(n))).not.toThrow();
  });

  it('has no resource when the command named no instance', () => {
    const n = apiFaultNotification({
      ...base,
      operation: 'build_and_run_instance',
      instanceId: null,
      exception: 'InvalidCommand',
      status: 400,
    });
    expect(n.payload.instance_id).toBeNull();
    expect('instance_id' in n).toBe(false);
  });
});

describe('envelopeOf', () => {
  it('is exactly the CONTRACT envelope, without routing fields', () => {
    const n = instanceNotification({
      ...base,
      instance: buildInstance(),
      eventType: 'compute.instance.pause.end',
    });
    expect(Object.keys(envelopeOf(n))).toEqual([
      'message_id',
      'publisher_id',
      'event_type',
      'priority',
      'timestamp',
      'request_id',
      'command_id',
      'payload',
    ]);
  });
});
