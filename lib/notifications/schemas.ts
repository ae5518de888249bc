// zod schemas of the published `detail` (CONTRACT §2). Tests check real published events
// against them, and the JSON-schema registry is generated from them (`z.toJSONSchema`), so they
// describe the wire, not the TypeScript types: every promised field is required.
//
// The envelope is strict (an extra top-level field would be an unannounced contract change);
// payloads are loose, because Nova's `**kw` extras (image_name, volume_id, ...) ride in them.
import { z } from 'zod';
import { TaskState, VmState } from '../compute/states.ts';

/** `YYYY-MM-DD hh:mm:ss.ssssss`, UTC. */
export const LEGACY_TIMESTAMP = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$/;

const legacyTime = z.string().regex(LEGACY_TIMESTAMP);
/** A time that may be unset: then `""`. */
const legacyTimeOrUnset = z.union([z.literal(''), legacyTime]);

const vmState = z.enum(VmState);
const taskState = z.enum(TaskState);

export const fixedIpSchema = z.strictObject({
  address: z.string(),
  floating_ips: z.array(z.string()),
  label: z.string(),
  meta: z.record(z.string(), z.string()),
  type: z.literal('fixed'),
  version: z.union([z.literal(4), z.literal(6)]),
  vif_mac: z.string(),
});

export const legacyInstancePayloadSchema = z.looseObject({
  tenant_id: z.string(),
  user_id: z.string(),
  instance_id: z.string(),
  display_name: z.string(),
  reservation_id: z.string(),
  hostname: z.string(),
  instance_type: z.string(),
  instance_type_id: z.int(),
  instance_flavor_id: z.string(),
  architecture: z.string().nullable(),
  memory_mb: z.int().nonnegative(),
  disk_gb: z.int().nonnegative(),
  vcpus: z.int().nonnegative(),
  root_gb: z.int().nonnegative(),
  ephemeral_gb: z.int().nonnegative(),
  host: z.string().nullable(),
  node: z.string().nullable(),
  availability_zone: z.string().nullable(),
  cell_name: z.string(),
  created_at: legacyTime,
  terminated_at: legacyTimeOrUnset,
  deleted_at: legacyTimeOrUnset,
  launched_at: legacyTimeOrUnset,
  image_ref_url: z.string(),
  os_type: z.string().nullable(),
  kernel_id: z.string(),
  ramdisk_id: z.string(),
  state: vmState,
  state_description: z.union([z.literal(''), taskState]),
  // Nova: an int, or '' when 0 or unset.
  progress: z.union([z.literal(''), z.int().min(1).max(100)]),
  access_ip_v4: z.string().nullable(),
  access_ip_v6: z.string().nullable(),
  fixed_ips: z.array(fixedIpSchema).optional(),
  image_meta: z.record(z.string(), z.string()),
  metadata: z.record(z.string(), z.string()),
});

const bandwidth = z.record(
  z.string(),
  z.strictObject({ bw_in: z.int().nonnegative(), bw_out: z.int().nonnegative() }),
);

export const updatePayloadSchema = legacyInstancePayloadSchema.extend({
  old_state: vmState,
  state: vmState,
  old_task_state: taskState.nullable(),
  new_task_state: taskState.nullable(),
  audit_period_beginning: legacyTime,
  audit_period_ending: legacyTime,
  bandwidth,
  image_metadata: z.array(z.strictObject({ key: z.string(), value: z.string() })),
  old_display_name: z.string().optional(),
});

export const existsPayloadSchema = legacyInstancePayloadSchema.extend({
  audit_period_beginning: legacyTime,
  audit_period_ending: legacyTime,
  bandwidth,
  /**
   * The periodic audit's exists only: the shard whose `exists.audit` manifest counts it (a node
   * name or `segment-<k>`). Absent from the mid-period exists of rebuild, rescue, resize, shelve.
   */
  audit_shard: z.string().min(1).optional(),
});

export const errorPayloadSchema = legacyInstancePayloadSchema.extend({
  exception: z.string().min(1),
  message: z.string().max(255),
  code: z.int(),
});

export const volumePayloadSchema = legacyInstancePayloadSchema.extend({
  volume_id: z.string().min(1),
});

export const apiFaultPayloadSchema = z.strictObject({
  operation: z.string(),
  instance_id: z.string().nullable(),
  exception: z.string().min(1),
  status: z.int(),
});

