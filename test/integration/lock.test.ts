// lock_instance and unlock_instance through SQS: owner vs admin locks, locked_reason, the owner's
// no-op re-lock, an owner that cannot lift an admin's lock, and the update notification.

import { beforeAll, describe, expect, it } from 'vitest';
import { VmState } from '../../lib/compute/states.ts';
import { activeInstance, eventTrail, forceState, run } from '../support/operations.ts';
import { type TestStack, startTestStack } from '../support/stack.ts';

/** An admin of another project (Nova's locked_by 'admin'). */
const OTHER_ADMIN = { roles: ['admin'], context: { project_id: 'project-ops', user_id: 'op-1' } };

describe('lock and unlock', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack({
      label: 'lock',
      options: {
        notify_on_state_change: 'vm_and_task_state',
        admin_producers: '["000000000000"]',
      },
      operations: ['lock_instance', 'unlock_instance', 'stop_instance'],
    });
  });

  it('the owner locks (with a reason) and unlocks; each change emits an update', async () => {
    const id = await activeInstance(stack);
    await stack.receiveEvents();

    const lock = await run(stack, 'lock_instance', id, { args: { reason: 'maintenance' } });
    expect(lock).toMatchObject({
      status: 'succeeded',
      events: [{ event: 'api_lock', result: 'Success' }],
    });
    const locked = await stack.store.getInstance(id);
    expect(locked).toMatchObject({
      locked: true,
      locked_by: 'owner',
      locked_reason: 'maintenance',
      vm_state: VmState.ACTIVE,
      task_state: null,
    });
    expect(await eventTrail(stack, id)).toEqual(['update:active/-']);

    // Locked: the owner's own mutating commands are refused.
    const stop = await run(stack, 'stop_instance', id);
    expect(stop).toMatchObject({ status: 'rejected', error_code: 'InstanceIsLocked' });

    // Nova: an owner re-locking a locked instance is a no-op (no change, no event).
    const relock = await run(stack, 'lock_instance', id, { args: { reason: 'other' } });
    expect(relock).toMatchObject({ status: 'succeeded', events: [] });
    expect((await stack.store.getInstance(id))?.version).toBe(locked?.version);
    expect((await stack.store.getInstance(id))?.locked_reason).toBe('maintenance');
    expect(await eventTrail(stack, id)).toEqual([]);

    const unlock = await run(stack, 'unlock_instance', id);
    expect(unlock).toMatchObject({
      status: 'succeeded',
      events: [{ event: 'api_unlock', result: 'Success' }],
    });
    expect(await stack.store.getInstance(id)).toMatchObject({
      locked: false,
      locked_by: null,
      locked_reason: null,
    });
    expect(await eventTrail(stack, id)).toEqual(['update:active/-']);
  });

  it('an owner cannot lift an admin’s lock (403); the admin can', async () => {
    const id = await activeInstance(stack);
    const lock = await run(stack, 'lock_instance', id, { ...OTHER_ADMIN, args: { reason: 'ops' } });
    expect(lock.status).toBe('succeeded');
    const locked = await stack.store.getInstance(id);
    expect(locked).toMatchObject({ locked: true, locked_by: 'admin', locked_reason: 'ops' });

    const ownerUnlock = await run(stack, 'unlock_instance', id);
    expect(ownerUnlock).toMatchObject({
      status: 'rejected',
      error_code: 'Forbidden',
      outcome: { error: { code: 403 } },
    });
    // The owner's own lock request is the no-op re-lock: it does not take the lock over.
    const ownerLock = await run(stack, 'lock_instance', id);
    expect(ownerLock.status).toBe('succeeded');
    expect((await stack.store.getInstance(id))?.version).toBe(locked?.version);

    const adminUnlock = await run(stack, 'unlock_instance', id, OTHER_ADMIN);
    expect(adminUnlock.status).toBe('succeeded');
    expect(await stack.store.getInstance(id)).toMatchObject({ locked: false, locked_by: null });
  });

  it('an admin can lift an owner’s lock; an admin of the owning project locks as owner', async () => {
    const id = await activeInstance(stack);
    await run(stack, 'lock_instance', id);
    const adminUnlock = await run(stack, 'unlock_instance', id, OTHER_ADMIN);
    expect(adminUnlock.status).toBe('succeeded');
    expect((await stack.store.getInstance(id))?.locked).toBe(false);

    const ownProjectAdmin = await run(stack, 'lock_instance', id, { roles: ['admin'] });
    expect(ownProjectAdmin.status).toBe('succeeded');
    expect((await stack.store.getInstance(id))?.locked_by).toBe('owner');
  });

  it('an admin re-lock of an owner’s lock takes it over as admin', async () => {
    const id = await activeInstance(stack);
    await run(stack, 'lock_instance', id, { args: { reason: 'mine' } });
    const admin = await run(stack, 'lock_instance', id, OTHER_ADMIN);
    expect(admin).toMatchObject({ status: 'succeeded', events: [{ event: 'api_lock' }] });
    // No reason given: Nova keeps the one recorded.
    expect(await stack.store.getInstance(id)).toMatchObject({
      locked_by: 'admin',
      locked_reason: 'mine',
    });
  });

  it('locks in any vm_state and task_state; another project’s instance is not found', async () => {
    const id = await activeInstance(stack);
    await forceState(stack, id, { vm_state: VmState.ERROR, task_state: 'rebooting' });
    const lock = await run(stack, 'lock_instance', id);
    expect(lock.status).toBe('succeeded');
    const unlock = await run(stack, 'unlock_instance', id);
    expect(unlock.status).toBe('succeeded');

    const stranger = await run(stack, 'lock_instance', id, {
      context: { project_id: 'project-2', user_id: 'user-2' },
    });
    expect(stranger).toMatchObject({ status: 'rejected', outcome: { error: { code: 404 } } });
    expect((await stack.store.getInstance(id))?.locked).toBe(false);
  });
});
