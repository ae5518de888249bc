// set_host_enabled and host_maintenance_mode through SQS (admin only, addressed to a node), and
// the node-state store they record into: the DynamoDB adapter and its in-memory twin behave
// the same.

import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Operation } from '../../lib/topology.ts';
import {
  DynamoDbNodeStateStore,
  InMemoryNodeStateStore,
  type NodeStateStore,
} from '../../lib/store/node-state-store.ts';
import type { ActionRecord } from '../../lib/store/state-store.ts';
import { OWNER } from '../support/operations.ts';
import { type TestStack, buildCommand, startTestStack } from '../support/stack.ts';

const ADMIN = { ...OWNER, roles: ['admin'] };

describe('host operations', () => {
  let stack: TestStack;
  let nodes: DynamoDbNodeStateStore;

  beforeAll(async () => {
    stack = await startTestStack({
      label: 'hosts',
      options: { admin_producers: '["000000000000"]' },
      operations: ['set_host_enabled', 'host_maintenance_mode'],
    });
    nodes = new DynamoDbNodeStateStore(stack.doc, stack.config.tables.state);
  });

  afterEach(() => vi.restoreAllMocks());

  async function runHost(
    operation: Operation,
    node: string,
    args: Record<string, unknown>,
    context: Record<string, unknown> = ADMIN,
  ): Promise<ActionRecord> {
    const command = buildCommand({ operation, node, args, context });
    await stack.send(operation, command);
    await stack.drain(operation);
    const action = await stack.store.findActionByCommand(command.command_id);
    if (!action) throw new Error(`no action for ${command.command_id}`);
    return action;
  }

  async function hostEvents() {
    return (await stack.receiveEvents()).filter((e) => e['detail-type'].startsWith('HostAPI.'));
  }

  it('disables and enables a node, recording the flag and answering like os-hosts', async () => {
    await stack.receiveEvents();
    const disable = await runHost('set_host_enabled', 'fake-node-1', { enabled: false });
    expect(disable).toMatchObject({
      subject: { kind: 'node', id: 'fake-node-1' },
      instance_id: null,
      status: 'succeeded',
      outcome: { result: { host: 'fake-node-1', status: 'disabled' } },
    });
    // Filed under the node.
    expect(
      await stack.store.getAction({ kind: 'node', id: 'fake-node-1' }, disable.command_id),
    ).toMatchObject({ status: 'succeeded' });
    expect(await nodes.get('fake-node-1')).toMatchObject({
      enabled: false,
      maintenance: false,
      updated_by: disable.command_id,
      version: 1,
    });
    const events = await hostEvents();
    expect(events.map((e) => e['detail-type'])).toEqual([
      'HostAPI.set_enabled.start',
      'HostAPI.set_enabled.end',
    ]);
    expect(events[0]!.detail).toMatchObject({
      publisher_id: 'api.fake-node-1',
      priority: 'INFO',
      payload: { host_name: 'fake-node-1', enabled: false },
    });

    const enable = await runHost('set_host_enabled', 'fake-node-1', { enabled: true });
    expect(enable.outcome?.result).toEqual({ host: 'fake-node-1', status: 'enabled' });
    expect(await nodes.get('fake-node-1')).toMatchObject({ enabled: true, version: 2 });
    // The other node is untouched.
    expect(await nodes.get('fake-node-2')).toMatchObject({ enabled: true, version: 0 });
  });

  it('puts a node into maintenance and out again, independently of enabled', async () => {
    await runHost('set_host_enabled', 'fake-node-2', { enabled: false });
    await stack.receiveEvents();
    const on = await runHost('host_maintenance_mode', 'fake-node-2', { mode: true });
    expect(on).toMatchObject({
      status: 'succeeded',
      outcome: { result: { host: 'fake-node-2', maintenance_mode: 'on_maintenance' } },
    });
    expect(await nodes.get('fake-node-2')).toMatchObject({ enabled: false, maintenance: true });
    expect((await hostEvents()).map((e) => [e['detail-type'], e.detail.payload])).toEqual([
      ['HostAPI.set_maintenance.start', { host_name: 'fake-node-2', mode: true }],
      ['HostAPI.set_maintenance.end', { host_name: 'fake-node-2', mode: true }],
    ]);
    const off = await runHost('host_maintenance_mode', 'fake-node-2', { mode: false });
    expect(off.outcome?.result).toEqual({
      host: 'fake-node-2',
      maintenance_mode: 'off_maintenance',
    });
    expect(await nodes.get('fake-node-2')).toMatchObject({ enabled: false, maintenance: false });
  });

  it('is admin only (403) and knows only the driver’s nodes (404); nothing changes', async () => {
    const before = await nodes.getMany(['fake-node-1', 'fake-node-2']);
    const user = await runHost('set_host_enabled', 'fake-node-1', { enabled: false }, OWNER);
    expect(user).toMatchObject({
      status: 'rejected',
      error_code: 'Forbidden',
      outcome: { error: { code: 403 } },
    });
    const unknown = await runHost('host_maintenance_mode', 'no-such-node', { mode: true });
    expect(unknown).toMatchObject({
      status: 'rejected',
      outcome: { error: { code: 404, message: 'Compute host no-such-node could not be found.' } },
    });
    expect(await nodes.getMany(['fake-node-1', 'fake-node-2'])).toEqual(before);
    expect(await nodes.get('no-such-node')).toMatchObject({ version: 0 });
  });

  it('fails without recording the flag when the driver fails, 501 when it cannot', async () => {
    await stack.receiveEvents();
    const before = await nodes.get('fake-node-1');
    const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
    // The handlers run on freshly loaded modules: errors must be their classes.
    const { DriverError, NotSupportedError } = await import('../../lib/virt/errors.ts');
    vi.spyOn(FakeDriver.prototype, 'setHostEnabled').mockRejectedValueOnce(
      new DriverError('HypervisorUnavailable', 'hypervisor unreachable'),
    );
    const failed = await runHost('set_host_enabled', 'fake-node-1', { enabled: false });
    expect(failed).toMatchObject({
      status: 'failed',
      outcome: { error: { code: 500, message: expect.stringContaining('hypervisor unreachable') } },
    });
    vi.spyOn(FakeDriver.prototype, 'hostMaintenanceMode').mockRejectedValueOnce(
      new NotSupportedError('fake', 'host_maintenance_mode'),
    );
    const unsupported = await runHost('host_maintenance_mode', 'fake-node-1', { mode: true });
    expect(unsupported).toMatchObject({
      status: 'failed',
      error_code: 'NotSupported',
      outcome: { error: { code: 501 } },
    });
    expect(await nodes.get('fake-node-1')).toEqual(before);
    // Nova sends the .start before the call and no .end after a failure.
    expect((await hostEvents()).map((e) => e['detail-type'])).toEqual([
      'HostAPI.set_enabled.start',
      'HostAPI.set_maintenance.start',
    ]);
  });
});

