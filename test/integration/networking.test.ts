// attach_interface, detach_interface, add/remove fixed IP and inject_network_info through SQS:
// ports recorded on the instance, Nova's `create_ip` / `delete_ip` events, states, lock,
// capability (501), and driver failures.

import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { INTERFACE_VM_STATES } from '../../lib/compute/operations/interfaces.ts';
import { VmState } from '../../lib/compute/states.ts';
import {
  activeInstance,
  eventTrail,
  expectForbiddenStatesRejected,
  forceState,
  run,
} from '../support/operations.ts';
import { type TestStack, startTestStack } from '../support/stack.ts';

const NETWORK_OPERATIONS = [
  'attach_interface',
  'detach_interface',
  'add_fixed_ip_to_instance',
  'remove_fixed_ip_from_instance',
  'inject_network_info',
] as const;

for (const mode of ['sync', 'async'] as const) {
  describe(`networking (${mode} driver)`, () => {
    let stack: TestStack;

    beforeAll(async () => {
      stack = await startTestStack({
        label: `net-${mode}`,
        options: {
          notify_on_state_change: 'vm_and_task_state',
          fake_async: mode === 'async' ? 'true' : 'false',
          admin_producers: '["000000000000"]',
        },
        operations: NETWORK_OPERATIONS,
      });
    });

    afterEach(() => vi.restoreAllMocks());

    const withNetwork = () => activeInstance(stack, { networks: [{ network_id: 'net-1' }] });

    it('attaches and detaches interfaces, recording the ports on the instance', async () => {
      const id = await withNetwork();
      await stack.receiveEvents();
      const before = (await stack.store.getInstance(id))!;
      expect(before.ports).toHaveLength(1);

      const attach = await run(stack, 'attach_interface', id, { args: { network_id: 'net-2' } });
      expect(attach).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'compute_attach_interface', result: 'Success' }],
        outcome: { result: { network_id: 'net-2' } },
      });
      const port = attach.outcome!.result as { port_id: string; fixed_ips: unknown[] };
      expect(port.fixed_ips).toHaveLength(1);
      let instance = (await stack.store.getInstance(id))!;
      expect(instance.ports.map((p) => p.network_id)).toEqual(['net-1', 'net-2']);
      expect(instance.ports[1]).toEqual(port);

      const named = await run(stack, 'attach_interface', id, {
        args: { port_id: 'port-named', fixed_ip: '192.168.7.9' },
      });
      expect(named.outcome?.result).toMatchObject({
        port_id: 'port-named',
        fixed_ips: [{ address: '192.168.7.9' }],
      });
      const again = await run(stack, 'attach_interface', id, { args: { port_id: 'port-named' } });
      expect(again).toMatchObject({ status: 'rejected', outcome: { error: { code: 409 } } });

      const detach = await run(stack, 'detach_interface', id, { args: { port_id: port.port_id } });
      expect(detach).toMatchObject({
        status: 'succeeded',
        events: [{ event: 'compute_detach_interface', result: 'Success' }],
      });
      instance = (await stack.store.getInstance(id))!;
      expect(instance.ports.map((p) => p.port_id)).toEqual([
        before.ports[0]!.port_id,
        'port-named',
      ]);
      expect(instance).toMatchObject({ vm_state: VmState.ACTIVE, task_state: null });
      // The network info cache is not an Instance field in Nova: no legacy events at all.
      expect(await eventTrail(stack, id)).toEqual([]);

      const unknown = await run(stack, 'detach_interface', id, { args: { port_id: port.port_id } });
      expect(unknown).toMatchObject({
        status: 'rejected',
        outcome: { error: { code: 404, message: `Port ${port.port_id} is not attached` } },
      });
      expect((await stack.store.getInstance(id))?.version).toBe(instance.version);
    });

    it('fails 501 with a fault when the driver cannot attach interfaces', async () => {
      const id = await withNetwork();
      const { FakeDriver, FAKE_CAPABILITIES } = await import('../../lib/virt/fake/driver.ts');
      vi.spyOn(FakeDriver.prototype, 'capabilities', 'get').mockReturnValue({
        ...FAKE_CAPABILITIES,
        supports_attach_interface: false,
      });
      const before = await stack.store.getInstance(id);
      const attach = await run(stack, 'attach_interface', id, { args: { network_id: 'net-2' } });
      expect(attach).toMatchObject({
        status: 'failed',
        error_code: 'NotSupported',
        outcome: { error: { code: 501 } },
        events: [{ event: 'compute_attach_interface', result: 'Error' }],
      });
      expect((await stack.store.getInstance(id))?.ports).toEqual(before?.ports);
      expect((await stack.store.listFaults(id)).at(-1)).toMatchObject({ code: 501 });
    });

    it('rejects every vm_state Nova forbids and a running task, changing nothing', async () => {
      const id = await withNetwork();
      const portId = (await stack.store.getInstance(id))!.ports[0]!.port_id;
      await expectForbiddenStatesRejected(stack, 'attach_interface', id, INTERFACE_VM_STATES, {
        args: { network_id: 'net-2' },
      });
      await expectForbiddenStatesRejected(stack, 'detach_interface', id, INTERFACE_VM_STATES, {
        args: { port_id: portId },
      });
      const busy = await forceState(stack, id, { vm_state: VmState.ACTIVE, task_state: 'pausing' });
      const attach = await run(stack, 'attach_interface', id, { args: { network_id: 'net-2' } });
      expect(attach).toMatchObject({ status: 'rejected', error_code: 'InstanceInvalidState' });
      expect((await stack.store.getInstance(id))?.version).toBe(busy.version);
    });

    it('rejects a locked instance for its owner and lets an admin through', async () => {
      const id = await withNetwork();
      const portId = (await stack.store.getInstance(id))!.ports[0]!.port_id;
      await forceState(stack, id, { locked: true, locked_by: 'admin' });
      const cases = [
        ['attach_interface', { network_id: 'net-2' }],
        ['add_fixed_ip_to_instance', { network_id: 'net-1' }],
        ['remove_fixed_ip_from_instance', { address: '10.255.255.254' }],
        ['inject_network_info', {}],
        ['detach_interface', { port_id: portId }],
      ] as const;
      for (const [op, args] of cases) {
        const refused = await run(stack, op, id, { args });
        expect(refused, op).toMatchObject({
          status: 'rejected',
          error_code: 'InstanceIsLocked',
          outcome: { error: { code: 409 } },
        });
      }
      for (const [op, args] of cases) {
        const admin = await run(stack, op, id, { args, roles: ['admin'] });
        // The admin gets past the lock; the unknown address fails as Nova's would.
        expect(admin.status, op).toBe(
          op === 'remove_fixed_ip_from_instance' ? 'failed' : 'succeeded',
        );
      }
    });

    it('records a fault and no port when the driver fails to attach; keeps it when detach fails', async () => {
      const id = await withNetwork();
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      const { DriverError } = await import('../../lib/virt/errors.ts');
      vi.spyOn(FakeDriver.prototype, 'attachInterface').mockRejectedValueOnce(
        new DriverError('InterfaceAttachFailed', 'no slot for another NIC'),
      );
      const attach = await run(stack, 'attach_interface', id, { args: { network_id: 'net-2' } });
      // InterfaceAttachFailed is a conflict with the guest's state (lib/virt/errors.ts): 409.
      expect(attach).toMatchObject({
        status: 'failed',
        events: [{ event: 'compute_attach_interface', result: 'Error' }],
        outcome: { error: { code: 409 } },
      });
      const instance = (await stack.store.getInstance(id))!;
      expect(instance.ports).toHaveLength(1);
      expect(instance.vm_state).toBe(VmState.ACTIVE);
      expect((await stack.store.listFaults(id)).at(-1)?.message).toContain(
        'no slot for another NIC',
      );

      vi.spyOn(FakeDriver.prototype, 'detachInterface').mockRejectedValueOnce(
        new DriverError('InterfaceDetachFailed', 'stuck NIC'),
      );
      const detach = await run(stack, 'detach_interface', id, {
        args: { port_id: instance.ports[0]!.port_id },
      });
      expect(detach).toMatchObject({
        status: 'failed',
        events: [{ event: 'compute_detach_interface', result: 'Error' }],
      });
      expect((await stack.store.getInstance(id))?.ports).toHaveLength(1);
      expect((await stack.store.listFaults(id)).at(-1)?.message).toContain('stuck NIC');
    });

    it('adds and removes a fixed IP with create_ip / delete_ip and network info injection', async () => {
      const id = await withNetwork();
      await stack.receiveEvents();
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      const inject = vi.spyOn(FakeDriver.prototype, 'injectNetworkInfo');

      const add = await run(stack, 'add_fixed_ip_to_instance', id, {
        args: { network_id: 'net-1' },
      });
      expect(add.status).toBe('succeeded');
      const port = (await stack.store.getInstance(id))!.ports[0]!;
      expect(port.fixed_ips).toHaveLength(2);
      const added = port.fixed_ips[1]!.address;
      expect(inject).toHaveBeenCalledTimes(1);
      expect(inject.mock.calls[0]![2]).toEqual([port]);

      const events = await stack.receiveEvents();
      const mine = events.filter((e) => e.resources.includes(id));
      expect(mine.map((e) => e['detail-type'])).toEqual([
        'compute.instance.create_ip.start',
        'compute.instance.update',
        'compute.instance.create_ip.end',
      ]);
      expect(mine[0]!.detail.payload).not.toHaveProperty('fixed_ips');
      expect(mine[2]!.detail.payload.fixed_ips).toEqual(
        expect.arrayContaining([expect.objectContaining({ address: added, label: 'net-1' })]),
      );

      const remove = await run(stack, 'remove_fixed_ip_from_instance', id, {
        args: { address: added },
      });
      expect(remove.status).toBe('succeeded');
      expect((await stack.store.getInstance(id))!.ports[0]!.fixed_ips).toHaveLength(1);
      expect(await eventTrail(stack, id)).toEqual([
        'delete_ip.start',
        'update:active/-',
        'delete_ip.end',
      ]);
    });

    it('fails with a fault (no .end) for a network or address the instance does not have', async () => {
      const id = await withNetwork();
      await stack.receiveEvents();
      const before = (await stack.store.getInstance(id))!;
      const add = await run(stack, 'add_fixed_ip_to_instance', id, {
        args: { network_id: 'net-9' },
      });
      expect(add).toMatchObject({ status: 'failed', outcome: { error: { code: 404 } } });
      const remove = await run(stack, 'remove_fixed_ip_from_instance', id, {
        args: { address: '10.255.255.254' },
      });
      expect(remove).toMatchObject({ status: 'failed', outcome: { error: { code: 404 } } });
      expect(await eventTrail(stack, id)).toEqual(['create_ip.start', 'delete_ip.start']);
      const after = (await stack.store.getInstance(id))!;
      expect(after.ports).toEqual(before.ports);
      expect((await stack.store.listFaults(id)).map((f) => f.code)).toEqual([404, 404]);
    });

    it('injects network info through the driver, and records a fault when it fails', async () => {
      const id = await withNetwork();
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      const { DriverError } = await import('../../lib/virt/errors.ts');
      const inject = vi.spyOn(FakeDriver.prototype, 'injectNetworkInfo');
      const ok = await run(stack, 'inject_network_info', id);
      expect(ok.status).toBe('succeeded');
      const instance = (await stack.store.getInstance(id))!;
      expect(inject.mock.calls[0]![2]).toEqual(instance.ports);

      inject.mockRejectedValueOnce(new DriverError('HypervisorUnavailable', 'agent down'));
      const failed = await run(stack, 'inject_network_info', id);
      expect(failed.status).toBe('failed');
      expect((await stack.store.listFaults(id)).at(-1)?.message).toContain('agent down');

      // A failed injection during add_fixed_ip leaves the ports as they were.
      inject.mockRejectedValueOnce(new DriverError('HypervisorUnavailable', 'agent down'));
      const add = await run(stack, 'add_fixed_ip_to_instance', id, {
        args: { network_id: 'net-1' },
      });
      expect(add.status).toBe('failed');
      expect((await stack.store.getInstance(id))?.ports).toEqual(instance.ports);

      // Without a host there is no compute service to ask (409), nothing changes.
      const unplaced = await forceState(stack, id, { host: null });
      const noHost = await run(stack, 'inject_network_info', id);
      expect(noHost).toMatchObject({ status: 'rejected', error_code: 'InstanceInvalidState' });
      expect((await stack.store.getInstance(id))?.version).toBe(unplaced.version);
    });
  });
}
