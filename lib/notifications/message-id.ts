// Deterministic notification ids (CONTRACT §2): a UUIDv5 of the event's natural key, so a retried
// publish carries the same `message_id` and subscribers can deduplicate on it. Nova's own ids
// are uuid4, which defeats exactly that.
import { createHash } from 'node:crypto';
import { legacyTimestamp } from './time.ts';

/**
 * Stratus's UUIDv5 namespace: uuid5(NAMESPACE_DNS, 'notifications.stratus.compute'). Part of the
 * wire contract: changing it changes every message_id, so subscribers would see duplicates.
 */
export const STRATUS_NAMESPACE = 'f4f8e985-4fcc-581f-b8d7-097e758a20db';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function uuidBytes(uuid: string): Buffer {
  if (!UUID.test(uuid)) throw new RangeError(`not a UUID: ${uuid}`);
  return Buffer.from(uuid.replaceAll('-', ''), 'hex');
}

/** RFC 9562 §5.5: SHA-1 of namespace bytes + name, with the version and variant bits set. */
export function uuidv5(name: string, namespace: string): string {
  const hash = createHash('sha1').update(uuidBytes(namespace)).update(name, 'utf8').digest();
  const bytes = hash.subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x50;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * The id of a natural key. The parts are joined as a JSON array, so no choice of values can
 * collide with another split of the same characters (`['a-b','c']` vs `['a','b-c']`), and
 * `1` differs from `'1'`.
 */
export function messageIdFor(parts: readonly (string | number | null)[]): string {
  return uuidv5(JSON.stringify(parts), STRATUS_NAMESPACE);
}

/**
 * Any event but `exists`: (command_id, event_type). `compute.instance.update` needs a
 * discriminator because one command saves the instance several times: pass the record's
 * `version` after the write.
 */
export function eventMessageId(
  commandId: string,
  eventType: string,
  discriminator?: string | number,
): string {
  return messageIdFor(
    discriminator === undefined ? [commandId, eventType] : [commandId, eventType, discriminator],
  );
}

/**
 * `compute.instance.exists`: (instance_id, launched_at, audit_period_beginning,
 * audit_period_ending). Times are keyed in their wire form, so a Date and the ISO string of the
 * same instant give the same id.
 */
export function existsMessageId(
  instanceId: string,
  launchedAt: string | Date | null,
  periodBeginning: string | Date,
  periodEnding: string | Date,
): string {
  return messageIdFor([
    instanceId,
    legacyTimestamp(launchedAt),
    legacyTimestamp(periodBeginning),
    legacyTimestamp(periodEnding),
  ]);
}