describe('node-state store', () => {
  let doc: TestStack['doc'];
  let table: string;

  beforeAll(async () => {
    const stack = await startTestStack({ label: 'node-state' });
    doc = stack.doc;
    table = stack.config.tables.state;
  });

  const stores: [string, () => NodeStateStore][] = [
    ['in memory', () => new InMemoryNodeStateStore()],
    ['DynamoDB', () => new DynamoDbNodeStateStore(doc, table)],
  ];

  for (const [name, make] of stores) {
    describe(name, () => {
      const now = new Date('2026-01-02T03:04:05.000Z');

      it('answers the defaults for a node never written, in the order asked', async () => {
        const store = make();
        const node = `n-${Math.random().toString(36).slice(2, 8)}`;
        expect(await store.get(node)).toEqual({
          node,
          enabled: true,
          maintenance: false,
          updated_at: null,
          updated_by: null,
          version: 0,
        });
        await store.update({ node, changes: { maintenance: true }, commandId: 'c1', now });
        const many = await store.getMany(['other', node, 'other']);
        expect(many.map((s) => [s.node, s.maintenance, s.version])).toEqual([
          ['other', false, 0],
          [node, true, 1],
          ['other', false, 0],
        ]);
      });

      it('writes a change once, skips a no-op, and keeps the other flag', async () => {
        const store = make();
        const node = `n-${Math.random().toString(36).slice(2, 8)}`;
        const first = await store.update({
          node,
          changes: { enabled: false },
          commandId: 'c1',
          now,
        });
        expect(first).toMatchObject({ written: true, old: { version: 0 }, new: { version: 1 } });
        const again = await store.update({
          node,
          changes: { enabled: false },
          commandId: 'c2',
          now,
        });
        expect(again).toMatchObject({ written: false, new: { version: 1, updated_by: 'c1' } });
        await store.update({ node, changes: { maintenance: true }, commandId: 'c3', now });
        expect(await store.get(node)).toEqual({
          node,
          enabled: false,
          maintenance: true,
          updated_at: now.toISOString(),
          updated_by: 'c3',
          version: 2,
        });
      });

      it('loses no update under concurrent writers (each re-reads and re-applies)', async () => {
        const store = make();
        const node = `n-${Math.random().toString(36).slice(2, 8)}`;
        await Promise.all([
          store.update({ node, changes: { enabled: false }, commandId: 'a', now }),
          store.update({ node, changes: { maintenance: true }, commandId: 'b', now }),
          store.update({
            node,
            changes: (current) => ({ enabled: current.enabled }),
            commandId: 'c',
            now,
          }),
        ]);
        expect(await store.get(node)).toMatchObject({
          enabled: false,
          maintenance: true,
          version: 2,
        });
      });
    });
  }
});
