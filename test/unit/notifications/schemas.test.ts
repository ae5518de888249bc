import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { existsMessageId } from '../../../lib/notifications/message-id.ts';
import {
  apiFaultNotification,
  envelopeOf,
  errorNotification,
  instanceNotification,
} from '../../../lib/notifications/notification.ts';
import {
  apiFaultNotificationSchema,
  errorNotificationSchema,
  existsAuditNotificationSchema,
  existsNotificationSchema,
  instanceNotificationSchema,
  legacyInstancePayloadSchema,
  notificationEnvelopeSchema,
  notificationSchemaFor,
  updateNotificationSchema,
  volumeNotificationSchema,
} from '../../../lib/notifications/schemas.ts';
import { buildInstance } from './fixtures.ts';

const NOW = new Date('2024-03-10T10:30:00Z');
const base = { host: 'stratus', commandId: 'cmd-1', requestId: 'req-1', now: NOW };
const detail = (eventType: string, extra?: Record<string, unknown>) =>
  envelopeOf(instanceNotification({ ...base, instance: buildInstance(), eventType, extra }));

const CONTRACT_PAYLOAD_FIELDS = [
  'tenant_id',
  'user_id',
  'instance_id',
  'display_name',
  'reservation_id',
  'hostname',
  'instance_type',
  'instance_type_id',
  'instance_flavor_id',
  'architecture',
  'memory_mb',
  'disk_gb',
  'vcpus',
  'root_gb',
  'ephemeral_gb',
  'host',
  'node',
  'availability_zone',
  'cell_name',
  'created_at',
  'launched_at',
  'terminated_at',
  'deleted_at',
  'image_ref_url',
  'image_meta',
  'os_type',
  'kernel_id',
  'ramdisk_id',
  'state',
  'state_description',
  'progress',
  'access_ip_v4',
  'access_ip_v6',
  'metadata',
];

describe('notificationSchemaFor', () => {
  it('picks the schema of each event family', () => {
    expect(notificationSchemaFor('api.fault')).toBe(apiFaultNotificationSchema);
    expect(notificationSchemaFor('compute.instance.update')).toBe(updateNotificationSchema);
    expect(notificationSchemaFor('compute.instance.exists')).toBe(existsNotificationSchema);
    expect(notificationSchemaFor('compute.instance.exists.audit')).toBe(
      existsAuditNotificationSchema,
    );
    expect(notificationSchemaFor('compute.instance.volume.attach')).toBe(volumeNotificationSchema);
    expect(notificationSchemaFor('compute.instance.create.error')).toBe(errorNotificationSchema);
    expect(notificationSchemaFor('compute.instance.create.start')).toBe(instanceNotificationSchema);
    expect(notificationSchemaFor('something.else')).toBe(notificationEnvelopeSchema);
  });
});

describe('instance payload schema', () => {
  it('requires every CONTRACT field', () => {
    const payload = detail('compute.instance.create.start').payload;
    for (const field of CONTRACT_PAYLOAD_FIELDS) {
      const { [field]: _dropped, ...rest } = payload;
      expect(legacyInstancePayloadSchema.safeParse(rest).success, field).toBe(false);
    }
  });

  it('keeps Nova extras such as image_name', () => {
    const d = detail('compute.instance.create.start', { image_name: 'cirros' });
    const parsed = instanceNotificationSchema.parse(d) as { payload: Record<string, unknown> };
    expect(parsed.payload.image_name).toBe('cirros');
  });

  it('rejects non-legacy timestamps and a 0 progress', () => {
    const d = detail('compute.instance.create.end');
    const withPayload = (p: Record<string, unknown>) => ({ ...d, payload: { ...d.payload, ...p } });
    expect(
      instanceNotificationSchema.safeParse(withPayload({ launched_at: NOW.toISOString() })).success,
    ).toBe(false);
    expect(instanceNotificationSchema.safeParse(withPayload({ launched_at: null })).success).toBe(
      false,
    );
    expect(instanceNotificationSchema.safeParse(withPayload({ progress: 0 })).success).toBe(false);
    expect(instanceNotificationSchema.safeParse(withPayload({ state: 'ACTIVE' })).success).toBe(
      false,
    );
  });
});

