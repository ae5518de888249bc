// The custom EventBridge bus that carries Nova-format notifications (CONTRACT §2), with an archive
// of everything Stratus published so billing can replay a period it missed.

import { Duration } from 'aws-cdk-lib';
import { type Archive, EventBus } from 'aws-cdk-lib/aws-events';
import { Construct } from 'constructs';

export interface NotificationBusProps {
  readonly eventBusName: string;
  /** The `source` Stratus publishes with (option `event_source`). */
  readonly eventSource: string;
  /** Days the archive keeps events; 0 keeps them forever. */
  readonly archiveRetentionDays: number;
}

export class NotificationBus extends Construct {
  readonly bus: EventBus;
  readonly archive: Archive;

  constructor(scope: Construct, id: string, props: NotificationBusProps) {
    super(scope, id);
    this.bus = new EventBus(this, 'Bus', {
      eventBusName: props.eventBusName,
      description: 'Stratus compute notifications (Nova legacy format)',
    });
    this.archive = this.bus.archive('Archive', {
      description: `Every ${props.eventSource} event, for replay`,
      eventPattern: { source: [props.eventSource] },
      retention: Duration.days(props.archiveRetentionDays),
    });
  }
}