/**
 * Stratus's per-shard audit manifest (Nova's task_log entry, CONTRACT §2), published once the
 * shard's last exists was accepted: billing closes a period when every expected shard's
 * manifest is in and its exists match `task_items` and `checksum`.
 */
export const existsAuditPayloadSchema = z.strictObject({
  period_beginning: legacyTime,
  period_ending: legacyTime,
  /** A node name, or `segment-<k>` for the instances that have no node. */
  shard: z.string().min(1),
  /** How many shards the period's audit covers (manifests to wait for). */
  expected_shards: z.int().positive(),
  state: z.literal('DONE'),
  /** How many exists the shard published for the period. */
  task_items: z.int().nonnegative(),
  /** Instances the shard could not report (Nova counts and goes on). */
  errors: z.int().nonnegative(),
  message: z.string(),
  /** SHA-256 (hex) of the shard's exists message ids, sorted, joined with newlines. */
  checksum: z.string().regex(/^[0-9a-f]{64}$/),
});

type Priority = 'INFO' | 'ERROR';

function envelopeSchema<P extends z.ZodType>(opts: {
  eventType: z.ZodType<string>;
  priority: Priority;
  publisherService: 'compute' | 'api';
  payload: P;
}) {
  return z.strictObject({
    message_id: z.uuid(),
    publisher_id: z.string().regex(new RegExp(`^${opts.publisherService}\\.\\S+$`)),
    event_type: opts.eventType,
    priority: z.literal(opts.priority),
    timestamp: legacyTime,
    request_id: z.string().min(1),
    command_id: z.string().min(1),
    payload: opts.payload,
  });
}

const computeEvent = <P extends z.ZodType>(eventType: z.ZodType<string>, payload: P) =>
  envelopeSchema({ eventType, priority: 'INFO', publisherService: 'compute', payload });

export const instanceNotificationSchema = computeEvent(
  z.string().regex(/^compute\.instance\./),
  legacyInstancePayloadSchema,
);
export const updateNotificationSchema = computeEvent(
  z.literal('compute.instance.update'),
  updatePayloadSchema,
);
export const existsNotificationSchema = computeEvent(
  z.literal('compute.instance.exists'),
  existsPayloadSchema,
);
export const existsAuditNotificationSchema = computeEvent(
  z.literal('compute.instance.exists.audit'),
  existsAuditPayloadSchema,
);
export const volumeNotificationSchema = computeEvent(
  z.enum(['compute.instance.volume.attach', 'compute.instance.volume.detach']),
  volumePayloadSchema,
);
export const errorNotificationSchema = envelopeSchema({
  eventType: z.string().regex(/^compute\.instance\.[a-z_.]+\.error$/),
  priority: 'ERROR',
  publisherService: 'compute',
  payload: errorPayloadSchema,
});
export const apiFaultNotificationSchema = envelopeSchema({
  eventType: z.literal('api.fault'),
  priority: 'ERROR',
  publisherService: 'api',
  payload: apiFaultPayloadSchema,
});
/** Any envelope: for event types without a payload schema of their own. */
export const notificationEnvelopeSchema = z.strictObject({
  message_id: z.uuid(),
  publisher_id: z.string().regex(/^[a-z_]+\.\S+$/),
  event_type: z.string().min(1),
  priority: z.enum(['INFO', 'ERROR']),
  timestamp: legacyTime,
  request_id: z.string().min(1),
  command_id: z.string().min(1),
  payload: z.record(z.string(), z.unknown()),
});

/** The schema a published `detail` of this event type must satisfy. */
export function notificationSchemaFor(eventType: string): z.ZodType {
  switch (eventType) {
    case 'api.fault':
      return apiFaultNotificationSchema;
    case 'compute.instance.update':
      return updateNotificationSchema;
    case 'compute.instance.exists':
      return existsNotificationSchema;
    case 'compute.instance.exists.audit':
      return existsAuditNotificationSchema;
    case 'compute.instance.volume.attach':
    case 'compute.instance.volume.detach':
      return volumeNotificationSchema;
  }
  if (eventType.startsWith('compute.instance.')) {
    return eventType.endsWith('.error') ? errorNotificationSchema : instanceNotificationSchema;
  }
  return notificationEnvelopeSchema;
}

/** Throws a ZodError when the notification's `detail` does not match its event's schema. */
export function assertValidDetail(detail: { event_type: string }): void {
  notificationSchemaFor(detail.event_type).parse(detail);
}
