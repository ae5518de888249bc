// The notification port and its adapters: EventBridge `PutEvents` for deployments, an in-memory
// recorder for tests and the local control plane. Nothing here logs: notification payloads are
// customer data, and errors name message ids and error codes only.
import { PutEventsCommand } from '@aws-sdk/client-eventbridge';
import type {
  EventBridgeClient,
  PutEventsRequestEntry,
  PutEventsResultEntry,
} from '@aws-sdk/client-eventbridge';
import { envelopeOf } from './notification.ts';
import type { Notification } from './notification.ts';
import { parseTimestamp } from './time.ts';

export interface NotificationPublisher {
  /** Publishes every notification, or throws NotificationPublishError naming those that failed. */
  publish(batch: readonly Notification[]): Promise<void>;
}

export interface PublishFailure {
  message_id: string;
  error_code: string;
  /** False when trying again cannot help (access denied, malformed, too large). */
  retryable: boolean;
}

export class NotificationPublishError extends Error {
  readonly failures: readonly PublishFailure[];

  constructor(
    failures: readonly PublishFailure[],
    message?: string,
    options?: { cause?: unknown },
  ) {
    super(
      message ??
        `failed to publish ${failures.length} notification(s): ` +
          failures.map((f) => `${f.message_id} (${f.error_code})`).join(', '),
      options,
    );
    this.name = 'NotificationPublishError';
    this.failures = failures;
  }

  /** True when every failure was transient, so the whole publish may be tried again later. */
  get retryable(): boolean {
    return this.failures.every((f) => f.retryable);
  }
}

/** PutEvents caps (Classic bus): entries per call, bytes per entry and per request. */
export const PUT_EVENTS_MAX_ENTRIES = 10;
export const PUT_EVENTS_MAX_ENTRY_BYTES = 256 * 1024;
export const PUT_EVENTS_MAX_REQUEST_BYTES = 256 * 1024;

/** PutEventsResultEntry codes that a resend cannot fix (EventBridge API reference). */
const PERMANENT_ENTRY_ERRORS: ReadonlySet<string> = new Set([
  'AccessDeniedException',
  'InvalidAccountIdException',
  'InvalidArgument',
  'MalformedDetail',
  'RedactionFailure',
  'NotAuthorizedForSourceException',
  'NotAuthorizedForDetailTypeException',
]);

const utf8Bytes = (s: string): number => Buffer.byteLength(s, 'utf8');

/** "Calculating PutEvents event entry size": 14 bytes for Time, UTF-8 bytes of the strings. */
export function putEventsEntrySize(entry: PutEventsRequestEntry): number {
  let size = entry.Time ? 14 : 0;
  size += utf8Bytes(entry.Source ?? '') + utf8Bytes(entry.DetailType ?? '');
  if (entry.Detail) size += utf8Bytes(entry.Detail);
  for (const resource of entry.Resources ?? []) size += utf8Bytes(resource);
  return size;
}

export interface EventBridgePublisherOptions {
  client: EventBridgeClient;
  busName: string;
  source: string;
  /** Attempts per entry, the first included (default 5). */
  maxAttempts?: number;
  /** Backoff base and cap in ms (defaults 100 and 5000); each wait is full-jittered. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** [0, 1) source of jitter; injectable for tests. */
  random?: () => number;
  maxEntryBytes?: number;
  maxRequestBytes?: number;
}

interface Pending {
  notification: Notification;
  entry: PutEventsRequestEntry;
  size: number;
}

interface FailedEntry {
  pending: Pending;
  code: string;
  retryable: boolean;
}

const defaultSleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** A whole-call error worth another attempt: throttling, server faults, lost connections. */
function isTransientCallError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return true;
  const e = error as {
    name?: string;
    $retryable?: unknown;
    $fault?: string;
    $metadata?: { httpStatusCode?: number };
  };
  if (e.$retryable || e.$fault === 'server') return true;
  if (e.name === 'ThrottlingException' || e.name === 'InternalException') return true;
  // No HTTP status at all: the request never got an answer (network, timeout).
  return e.$metadata?.httpStatusCode === undefined && e.$fault === undefined;
}

export class EventBridgePublisher implements NotificationPublisher {
  readonly #client: EventBridgeClient;
  readonly #busName: string;
  readonly #source: string;
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;
  readonly #maxEntryBytes: number;
  readonly #maxRequestBytes: number;

  constructor(options: EventBridgePublisherOptions) {
    this.#client = options.client;
    this.#busName = options.busName;
    this.#source = options.source;
    this.#maxAttempts = Math.max(1, options.maxAttempts ?? 5);
    this.#baseDelayMs = options.baseDelayMs ?? 100;
    this.#maxDelayMs = options.maxDelayMs ?? 5000;
    this.#sleep = options.sleep ?? defaultSleep;
    this.#random = options.random ?? Math.random;
    this.#maxEntryBytes = options.maxEntryBytes ?? PUT_EVENTS_MAX_ENTRY_BYTES;
    this.#maxRequestBytes = options.maxRequestBytes ?? PUT_EVENTS_MAX_REQUEST_BYTES;
  }

  /** The PutEvents entry of a notification: detail-type = event_type, detail = the envelope. */
  entryFor(notification: Notification): PutEventsRequestEntry {
    return {
      EventBusName: this.#busName,
      Source: this.#source,
      DetailType: notification.event_type,
      Detail: JSON.stringify(envelopeOf(notification)),
      Resources: notification.instance_id ? [notification.instance_id] : [],
      Time: parseTimestamp(notification.timestamp),
    };
  }

