// The oslo-style envelope (CONTRACT §2) and the builders of instance, error and api.fault
// notifications. The builders are pure: the caller passes the clock and the ids, so a retried
// command rebuilds byte-identical notifications.
import type { Instance } from '../compute/instance.ts';
import { isStratusError, truncateMessage } from '../errors.ts';
import type { AuditPeriod } from './audit-period.ts';
import { eventMessageId, existsMessageId } from './message-id.ts';
import { assertNoSecrets, instancePayload } from './payload.ts';
import { legacyTimestamp } from './time.ts';

export type NotificationPriority = 'INFO' | 'ERROR';

/** The envelope CONTRACT §2 promises as `detail`. */
export interface NotificationEnvelope<P = Record<string, unknown>> {
  message_id: string;
  publisher_id: string;
  event_type: string;
  priority: NotificationPriority;
  /** Legacy format, UTC: `YYYY-MM-DD hh:mm:ss.ssssss`. */
  timestamp: string;
  request_id: string;
  command_id: string;
  payload: P;
}

/**
 * A notification ready to publish: the envelope plus the instance it is about, which becomes the
 * EventBridge `resources` entry. `instance_id` is routing data, not part of `detail`.
 */
export interface Notification<P = Record<string, unknown>> extends NotificationEnvelope<P> {
  instance_id?: string;
}

/** Exactly the envelope that goes on the wire as `detail` (drops routing-only fields). */
export function envelopeOf<P>(notification: Notification<P>): NotificationEnvelope<P> {
  const { message_id, publisher_id, event_type, priority, timestamp, request_id, command_id } =
    notification;
  return {
    message_id,
    publisher_id,
    event_type,
    priority,
    timestamp,
    request_id,
    command_id,
    payload: notification.payload,
  };
}

export function priorityFor(eventType: string): NotificationPriority {
  return eventType.endsWith('.error') || eventType === 'api.fault' ? 'ERROR' : 'INFO';
}

export interface InstanceNotificationInput {
  instance: Instance;
  /** e.g. `compute.instance.create.start`. */
  eventType: string;
  /** The compute service name (config `host`); the publisher is `compute.<host>`. */
  host: string;
  commandId: string;
  requestId: string;
  now: Date;
  /** Nova's `**kw`: merged last, so it overrides instance fields (e.g. `image_name`). */
  extra?: Record<string, unknown>;
  includeFixedIps?: boolean;
  /** Needed when one command emits the same event type more than once (see eventMessageId). */
  discriminator?: string | number;
}

export function instanceNotification(input: InstanceNotificationInput): Notification {
  const payload: Record<string, unknown> = {
    ...instancePayload(input.instance, { includeFixedIps: input.includeFixedIps }),
    ...input.extra,
  };
  assertNoSecrets(payload);
  return {
    message_id: eventMessageId(input.commandId, input.eventType, input.discriminator),
    publisher_id: `compute.${input.host}`,
    event_type: input.eventType,
    priority: priorityFor(input.eventType),
    timestamp: legacyTimestamp(input.now),
    request_id: input.requestId,
    command_id: input.commandId,
    payload,
    instance_id: input.instance.instance_id,
  };
}

export interface ExistsNotificationInput extends Omit<
  InstanceNotificationInput,
  'eventType' | 'discriminator' | 'includeFixedIps'
> {
  /** The audit period the event reports: a completed one, or (mid-period) the current one. */
  period: AuditPeriod;
}

/**
 * `compute.instance.exists` (Nova's notify_usage_exists): the instance's usage over `period`,
 * + `audit_period_beginning/ending` and `bandwidth` (Stratus meters none: `{}`). Its message_id
 * is the natural key of CONTRACT §2, so the periodic audit, its retries and re-runs, and the
 * mid-period emitters all agree on the id of the same report.
 */
