import { describe, expect, it } from 'vitest';
import type { Instance } from '../../../lib/compute/instance.ts';
import { TaskState, VmState } from '../../../lib/compute/states.ts';
import { currentAuditPeriod } from '../../../lib/notifications/audit-period.ts';
import { eventMessageId } from '../../../lib/notifications/message-id.ts';
import { envelopeOf } from '../../../lib/notifications/notification.ts';
import { instancePayload } from '../../../lib/notifications/payload.ts';
import { assertValidDetail } from '../../../lib/notifications/schemas.ts';
import { updateNotification } from '../../../lib/notifications/update.ts';
import type { UpdateNotificationInput } from '../../../lib/notifications/update.ts';
import { buildInstance } from './fixtures.ts';

const NOW = new Date('2024-03-10T10:30:00Z');
const MODES = ['vm_state', 'vm_and_task_state'] as const;

function save(
  old: Instance | null,
  changes: Partial<Instance>,
  mode: UpdateNotificationInput['mode'],
) {
  const before = old ?? buildInstance();
  const next: Instance = { ...before, ...changes, version: before.version + 1 };
  return updateNotification({
    mode,
    old,
    new: next,
    host: 'stratus',
    commandId: 'cmd-1',
    requestId: 'req-1',
    now: NOW,
    auditPeriod: currentAuditPeriod('hour', NOW),
  });
}

const states = (n: ReturnType<typeof save>) => {
  expect(n).not.toBeNull();
  const { old_state, state, old_task_state, new_task_state } = n!.payload;
  return { old_state, state, old_task_state, new_task_state };
};

describe('updateNotification: notify_on_state_change', () => {
  it('None: nothing at all, whatever changed', () => {
    expect(save(buildInstance(), { vm_state: VmState.STOPPED }, 'None')).toBeNull();
    expect(save(buildInstance(), { display_name: 'x' }, 'None')).toBeNull();
    expect(save(null, { vm_state: VmState.BUILDING }, 'None')).toBeNull();
  });

  it.each(MODES)('%s: a save that changes nothing a subscriber sees emits nothing', (mode) => {
    const old = buildInstance();
    expect(save(old, {}, mode)).toBeNull();
    expect(save(old, { updated_at: '2024-03-10T10:29:00Z', task_owner: 'cmd-9' }, mode)).toBeNull();
  });

  it.each(MODES)('%s: a vm_state change reports the transition', (mode) => {
    const old = buildInstance({ vm_state: VmState.ACTIVE, task_state: TaskState.POWERING_OFF });
    expect(states(save(old, { vm_state: VmState.STOPPED, task_state: null }, mode))).toEqual({
      old_state: 'active',
      state: 'stopped',
      old_task_state: 'powering-off',
      new_task_state: null,
    });
  });

  it('vm_state: a task-only change notifies, with the current states on both sides', () => {
    const old = buildInstance({ task_state: TaskState.REBOOTING });
    expect(states(save(old, { task_state: TaskState.REBOOT_STARTED }, 'vm_state'))).toEqual({
      old_state: 'active',
      state: 'active',
      old_task_state: 'reboot_started',
      new_task_state: 'reboot_started',
    });
  });

  it('vm_and_task_state: a task-only change reports the task transition', () => {
    const old = buildInstance({ task_state: TaskState.REBOOTING });
    expect(
      states(save(old, { task_state: TaskState.REBOOT_STARTED }, 'vm_and_task_state')),
    ).toEqual({
      old_state: 'active',
      state: 'active',
      old_task_state: 'rebooting',
      new_task_state: 'reboot_started',
    });
  });

  it('vm_and_task_state: a null old task_state is replaced by the current one (Nova quirk)', () => {
    const old = buildInstance({ task_state: null });
    expect(states(save(old, { task_state: TaskState.POWERING_OFF }, 'vm_and_task_state'))).toEqual({
      old_state: 'active',
      state: 'active',
      old_task_state: 'powering-off',
      new_task_state: 'powering-off',
    });
  });

  it.each(MODES)('%s: a created record reports no-state → current as current → current', (mode) => {
    const created = buildInstance({ vm_state: VmState.BUILDING, task_state: TaskState.SCHEDULING });
    const n = updateNotification({
      mode,
      old: null,
      new: created,
      host: 'stratus',
      commandId: 'cmd-1',
      requestId: 'req-1',
      now: NOW,
      auditPeriod: currentAuditPeriod('hour', NOW),
    });
    expect(states(n)).toEqual({
      old_state: 'building',
      state: 'building',
      old_task_state: 'scheduling',
      new_task_state: 'scheduling',
    });
  });

  it.each(MODES)('%s: a non-state change notifies with the current states', (mode) => {
    const old = buildInstance({ task_state: TaskState.REBOOTING });
    const n = save(old, { metadata: { role: 'db' } }, mode);
    expect(states(n)).toEqual({
      old_state: 'active',
      state: 'active',
      old_task_state: 'rebooting',
      new_task_state: 'rebooting',
    });
    expect(n!.payload.metadata).toEqual({ role: 'db' });
    expect(n!.payload).not.toHaveProperty('old_display_name');
  });

  it.each(MODES)('%s: a rename carries old_display_name', (mode) => {
    const n = save(buildInstance({ display_name: 'web-1' }), { display_name: 'web-2' }, mode);
    expect(n!.payload.old_display_name).toBe('web-1');
    expect(n!.payload.display_name).toBe('web-2');
  });

  it.each(MODES)(
    '%s: no old_display_name with a state transition or from an empty name',
    (mode) => {
      const withTransition = save(
        buildInstance(),
        { display_name: 'web-2', vm_state: VmState.STOPPED },
        mode,
      );
      expect(withTransition!.payload).not.toHaveProperty('old_display_name');
      const fromEmpty = save(buildInstance({ display_name: '' }), { display_name: 'web-2' }, mode);
      expect(fromEmpty!.payload).not.toHaveProperty('old_display_name');
    },
  );
});

