// Lifecycle events (nova/virt/event.py): how a platform reports that a guest changed power state.
// They complete the tasks a driver left pending, so consumers must expect them late, twice or
// out of order; `sequence` lets them tell an old event from a new one for the same guest.

import type { LifecycleTransition } from '../compute/states.ts';

export interface LifecycleEvent {
  instanceId: string;
  transition: LifecycleTransition;
  node: string;
  /** ISO-8601 UTC. */
  occurredAt: string;
  source: 'fake' | 'ec2';
  /**
   * Orders the events of one guest: a later change has a larger sequence. Across a destroy and
   * re-create of the same instance id this holds as long as the clock moved on between the two
   * (sequences start from the clock in microseconds). Compare sequences of one instance only.
   */
  sequence: number;
  /**
   * The guest no longer exists on the platform (EC2 `terminated`). Such an event completes only
   * a task that destroys the guest; with no task running it means the guest was destroyed out
   * of band (see handleLifecycleEvent).
   */
  guestGone?: boolean;
}

/** Where a driver sends lifecycle events (EventBridge in AWS, memory in tests). */
export interface LifecycleEventSink {
  emit(event: LifecycleEvent): Promise<void>;
}

/** Collects events so a test can deliver them when, how often and in which order it likes. */
export class InMemoryLifecycleSink implements LifecycleEventSink {
  readonly events: LifecycleEvent[] = [];

  emit(event: LifecycleEvent): Promise<void> {
    this.events.push(structuredClone(event));
    return Promise.resolve();
  }

  /** Returns the collected events and forgets them. */
  take(): LifecycleEvent[] {
    return this.events.splice(0, this.events.length);
  }

  forInstance(instanceId: string): LifecycleEvent[] {
    return this.events.filter((event) => event.instanceId === instanceId);
  }
}