  async publish(batch: readonly Notification[]): Promise<void> {
    let pending = batch.map((notification): Pending => {
      const entry = this.entryFor(notification);
      return { notification, entry, size: putEventsEntrySize(entry) };
    });
    // Checked before anything is sent, so an oversize notification never half-publishes a batch.
    const oversize = pending.filter((p) => p.size > this.#maxEntryBytes);
    if (oversize.length > 0) {
      throw new NotificationPublishError(
        oversize.map((p) => ({
          message_id: p.notification.message_id,
          error_code: 'EntryTooLarge',
          retryable: false,
        })),
        `notification(s) larger than the PutEvents entry limit of ${this.#maxEntryBytes} bytes: ` +
          oversize.map((p) => `${p.notification.message_id} (${p.size} bytes)`).join(', '),
      );
    }

    const failures: PublishFailure[] = [];
    let lastCallError: unknown;
    for (let attempt = 1; pending.length > 0; attempt++) {
      if (attempt > 1) await this.#sleep(this.#backoff(attempt - 1));
      const failed: FailedEntry[] = [];
      for (const request of this.#requests(pending)) {
        const outcome = await this.#send(request);
        if (outcome.callError !== undefined) lastCallError = outcome.callError;
        failed.push(...outcome.failed);
      }
      // Only the entries that failed go round again, and only while a retry can help.
      pending = [];
      for (const f of failed) {
        if (f.retryable && attempt < this.#maxAttempts) pending.push(f.pending);
        else {
          const { message_id } = f.pending.notification;
          failures.push({ message_id, error_code: f.code, retryable: f.retryable });
        }
      }
    }
    if (failures.length > 0) {
      throw new NotificationPublishError(failures, undefined, { cause: lastCallError });
    }
  }

  /** Greedy split: at most 10 entries and the request byte limit per PutEvents call. */
  *#requests(pending: readonly Pending[]): Generator<Pending[]> {
    let current: Pending[] = [];
    let bytes = 0;
    for (const p of pending) {
      if (
        current.length > 0 &&
        (current.length === PUT_EVENTS_MAX_ENTRIES || bytes + p.size > this.#maxRequestBytes)
      ) {
        yield current;
        current = [];
        bytes = 0;
      }
      current.push(p);
      bytes += p.size;
    }
    if (current.length > 0) yield current;
  }

  async #send(request: Pending[]): Promise<{ failed: FailedEntry[]; callError?: unknown }> {
    let results: PutEventsResultEntry[];
    try {
      const response = await this.#client.send(
        new PutEventsCommand({ Entries: request.map((p) => p.entry) }),
      );
      if (!response.FailedEntryCount) return { failed: [] };
      results = response.Entries ?? [];
    } catch (callError) {
      // The whole call failed: every entry in it failed the same way.
      const code = (callError as { name?: string } | null)?.name ?? 'UnknownError';
      const retryable = isTransientCallError(callError);
      return { failed: request.map((pending) => ({ pending, code, retryable })), callError };
    }
    // Results come back in request order; an entry with an ErrorCode (or no result) failed.
    const failed: FailedEntry[] = [];
    request.forEach((pending, i) => {
      const result = results[i];
      if (result?.EventId && !result.ErrorCode) return;
      const code = result?.ErrorCode ?? 'MissingResultEntry';
      failed.push({ pending, code, retryable: !PERMANENT_ENTRY_ERRORS.has(code) });
    });
    return { failed };
  }

  /** Full jitter: uniform in [0, min(cap, base·2^(retry-1))]. */
  #backoff(retry: number): number {
    const ceiling = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (retry - 1));
    return Math.floor(this.#random() * ceiling);
  }
}

export interface InMemoryPublisherOptions {
  /** Called for every notification before it is recorded, e.g. a schema check; may throw. */
  validate?: (notification: Notification) => void;
}

/**
 * Records what would have been published, in order, as it would arrive (a JSON round trip, so
 * later mutation of the objects cannot change the record). Tests can make publishes fail.
 */
export class InMemoryPublisher implements NotificationPublisher {
  readonly published: Notification[] = [];
  readonly #validate: ((notification: Notification) => void) | undefined;
  readonly #failures: Error[] = [];
  #failWhen: ((notification: Notification) => boolean) | undefined;

  constructor(options: InMemoryPublisherOptions = {}) {
    this.#validate = options.validate;
  }

  /** The next `times` publish calls throw `error` and record nothing. */
  failNext(error: Error = new Error('injected publish failure'), times = 1): void {
    for (let i = 0; i < times; i++) this.#failures.push(error);
  }

  /**
   * Until cleared (`failWhen(undefined)`), matching notifications fail as EventBridge entries do:
   * the others are recorded, then NotificationPublishError names the failed ones.
   */
  failWhen(predicate: ((notification: Notification) => boolean) | undefined): void {
    this.#failWhen = predicate;
  }

  async publish(batch: readonly Notification[]): Promise<void> {
    const injected = this.#failures.shift();
    if (injected) throw injected;
    for (const notification of batch) this.#validate?.(notification);
    const failures: PublishFailure[] = [];
    for (const notification of batch) {
      if (this.#failWhen?.(notification)) {
        const { message_id } = notification;
        failures.push({ message_id, error_code: 'InternalFailure', retryable: true });
      } else {
        this.published.push(JSON.parse(JSON.stringify(notification)) as Notification);
      }
    }
    if (failures.length > 0) throw new NotificationPublishError(failures);
  }

  ofType(eventType: string): Notification[] {
    return this.published.filter((n) => n.event_type === eventType);
  }

  clear(): void {
    this.published.length = 0;
  }
}