describe('updateNotification: payload and envelope', () => {
  const old = buildInstance({ task_state: TaskState.REBOOTING });
  const n = save(old, { task_state: TaskState.REBOOT_STARTED }, 'vm_and_task_state')!;

  it('is the instance payload without fixed_ips plus the update fields', () => {
    const payload = n.payload;
    expect(payload).toEqual({
      ...instancePayload({ ...old, task_state: TaskState.REBOOT_STARTED, version: 4 }),
      old_state: 'active',
      state: 'active',
      old_task_state: 'rebooting',
      new_task_state: 'reboot_started',
      audit_period_beginning: '2024-03-10 10:00:00.000000',
      audit_period_ending: '2024-03-10 10:30:00.000000',
      bandwidth: {},
      image_metadata: [
        { key: 'min_disk', value: '20' },
        { key: 'container_format', value: 'bare' },
      ],
    });
    expect(payload).not.toHaveProperty('fixed_ips');
  });

  it('is an INFO compute.instance.update keyed by command and record version', () => {
    expect(n.event_type).toBe('compute.instance.update');
    expect(n.priority).toBe('INFO');
    expect(n.publisher_id).toBe('compute.stratus');
    expect(n.message_id).toBe(eventMessageId('cmd-1', 'compute.instance.update', 4));
    expect(n.instance_id).toBe(old.instance_id);
    expect(() => assertValidDetail(envelopeOf(n))).not.toThrow();
  });

  it('gives each save of one command its own message_id', () => {
    const first = save(old, { task_state: TaskState.REBOOT_STARTED }, 'vm_state')!;
    const second = save(
      { ...old, task_state: TaskState.REBOOT_STARTED, version: 4 },
      { task_state: null },
      'vm_state',
    )!;
    expect(first.message_id).not.toBe(second.message_id);
  });
});
