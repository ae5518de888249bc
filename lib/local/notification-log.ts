// The local control plane's notification sink: each notification is appended to a JSON-lines
// file as the EventBridge event it would have been, so `npm start`, `stratus events` and tests
// read exactly what a subscriber would receive. Readers follow the file by byte offset.

import { appendFile, mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  type Notification,
  type NotificationEnvelope,
  envelopeOf,
} from '../notifications/notification.ts';
import type { NotificationPublisher } from '../notifications/publisher.ts';

/** One line of the log: the EventBridge event as a rule target would receive it. */
export interface LoggedNotification {
  source: string;
  'detail-type': string;
  resources: string[];
  time: string;
  detail: NotificationEnvelope;
}

export class NotificationLog implements NotificationPublisher {
  private readonly path: string;
  private readonly source: string;

  constructor(path: string, source: string) {
    this.path = path;
    this.source = source;
  }

  async publish(batch: readonly Notification[]): Promise<void> {
    if (batch.length === 0) return;
    await mkdir(dirname(this.path), { recursive: true });
    const lines = batch.map((n) =>
      JSON.stringify({
        source: this.source,
        'detail-type': n.event_type,
        resources: n.instance_id ? [n.instance_id] : [],
        time: new Date().toISOString(),
        detail: envelopeOf(n),
      } satisfies LoggedNotification),
    );
    await appendFile(this.path, `${lines.join('\n')}\n`);
  }
}

/**
 * Reads the complete lines appended since `offset` (bytes). A line still being written stays
 * for the next read; a file shorter than `offset` was replaced, so it is read from the start.
 * A missing file reads as empty.
 */
export async function readNotificationLog(
  path: string,
  offset = 0,
): Promise<{ events: LoggedNotification[]; offset: number }> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { events: [], offset };
    throw e;
  }
  try {
    const { size } = await handle.stat();
    const start = size < offset ? 0 : offset;
    if (size === start) return { events: [], offset: start };
    const buffer = Buffer.alloc(size - start);
    await handle.read(buffer, 0, buffer.length, start);
    const end = buffer.lastIndexOf(0x0a);
    if (end < 0) return { events: [], offset: start };
    const events = buffer
      .subarray(0, end)
      .toString('utf8')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as LoggedNotification);
    return { events, offset: start + end + 1 };
  } finally {
    await handle.close();
  }
}
