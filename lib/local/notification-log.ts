// The local control plane's notification sink when no EventBridge endpoint is configured: each
// notification is appended to a JSON-lines file as the EventBridge event it would have been,
// so `stratus events` and tests read exactly what a subscriber would receive.

import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type Notification, envelopeOf } from '../notifications/notification.ts';
import type { NotificationPublisher } from '../notifications/publisher.ts';

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
      }),
    );
    await appendFile(this.path, `${lines.join('\n')}\n`);
  }
}
