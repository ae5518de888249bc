// The local control plane with an EventBridge endpoint: notifications are published there with
// PutEvents exactly as in AWS AND appended to the local log, so `npm start` still shows them as
// they happen and `stratus events` still reads them. EventBridge goes first: if it fails, the
// command's outbox keeps the notifications and the retry publishes them again (same message
// ids); the log only ever holds what EventBridge accepted.

import type { Notification } from '../notifications/notification.ts';
import type { NotificationPublisher } from '../notifications/publisher.ts';

export class TeePublisher implements NotificationPublisher {
  private readonly publishers: readonly NotificationPublisher[];

  constructor(publishers: readonly NotificationPublisher[]) {
    this.publishers = publishers;
  }

  async publish(batch: readonly Notification[]): Promise<void> {
    for (const publisher of this.publishers) await publisher.publish(batch);
  }
}
