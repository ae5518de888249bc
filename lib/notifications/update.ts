// `compute.instance.update`, with Nova's exact `notify_on_state_change` semantics
// (`nova/notifications/base.py::send_update`, `send_instance_update_notification`,
// `_compute_states_payload`). The setting does not filter which saves notify: once it is set,
// every save that changes something notifies; it only decides whether the old/new states of the
// payload describe the transition or just repeat the current states.
import { isDeepStrictEqual } from 'node:util';
import type { Instance } from '../compute/instance.ts';
import type { NotifyOnStateChange } from '../config.ts';
import type { AuditPeriod } from './audit-period.ts';
import { eventMessageId } from './message-id.ts';
import type { Notification } from './notification.ts';
import { instancePayload } from './payload.ts';
import type { LegacyInstancePayload } from './payload.ts';
import { legacyTimestamp } from './time.ts';

export const UPDATE_EVENT_TYPE = 'compute.instance.update';

export type UpdatePayload = LegacyInstancePayload & {
  old_state: Instance['vm_state'];
  state: Instance['vm_state'];
  old_task_state: Instance['task_state'];
  new_task_state: Instance['task_state'];
  audit_period_beginning: string;
  audit_period_ending: string;
  /** {network label: {bw_in, bw_out}}: Stratus has no bandwidth accounting, as Nova since 2020. */
  bandwidth: Record<string, { bw_in: number; bw_out: number }>;
  image_metadata: { key: string; value: string }[];
  old_display_name?: string;
};

export interface UpdateNotificationInput {
  mode: NotifyOnStateChange;
  /** The record before the save; null when the save created it (Nova's conductor update). */
  old: Instance | null;
  new: Instance;
  host: string;
  commandId: string;
  requestId: string;
  now: Date;
  /** `currentAuditPeriod(config.instance_usage_audit_period, now)`. */
  auditPeriod: AuditPeriod;
}

/**
 * Record bookkeeping that changes on every write and is not instance data: a save that touched
 * only these changed nothing a subscriber can see (Nova's `updated_at` is set by the database,
 * outside the object's changed fields).
 */
const BOOKKEEPING: ReadonlySet<string> = new Set(['updated_at', 'version', 'task_owner']);

function changedSomething(old: Instance, next: Instance): boolean {
  const keys = new Set([...Object.keys(old), ...Object.keys(next)]);
  for (const key of keys) {
    if (BOOKKEEPING.has(key)) continue;
    if (!isDeepStrictEqual(old[key as keyof Instance], next[key as keyof Instance])) return true;
  }
  return false;
}

/** The update notification for one save, or null when none is due. */
export function updateNotification(
  input: UpdateNotificationInput,
): Notification<UpdatePayload> | null {
  const { mode, old, new: next } = input;
  if (mode === 'None') return null;
  if (old !== null && !changedSomething(old, next)) return null;

  // A created record is Nova's conductor update: a transition from no state at all.
  const stateChanged =
    old === null ||
    old.vm_state !== next.vm_state ||
    (mode === 'vm_and_task_state' && old.task_state !== next.task_state);

  // _compute_states_payload: any state not given (the "no transition" case) or given as None
  // becomes the instance's current value. So a task_state set from None reports
  // old_task_state == new_task_state, and creation reports old_state == state, as in Nova.
  const states = stateChanged
    ? {
        old_state: old?.vm_state ?? next.vm_state,
        state: next.vm_state,
        old_task_state: old?.task_state ?? next.task_state,
        new_task_state: next.task_state,
      }
    : {
        old_state: next.vm_state,
        state: next.vm_state,
        old_task_state: next.task_state,
        new_task_state: next.task_state,
      };

  const payload: UpdatePayload = {
    ...instancePayload(next),
    ...states,
    audit_period_beginning: legacyTimestamp(input.auditPeriod.beginning),
    audit_period_ending: legacyTimestamp(input.auditPeriod.ending),
    bandwidth: {},
    image_metadata: Object.entries(next.image_meta).map(([key, value]) => ({ key, value })),
  };
  // Nova: only without a reported transition, and only when the old name is non-empty.
  if (!stateChanged && old !== null && old.display_name && old.display_name !== next.display_name) {
    payload.old_display_name = old.display_name;
  }

  return {
    message_id: eventMessageId(input.commandId, UPDATE_EVENT_TYPE, next.version),
    publisher_id: `compute.${input.host}`,
    event_type: UPDATE_EVENT_TYPE,
    priority: 'INFO',
    timestamp: legacyTimestamp(input.now),
    request_id: input.requestId,
    command_id: input.commandId,
    payload,
    instance_id: next.instance_id,
  };
}