export function existsNotification(input: ExistsNotificationInput): Notification {
  const { period, extra, ...rest } = input;
  const n = instanceNotification({
    ...rest,
    eventType: 'compute.instance.exists',
    extra: {
      audit_period_beginning: legacyTimestamp(period.beginning),
      audit_period_ending: legacyTimestamp(period.ending),
      bandwidth: {},
      ...extra,
    },
  });
  return {
    ...n,
    message_id: existsMessageId(
      input.instance.instance_id,
      input.instance.launched_at,
      period.beginning,
      period.ending,
    ),
  };
}

/** The actions Nova has a legacy `compute.instance.<action>.error` for (nova/rpc.py whitelist). */
export const ERROR_NOTIFICATION_ACTIONS = ['create', 'reboot', 'rebuild', 'resize'] as const;
export type ErrorNotificationAction = (typeof ERROR_NOTIFICATION_ACTIONS)[number];

/** What an error notification and an api.fault say about a failure. */
export interface ErrorInfo {
  /** The exception class or Stratus error code, e.g. `DriverError`. */
  exception: string;
  /** Human-readable; truncated to 255 characters as Nova does. */
  message: string;
  /** HTTP-like status. */
  code: number;
}

/**
 * Nova's `exception_to_dict`: a Stratus error gives its code, message and status; anything else
 * gives its class name, its message (or the class name when empty) and 500.
 */
export function describeError(error: unknown): ErrorInfo {
  if (isStratusError(error)) {
    return { exception: error.code, message: truncateMessage(error.message), code: error.status };
  }
  if (error instanceof Error) {
    const exception = error.name || 'Error';
    return { exception, message: truncateMessage(error.message || exception), code: 500 };
  }
  return { exception: 'InternalError', message: 'InternalError', code: 500 };
}

export interface ErrorNotificationInput extends Omit<
  InstanceNotificationInput,
  'eventType' | 'discriminator'
> {
  action: ErrorNotificationAction;
  /** A described error, or the thrown value itself (described with describeError). */
  error: unknown;
}

function isErrorInfo(value: unknown): value is ErrorInfo {
  if (typeof value !== 'object' || value === null || value instanceof Error) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.exception === 'string' && typeof v.message === 'string' && typeof v.code === 'number'
  );
}

/** `compute.instance.<action>.error`, priority ERROR, + `exception`, `message`, `code`. */
export function errorNotification(input: ErrorNotificationInput): Notification {
  const { action, error, extra, ...rest } = input;
  const info = isErrorInfo(error) ? error : describeError(error);
  return instanceNotification({
    ...rest,
    eventType: `compute.instance.${action}.error`,
    extra: {
      ...extra,
      exception: info.exception,
      message: truncateMessage(info.message),
      code: info.code,
    },
  });
}

export interface ApiFaultInput {
  host: string;
  commandId: string;
  requestId: string;
  operation: string;
  /** Null when the rejected command named no (valid) instance. */
  instanceId: string | null;
  /** The error code, e.g. `InstanceInvalidState`. */
  exception: string;
  /** The outcome's HTTP-like code. */
  status: number;
  now: Date;
}

export type ApiFaultPayload = {
  operation: string;
  instance_id: string | null;
  exception: string;
  status: number;
};

/** `api.fault` (CONTRACT §2, when `notify_api_faults` is on): a rejected command. */
export function apiFaultNotification(input: ApiFaultInput): Notification<ApiFaultPayload> {
  return {
    message_id: eventMessageId(input.commandId, 'api.fault'),
    publisher_id: `api.${input.host}`,
    event_type: 'api.fault',
    priority: 'ERROR',
    timestamp: legacyTimestamp(input.now),
    request_id: input.requestId,
    command_id: input.commandId,
    payload: {
      operation: input.operation,
      instance_id: input.instanceId,
      exception: input.exception,
      status: input.status,
    },
    ...(input.instanceId ? { instance_id: input.instanceId } : {}),
  };
}