describe('envelope schema', () => {
  const d = detail('compute.instance.reboot.end');

  it('accepts a built envelope and refuses any drift from the CONTRACT', () => {
    expect(instanceNotificationSchema.safeParse(d).success).toBe(true);
    const drift: Record<string, unknown>[] = [
      { ...d, extra_field: 1 },
      { ...d, instance_id: 'x' },
      { ...d, priority: 'ERROR' },
      { ...d, priority: 'info' },
      { ...d, timestamp: NOW.toISOString() },
      { ...d, publisher_id: 'api.stratus' },
      { ...d, message_id: 'not-a-uuid' },
      { ...d, request_id: '' },
    ];
    for (const bad of drift) expect(instanceNotificationSchema.safeParse(bad).success).toBe(false);
    const { command_id: _c, ...noCommand } = d;
    expect(instanceNotificationSchema.safeParse(noCommand).success).toBe(false);
  });
});

describe('error, api.fault, exists and audit schemas', () => {
  it('checks error notifications', () => {
    const n = envelopeOf(
      errorNotification({
        ...base,
        instance: buildInstance(),
        action: 'create',
        error: { exception: 'BuildAbort', message: 'boom', code: 500 },
      }),
    );
    expect(errorNotificationSchema.safeParse(n).success).toBe(true);
    expect(errorNotificationSchema.safeParse({ ...n, priority: 'INFO' }).success).toBe(false);
    const long = { ...n, payload: { ...n.payload, message: 'x'.repeat(256) } };
    expect(errorNotificationSchema.safeParse(long).success).toBe(false);
  });

  it('checks api.fault notifications', () => {
    const n = envelopeOf(
      apiFaultNotification({
        ...base,
        operation: 'stop_instance',
        instanceId: null,
        exception: 'Forbidden',
        status: 403,
      }),
    );
    expect(apiFaultNotificationSchema.safeParse(n).success).toBe(true);
    expect(
      apiFaultNotificationSchema.safeParse({ ...n, payload: { ...n.payload, url: '/x' } }).success,
    ).toBe(false);
    expect(
      apiFaultNotificationSchema.safeParse({ ...n, publisher_id: 'compute.stratus' }).success,
    ).toBe(false);
  });

  it('checks exists and exists.audit payloads', () => {
    const instance = buildInstance();
    const exists = envelopeOf({
      ...instanceNotification({
        ...base,
        instance,
        eventType: 'compute.instance.exists',
        extra: {
          audit_period_beginning: '2024-03-10 09:00:00.000000',
          audit_period_ending: '2024-03-10 10:00:00.000000',
          bandwidth: {},
        },
      }),
      message_id: existsMessageId(instance.instance_id, instance.launched_at, NOW, NOW),
    });
    expect(existsNotificationSchema.safeParse(exists).success).toBe(true);
    const { bandwidth: _b, ...noBandwidth } = exists.payload;
    expect(existsNotificationSchema.safeParse({ ...exists, payload: noBandwidth }).success).toBe(
      false,
    );

    const audit = {
      ...exists,
      event_type: 'compute.instance.exists.audit',
      payload: {
        period_beginning: '2024-03-10 09:00:00.000000',
        period_ending: '2024-03-10 10:00:00.000000',
        shard: 'fake-node-1',
        expected_shards: 2,
        state: 'DONE',
        task_items: 10,
        errors: 0,
        message: 'Instance usage audit ran for shard fake-node-1',
        checksum: 'ab'.repeat(32),
      },
    };
    expect(existsAuditNotificationSchema.safeParse(audit).success).toBe(true);
    const { checksum: _c, ...noChecksum } = audit.payload;
    expect(existsAuditNotificationSchema.safeParse({ ...audit, payload: noChecksum }).success).toBe(
      false,
    );
    expect(
      existsAuditNotificationSchema.safeParse({
        ...audit,
        payload: { ...audit.payload, state: 'RUNNING' },
      }).success,
    ).toBe(false);
  });
});

describe('JSON Schema export', () => {
  it('produces draft-4 schemas for the registry', () => {
    for (const type of ['compute.instance.update', 'api.fault', 'compute.instance.create.error']) {
      const json = z.toJSONSchema(notificationSchemaFor(type), { target: 'draft-4' });
      expect(json).toHaveProperty('properties.payload');
      expect(json).toHaveProperty('required', expect.arrayContaining(['message_id', 'payload']));
    }
  });
});
