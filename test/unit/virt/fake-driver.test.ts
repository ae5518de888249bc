import { beforeEach, describe, expect, it } from 'vitest';
import type { Instance } from '../../../lib/compute/instance.ts';
import { PowerState, TaskState } from '../../../lib/compute/states.ts';
import { ErrorCode, InstanceNotFoundError } from '../../../lib/errors.ts';
import { nodeUuid } from '../../../lib/virt/base-driver.ts';
import type { LiveMigrateData, MigrationInfo } from '../../../lib/virt/driver.ts';
import { CAPABILITY_KEYS } from '../../../lib/virt/driver.ts';
import { DriverError, NotSupportedError } from '../../../lib/virt/errors.ts';
import type { FakeDriver } from '../../../lib/virt/fake/driver.ts';
import {
  FAKE_CAPABILITIES,
  FAKE_CONSOLE_OUTPUT,
  fakeDriverFromConfig,
} from '../../../lib/virt/fake/driver.ts';
import { fakeMac } from '../../../lib/virt/fake/network.ts';
import { type FakeGuest, InMemoryFakeHypervisorStore } from '../../../lib/virt/fake/store.ts';
import { type FakeSetup, NODES, ctx, fakeSetup, makeInstance, spawnRequest } from './fixtures.ts';

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

const volume = (id: string) => ({ volume_id: id, driver_volume_type: 'fake', data: {} });

let s: FakeSetup;
let driver: FakeDriver;
let vm: Instance;

beforeEach(async () => {
  s = fakeSetup();
  driver = s.driver;
  vm = makeInstance();
});

async function spawned(instance: Instance = vm, powerOn = true): Promise<Instance> {
  await driver.spawn(ctx('build'), instance, spawnRequest({ powerOn }));
  return instance;
}

async function power(instance: Instance = vm): Promise<PowerState> {
  return (await driver.getInfo(ctx(), instance)).state;
}

describe('FakeDriver capabilities', () => {
  it('are Nova’s FakeDriver capabilities, same-host migration off', () => {
    expect(driver.capabilities).toBe(FAKE_CAPABILITIES);
    expect(driver.capabilities.supports_migrate_to_same_host).toBe(false);
    expect(driver.capabilities.supports_attach_interface).toBe(true);
    expect(driver.capabilities.supports_evacuate).toBe(true);
    expect(driver.capabilities.supports_image_type_raw).toBe(true);
    expect(driver.capabilities.supports_pcpus).toBe(false);
    expect(driver.capabilities.supports_bfv_rescue).toBe(false);
    expect(Object.keys(driver.capabilities).sort()).toEqual([...CAPABILITY_KEYS].sort());
    expect(driver.capabilitiesAsTraits()).toMatchObject({
      COMPUTE_NET_ATTACH_INTERFACE: true,
      COMPUTE_SAME_HOST_COLD_MIGRATE: false,
      COMPUTE_IMAGE_TYPE_RAW: true,
      COMPUTE_IMAGE_TYPE_VHD: false,
    });
    expect(driver.name).toBe('fake');
  });
});

describe('FakeDriver spawn and destroy', () => {
  it('spawns a RUNNING guest and answers done without emitting events', async () => {
    const result = await driver.spawn(ctx(), vm, spawnRequest());
    expect(result).toEqual({ status: 'done', powerState: PowerState.RUNNING, ports: [] });
    expect(await driver.getInfo(ctx(), vm)).toEqual({
      state: PowerState.RUNNING,
      internalId: `fake:fake-node-1:${vm.instance_id}`,
    });
    expect(s.sink.events).toEqual([]);
  });

  it('spawns a SHUTDOWN guest when power_on is false', async () => {
    const result = await driver.spawn(ctx(), vm, spawnRequest({ powerOn: false }));
    expect(result.status === 'done' && result.powerState).toBe(PowerState.SHUTDOWN);
    expect(await power()).toBe(PowerState.SHUTDOWN);
  });

  it('allocates deterministic ports, honouring fixed_ip', async () => {
    const request = spawnRequest({
      requestedNetworks: [{ network_id: 'net-a' }, { network_id: 'net-b', fixed_ip: '192.0.2.10' }],
    });
    const first = await driver.spawn(ctx(), vm, request);
    expect(first.ports).toHaveLength(2);
    const [a, b] = first.ports;
    expect(a?.network_id).toBe('net-a');
    expect(a?.mac).toMatch(/^fa:16:3e(:[0-9a-f]{2}){3}$/);
    expect(a?.mac).toBe(fakeMac(a?.port_id ?? ''));
    expect(a?.fixed_ips[0]).toMatchObject({
      version: 4,
      type: 'fixed',
      label: 'net-a',
      vif_mac: a?.mac,
    });
    expect(a?.fixed_ips[0]?.address).toMatch(/^10\.\d+\.\d+\.\d+$/);
    expect(b?.fixed_ips[0]?.address).toBe('192.0.2.10');
    expect(a?.port_id).not.toBe(b?.port_id);

    // Another driver process over another store computes the same network info.
    const other = fakeSetup();
    expect((await other.driver.spawn(ctx(), vm, request)).ports).toEqual(first.ports);
  });

  it('is idempotent: a second spawn of the same instance changes nothing and replays the ports', async () => {
    const first = await driver.spawn(
      ctx('a'),
      vm,
      spawnRequest({ requestedNetworks: [{ network_id: 'n' }] }),
    );
    await driver.powerOff(ctx(), vm);
    const second = await driver.spawn(ctx('b'), vm, spawnRequest({ requestedNetworks: [] }));
    expect(second).toEqual({ status: 'done', powerState: PowerState.SHUTDOWN, ports: first.ports });
    expect(await driver.listInstanceUuids(ctx())).toEqual([vm.instance_id]);
  });

  it('refuses a node it does not manage as ComputeResourcesUnavailable', async () => {
    const error = await rejection(
      driver.spawn(ctx(), makeInstance({ node: 'elsewhere' }), spawnRequest()),
    );
    expect(error).toBeInstanceOf(DriverError);
    expect(error).toMatchObject({ novaException: 'ComputeResourcesUnavailable', status: 500 });
    expect(
      await rejection(driver.spawn(ctx(), makeInstance({ node: null }), spawnRequest())),
    ).toMatchObject({
      novaException: 'ComputeResourcesUnavailable',
    });
  });

  it('attaches the block device mapping’s volumes, naming devices that have no name', async () => {
    await driver.spawn(
      ctx(),
      vm,
      spawnRequest({
        blockDeviceMapping: [
          { volume_id: 'root', device_name: null, boot_index: 0, delete_on_termination: true },
          { volume_id: 'data', device_name: null, boot_index: null, delete_on_termination: false },
          {
            volume_id: 'named',
            device_name: '/dev/vdb',
            boot_index: null,
            delete_on_termination: false,
          },
        ],
      }),
    );
    const guest = await s.store.get('fake-node-1', vm.instance_id);
    expect(guest?.volumes).toEqual({ '/dev/vda': 'root', '/dev/vdc': 'data', '/dev/vdb': 'named' });
  });

  it('never stores the secrets spawn is given', async () => {
    await driver.spawn(
      ctx(),
      vm,
      spawnRequest({
        adminPassword: 'hunter2-admin',
        userData: Buffer.from('#!/bin/sh\necho secret-user-data').toString('base64'),
        injectedFiles: [{ path: '/etc/secret', contents: 'c2VjcmV0LWZpbGU=' }],
      }),
    );
    const stored = JSON.stringify(await s.store.listByNode('fake-node-1'));
    expect(stored).not.toContain('hunter2-admin');
    expect(stored).not.toContain('c2VjcmV0LWZpbGU=');
    expect(stored).not.toContain('/etc/secret');
    expect(stored).not.toContain(
      Buffer.from('#!/bin/sh\necho secret-user-data').toString('base64'),
    );
  });

  it('destroys a guest and treats destroying an unknown guest as done', async () => {
    await spawned();
    expect(await driver.destroy(ctx(), vm)).toEqual({
      status: 'done',
      powerState: PowerState.NOSTATE,
    });
    expect(await rejection(driver.getInfo(ctx(), vm))).toBeInstanceOf(InstanceNotFoundError);
    expect(await driver.destroy(ctx(), vm)).toEqual({
      status: 'done',
      powerState: PowerState.NOSTATE,
    });
    expect(await driver.destroy(ctx(), makeInstance({ node: null }))).toMatchObject({
      status: 'done',
    });
  });

  it('cleanup raises InstanceExists until the guest is destroyed', async () => {
    await spawned();
    expect(await rejection(driver.cleanup(ctx(), vm))).toMatchObject({
      novaException: 'InstanceExists',
      code: ErrorCode.InstanceExists,
      status: 409,
    });
    await driver.destroy(ctx(), vm);
    await expect(driver.cleanup(ctx(), vm)).resolves.toBeUndefined();
  });
});

describe('FakeDriver inventory of guests', () => {
  it('get_info of an unknown guest is InstanceNotFound (404)', async () => {
    expect(await rejection(driver.getInfo(ctx(), vm))).toMatchObject({
      code: ErrorCode.InstanceNotFound,
      status: 404,
    });
    expect(await rejection(driver.getInfo(ctx(), makeInstance({ node: null })))).toBeInstanceOf(
      InstanceNotFoundError,
    );
  });

  it('lists the guests of every node', async () => {
    const other = makeInstance({ node: 'fake-node-2' });
    await spawned(vm);
    await spawned(other);
    expect((await driver.listInstanceUuids(ctx())).sort()).toEqual(
      [vm.instance_id, other.instance_id].sort(),
    );
    expect((await driver.listInstances(ctx())).sort()).toEqual(
      [vm.instance_id, other.instance_id].sort(),
    );
    expect(await driver.getNumInstances(ctx())).toBe(2);
    expect(await driver.instanceExists(ctx(), other)).toBe(true);
    expect(await driver.instanceExists(ctx(), makeInstance())).toBe(false);
    // The guest is looked up on the instance's node.
    expect(await driver.instanceExists(ctx(), { ...other, node: 'fake-node-1' })).toBe(false);
  });
});

describe('FakeDriver power operations', () => {
  it.each([
    ['powerOff', (i: Instance) => driver.powerOff(ctx(), i), PowerState.SHUTDOWN],
    ['softDelete', (i: Instance) => driver.softDelete(ctx(), i), PowerState.SHUTDOWN],
    ['pause', (i: Instance) => driver.pause(ctx(), i), PowerState.PAUSED],
    ['suspend', (i: Instance) => driver.suspend(ctx(), i), PowerState.SUSPENDED],
    ['reboot SOFT', (i: Instance) => driver.reboot(ctx(), i, 'SOFT'), PowerState.RUNNING],
    ['reboot HARD', (i: Instance) => driver.reboot(ctx(), i, 'HARD'), PowerState.RUNNING],
  ])('%s of a running guest leaves it in its honest power state', async (_name, op, expected) => {
    await spawned();
    expect(await op(vm)).toEqual({ status: 'done', powerState: expected });
    expect(await power()).toBe(expected);
  });

  it('power_on, unpause, resume and restore bring guests back to RUNNING', async () => {
    await spawned();
    await driver.powerOff(ctx(), vm);
    expect(await driver.powerOn(ctx(), vm)).toEqual({
      status: 'done',
      powerState: PowerState.RUNNING,
    });
    await driver.pause(ctx(), vm);
    expect(await driver.unpause(ctx(), vm)).toEqual({
      status: 'done',
      powerState: PowerState.RUNNING,
    });
    await driver.suspend(ctx(), vm);
    expect(await driver.resume(ctx(), vm)).toEqual({
      status: 'done',
      powerState: PowerState.RUNNING,
    });
    await driver.softDelete(ctx(), vm);
    expect(await driver.restore(ctx(), vm)).toEqual({
      status: 'done',
      powerState: PowerState.RUNNING,
    });
    expect(s.sink.events).toEqual([]);
  });

  it('a paused guest can be suspended, but a stopped one cannot be paused or suspended', async () => {
    await spawned();
    await driver.pause(ctx(), vm);
    expect(await driver.suspend(ctx(), vm)).toMatchObject({ powerState: PowerState.SUSPENDED });
    await driver.powerOff(ctx(), vm);
    for (const op of [() => driver.pause(ctx(), vm), () => driver.suspend(ctx(), vm)]) {
      expect(await rejection(op())).toMatchObject({
        novaException: 'InstanceNotRunning',
        status: 409,
      });
    }
    expect(await power()).toBe(PowerState.SHUTDOWN);
  });

  it('unpause and resume refuse guests that are neither paused/suspended nor running', async () => {
    await spawned(vm, false);
    expect(await rejection(driver.unpause(ctx(), vm))).toMatchObject({
      novaException: 'InstanceInvalidState',
      message: `Instance ${vm.instance_id} in power_state shutdown. Cannot unpause while the instance is in this state.`,
    });
    expect(await rejection(driver.resume(ctx(), vm))).toMatchObject({
      novaException: 'InstanceInvalidState',
    });
  });

  it('repeating an operation whose state is reached already is a no-op', async () => {
    await spawned();
    const before = await s.store.get('fake-node-1', vm.instance_id);
    expect(await driver.powerOn(ctx(), vm)).toEqual({
      status: 'done',
      powerState: PowerState.RUNNING,
    });
    expect(await driver.unpause(ctx(), vm)).toEqual({
      status: 'done',
      powerState: PowerState.RUNNING,
    });
    expect(await driver.resume(ctx(), vm)).toEqual({
      status: 'done',
      powerState: PowerState.RUNNING,
    });
    expect((await s.store.get('fake-node-1', vm.instance_id))?.sequence).toBe(before?.sequence);
  });

  it('power operations on an unknown guest are InstanceNotFound', async () => {
    for (const op of [
      () => driver.powerOff(ctx(), vm),
      () => driver.powerOn(ctx(), vm),
      () => driver.pause(ctx(), vm),
      () => driver.suspend(ctx(), vm),
      () => driver.reboot(ctx(), vm, 'SOFT'),
      () => driver.rescue(ctx(), vm, { rescueImageRef: null, imageMeta: {}, rescuePassword: null }),
    ]) {
      expect(await rejection(op())).toBeInstanceOf(InstanceNotFoundError);
    }
  });

  it('a HARD reboot of a guest the hypervisor lost re-creates it, as Nova’s fake does', async () => {
    const withPorts = makeInstance({
      ports: [{ port_id: 'p-1', network_id: 'n', mac: 'fa:16:3e:00:00:01', fixed_ips: [] }],
    });
    expect(await driver.reboot(ctx(), withPorts, 'HARD')).toEqual({
      status: 'done',
      powerState: PowerState.RUNNING,
    });
    const guest = await s.store.get('fake-node-1', withPorts.instance_id);
    expect(guest?.interfaces.map((i) => i.port_id)).toEqual(['p-1']);
  });

  it('rescue runs the guest from the rescue image; unrescue returns it; both are idempotent', async () => {
    await spawned();
    await driver.powerOff(ctx(), vm); // the manager powers off before rescuing
    const rescue = { rescueImageRef: 'rescue-img', imageMeta: {}, rescuePassword: 'rescue-secret' };
    expect(await driver.rescue(ctx(), vm, rescue)).toEqual({
      status: 'done',
      powerState: PowerState.RUNNING,
    });
    const rescued = await s.store.get('fake-node-1', vm.instance_id);
    expect(rescued?.rescued).toBe(true);
    expect(JSON.stringify(rescued)).not.toContain('rescue-secret');
    await driver.rescue(ctx(), vm, rescue);
    expect((await s.store.get('fake-node-1', vm.instance_id))?.sequence).toBe(rescued?.sequence);
    expect(await driver.unrescue(ctx(), vm)).toEqual({
      status: 'done',
      powerState: PowerState.RUNNING,
    });
    expect((await s.store.get('fake-node-1', vm.instance_id))?.rescued).toBe(false);
    expect(await driver.unrescue(ctx(), vm)).toEqual({
      status: 'done',
      powerState: PowerState.RUNNING,
    });
  });

  it('resume_state_on_host_boot keeps the guest as it was', async () => {
    await spawned(vm, false);
    expect(await driver.resumeStateOnHostBoot(ctx(), vm)).toEqual({
      status: 'done',
      powerState: PowerState.SHUTDOWN,
    });
    await expect(driver.pollRebootingInstances(ctx(), 60, [vm])).resolves.toBeUndefined();
  });
});

describe('FakeDriver instance operations', () => {
  it('snapshot walks the image task states like libvirt', async () => {
    await spawned();
    const calls: [string, string | null | undefined][] = [];
    const result = await driver.snapshot(ctx(), vm, 'image-2', async (state, expected) => {
      calls.push([state, expected]);
    });
    expect(result).toEqual({ status: 'done' });
    expect(calls).toEqual([
      [TaskState.IMAGE_PENDING_UPLOAD, undefined],
      [TaskState.IMAGE_UPLOADING, TaskState.IMAGE_PENDING_UPLOAD],
    ]);
  });

  it('snapshot of an unknown guest is InstanceNotRunning, as in Nova’s fake', async () => {
    expect(await rejection(driver.snapshot(ctx(), vm, 'image-2', async () => {}))).toMatchObject({
      novaException: 'InstanceNotRunning',
    });
  });

  it('set_admin_password and trigger_crash_dump need a running guest and store nothing', async () => {
    await spawned();
    await driver.setAdminPassword(ctx(), vm, 'new-secret-pw');
    await driver.triggerCrashDump(ctx(), vm);
    expect(JSON.stringify(await s.store.listByNode('fake-node-1'))).not.toContain('new-secret-pw');
    await driver.powerOff(ctx(), vm);
    expect(await rejection(driver.setAdminPassword(ctx(), vm, 'x'))).toMatchObject({
      novaException: 'InstanceNotRunning',
    });
    expect(await rejection(driver.triggerCrashDump(ctx(), vm))).toMatchObject({
      novaException: 'InstanceNotRunning',
    });
  });

  it('quiesce, unquiesce and shares need the guest to exist', async () => {
    const share = { share_id: 's', tag: 't', export_location: 'e' };
    expect(await rejection(driver.quiesce(ctx(), vm, {}))).toBeInstanceOf(InstanceNotFoundError);
    expect(await rejection(driver.mountShare(ctx(), vm, share))).toBeInstanceOf(
      InstanceNotFoundError,
    );
    await spawned();
    await expect(driver.quiesce(ctx(), vm, {})).resolves.toBeUndefined();
    await expect(driver.unquiesce(ctx(), vm, {})).resolves.toBeUndefined();
    await expect(driver.mountShare(ctx(), vm, share)).resolves.toBeUndefined();
    await expect(driver.umountShare(ctx(), vm, share)).resolves.toBeUndefined();
  });
});

describe('FakeDriver volumes', () => {
  beforeEach(async () => {
    await spawned();
  });

  const volumes = async (): Promise<Record<string, string>> =>
    (await s.store.get('fake-node-1', vm.instance_id))?.volumes ?? {};

  it('attaches, swaps and detaches volumes by mountpoint', async () => {
    await driver.attachVolume(ctx(), vm, { connectionInfo: volume('v1'), mountpoint: '/dev/vdb' });
    expect(await volumes()).toEqual({ '/dev/vdb': 'v1' });
    await driver.swapVolume(ctx(), vm, {
      oldConnectionInfo: volume('v1'),
      newConnectionInfo: volume('v2'),
      mountpoint: '/dev/vdb',
      resizeTo: 0,
    });
    expect(await volumes()).toEqual({ '/dev/vdb': 'v2' });
    await driver.detachVolume(ctx(), vm, { connectionInfo: volume('v2'), mountpoint: '/dev/vdb' });
    expect(await volumes()).toEqual({});
  });

  it('attaching the same volume again is a no-op; another volume on a used path is DevicePathInUse', async () => {
    await driver.attachVolume(ctx(), vm, { connectionInfo: volume('v1'), mountpoint: '/dev/vdb' });
    await driver.attachVolume(ctx(), vm, { connectionInfo: volume('v1'), mountpoint: '/dev/vdb' });
    expect(
      await rejection(
        driver.attachVolume(ctx(), vm, { connectionInfo: volume('v2'), mountpoint: '/dev/vdb' }),
      ),
    ).toMatchObject({ novaException: 'DevicePathInUse', status: 409 });
    expect(await volumes()).toEqual({ '/dev/vdb': 'v1' });
  });

  it('detaching what is not attached succeeds and leaves other volumes alone', async () => {
    await driver.attachVolume(ctx(), vm, { connectionInfo: volume('v1'), mountpoint: '/dev/vdb' });
    await driver.detachVolume(ctx(), vm, { connectionInfo: volume('v9'), mountpoint: '/dev/vdb' });
    await driver.detachVolume(ctx(), vm, { connectionInfo: volume('v1'), mountpoint: '/dev/vdz' });
    expect(await volumes()).toEqual({ '/dev/vdb': 'v1' });
  });

  it('extend_volume needs the volume to be attached', async () => {
    await driver.attachVolume(ctx(), vm, { connectionInfo: volume('v1'), mountpoint: '/dev/vdb' });
    await expect(
      driver.extendVolume(ctx(), vm, volume('v1'), 10 * 2 ** 30),
    ).resolves.toBeUndefined();
    expect(await rejection(driver.extendVolume(ctx(), vm, volume('v2'), 1))).toMatchObject({
      novaException: 'VolumeNotFound',
    });
  });

  it('reports a connector, zero usage and zero block stats', async () => {
    expect(await driver.getVolumeConnector(ctx(), vm)).toEqual({
      ip: '192.168.0.1',
      initiator: 'fake',
      host: 'stratus',
    });
    await driver.initHost(ctx(), 'compute-a');
    expect((await driver.getVolumeConnector(ctx(), vm)).host).toBe('compute-a');
    const bdm = {
      volume_id: 'v1',
      device_name: '/dev/vdb',
      boot_index: null,
      delete_on_termination: false,
    };
    expect(await driver.getAllVolumeUsage(ctx(), [{ instance: vm, instanceBdms: [bdm] }])).toEqual([
      { volume: 'v1', instance: vm.instance_id, rd_bytes: 0, rd_req: 0, wr_bytes: 0, wr_req: 0 },
    ]);
    expect(await driver.blockStats(ctx(), vm, 'vda')).toEqual([0, 0, 0, 0, null]);
  });
});

describe('FakeDriver interfaces', () => {
  it('attaches an interface and returns the port it plugged', async () => {
    await spawned();
    const port = await driver.attachInterface(ctx('attach-1'), vm, {
      network_id: 'net-x',
      fixed_ip: '2001:db8::5',
      tag: 'nic1',
    });
    expect(port).toMatchObject({ network_id: 'net-x' });
    expect(port.fixed_ips[0]).toMatchObject({ address: '2001:db8::5', version: 6 });
    const guest = await s.store.get('fake-node-1', vm.instance_id);
    expect(guest?.interfaces).toEqual([{ ...port, tag: 'nic1', attachedBy: 'attach-1' }]);
  });

  it('attaching an attached port fails unless it is the same command retried', async () => {
    await spawned();
    const first = await driver.attachInterface(ctx('attach-1'), vm, {
      port_id: 'port-1',
      network_id: 'n',
    });
    expect(
      await driver.attachInterface(ctx('attach-1'), vm, { port_id: 'port-1', network_id: 'n' }),
    ).toEqual(first);
    expect(
      await rejection(
        driver.attachInterface(ctx('attach-2'), vm, { port_id: 'port-1', network_id: 'n' }),
      ),
    ).toMatchObject({
      novaException: 'InterfaceAttachFailed',
      message: `Failed to attach network adapter device to ${vm.instance_id}`,
    });
    // A retried command without a port id gets the same port back, not a second one.
    const auto = await driver.attachInterface(ctx('attach-3'), vm, { network_id: 'n' });
    expect(await driver.attachInterface(ctx('attach-3'), vm, { network_id: 'n' })).toEqual(auto);
    expect((await s.store.get('fake-node-1', vm.instance_id))?.interfaces).toHaveLength(2);
  });

  it('needs a network or a port to attach', async () => {
    await spawned();
    expect(await rejection(driver.attachInterface(ctx(), vm, {}))).toMatchObject({
      novaException: 'InterfaceAttachFailed',
    });
  });

  it('detaches spawn’s and hot-plugged interfaces; detaching an unknown one fails', async () => {
    const result = await driver.spawn(
      ctx(),
      vm,
      spawnRequest({ requestedNetworks: [{ network_id: 'n' }] }),
    );
    const bootPort = result.ports[0]?.port_id ?? '';
    await driver.detachInterface(ctx(), vm, bootPort);
    expect(await rejection(driver.detachInterface(ctx(), vm, bootPort))).toMatchObject({
      novaException: 'InterfaceDetachFailed',
      message: `Failed to detach network adapter device from ${vm.instance_id}`,
    });
  });

  it('plug/unplug vifs and the network defaults are no-ops', async () => {
    await expect(driver.plugVifs(ctx(), vm, [])).resolves.toBeUndefined();
    await expect(driver.unplugVifs(ctx(), vm, [])).resolves.toBeUndefined();
    await expect(driver.injectNetworkInfo(ctx(), vm, [])).resolves.toBeUndefined();
  });
});

describe('FakeDriver consoles and diagnostics', () => {
  it('returns Nova’s fake console output and console endpoints', async () => {
    await spawned();
    expect(await driver.getConsoleOutput(ctx(), vm)).toBe(FAKE_CONSOLE_OUTPUT);
    expect(FAKE_CONSOLE_OUTPUT).toBe('FAKE CONSOLE OUTPUT\nANOTHER\nLAST LINE');
    const vnc = await driver.getVncConsole(ctx(), vm);
    expect(vnc).toMatchObject({ host: 'fakevncconsole.com', port: 6969 });
    expect(vnc.internal_access_path).toMatch(/^[0-9a-f-]{36}$/);
    expect(await driver.getSpiceConsole(ctx(), vm)).toMatchObject({
      host: 'fakespiceconsole.com',
      port: 6969,
      tls_port: 6970,
    });
    expect(await driver.getSerialConsole(ctx(), vm)).toMatchObject({ port: 6969 });
    expect(await driver.getMksConsole(ctx(), vm)).toMatchObject({ host: 'fakemksconsole.com' });
  });

  it('consoles of an unknown guest are InstanceNotFound', async () => {
    expect(await rejection(driver.getConsoleOutput(ctx(), vm))).toBeInstanceOf(
      InstanceNotFoundError,
    );
    expect(await rejection(driver.getVncConsole(ctx(), vm))).toBeInstanceOf(InstanceNotFoundError);
  });

  it('diagnostics describe the guest’s own cpus, memory, disks and nics', async () => {
    await driver.spawn(ctx(), vm, spawnRequest({ requestedNetworks: [{ network_id: 'n' }] }));
    await driver.attachVolume(ctx(), vm, { connectionInfo: volume('v1'), mountpoint: '/dev/vdb' });
    const diagnostics = await driver.getDiagnostics(ctx(), vm);
    expect(Object.keys(diagnostics).filter((k) => k.startsWith('cpu'))).toEqual([
      'cpu0_time',
      'cpu1_time',
    ]);
    expect(diagnostics['memory']).toBe(2048 * 1024);
    expect(diagnostics).toHaveProperty('vda_read');
    expect(diagnostics).toHaveProperty('vdb_write_req');
    expect(diagnostics).toHaveProperty('vnet0_rx_packets');
    expect(diagnostics).not.toHaveProperty('vnet1_rx');
  });

  it('instance diagnostics count the guest’s devices and its uptime', async () => {
    await driver.spawn(ctx(), vm, spawnRequest({ requestedNetworks: [{ network_id: 'n' }] }));
    s.clock.now = new Date(s.clock.now.getTime() + 90_000);
    const d = await driver.getInstanceDiagnostics(ctx(), vm);
    expect(d).toMatchObject({
      state: 'running',
      driver: 'fake',
      uptime: 90,
      num_cpus: 2,
      num_nics: 1,
      num_disks: 1,
      memory_details: { maximum: 2048, used: 0 },
    });
    expect(d.cpu_details).toHaveLength(2);
    expect(d.nic_details[0]?.mac_address).toMatch(/^fa:16:3e/);
    await driver.powerOff(ctx(), vm);
    expect(await driver.getInstanceDiagnostics(ctx(), vm)).toMatchObject({
      state: 'shutdown',
      uptime: 0,
    });
  });
});

describe('FakeDriver nodes, host and resources', () => {
  it('reports the configured nodes, each with a stable uuid', async () => {
    expect(await driver.getAvailableNodes(ctx())).toEqual(['fake-node-1', 'fake-node-2']);
    expect(await driver.getNodenamesByUuid(ctx())).toEqual({
      [nodeUuid('fake-node-1')]: 'fake-node-1',
      [nodeUuid('fake-node-2')]: 'fake-node-2',
    });
    expect(await driver.nodeIsAvailable(ctx(), 'fake-node-2')).toBe(true);
    expect(await driver.nodeIsAvailable(ctx(), 'fake-node-9')).toBe(false);
  });

  it('echoes Nova’s host operation strings for its own nodes', async () => {
    expect(await driver.hostMaintenanceMode(ctx(), 'fake-node-1', true)).toBe('on_maintenance');
    expect(await driver.hostMaintenanceMode(ctx(), 'fake-node-1', false)).toBe('off_maintenance');
    expect(await driver.setHostEnabled(ctx(), 'fake-node-2', true)).toBe('enabled');
    expect(await driver.setHostEnabled(ctx(), 'fake-node-2', false)).toBe('disabled');
    expect(await driver.hostPowerAction(ctx(), 'reboot')).toBe('reboot');
    expect(await driver.getHostIpAddr(ctx())).toBe('192.168.0.1');
    expect(await driver.getHostCpuStats(ctx())).toMatchObject({ frequency: 800 });
    expect(await rejection(driver.setHostEnabled(ctx(), 'nope', true))).toMatchObject({
      novaException: 'ComputeHostNotFound',
    });
  });

  it('sums usage from the node’s own guests', async () => {
    await spawned(vm);
    await spawned(
      makeInstance({
        flavor: { ...vm.flavor, vcpus: 4, memory_mb: 4096, root_gb: 40, ephemeral_gb: 0 },
      }),
    );
    await spawned(makeInstance({ node: 'fake-node-2' }));
    const resources = await driver.getAvailableResource(ctx(), 'fake-node-1');
    expect(resources).toEqual({
      vcpus: 16,
      memory_mb: 32768,
      local_gb: 500,
      vcpus_used: 6,
      memory_mb_used: 6144,
      local_gb_used: 65,
      cpu_info: expect.any(String),
      numa_topology: null,
      hypervisor_type: 'fake',
      hypervisor_version: 1000,
      hypervisor_hostname: 'fake-node-1',
      availability_zone: 'nova',
      supported_instances: [['x86_64', 'fake', 'hvm']],
    });
    expect(JSON.parse(resources?.cpu_info ?? '')).toMatchObject({
      arch: 'x86_64',
      model: 'Nehalem',
    });
    expect((await driver.getAvailableResource(ctx(), 'fake-node-2'))?.availability_zone).toBe(
      'az-2',
    );
    expect(await driver.getAvailableResource(ctx(), 'unknown')).toBeNull();
  });

  it('stops counting a destroyed guest', async () => {
    await spawned();
    await driver.destroy(ctx(), vm);
    expect(await driver.getAvailableResource(ctx(), 'fake-node-1')).toMatchObject({
      vcpus_used: 0,
      memory_mb_used: 0,
      local_gb_used: 0,
    });
  });

  it('reports its inventory with the deployment’s ratios and reservations', async () => {
    const inventory = await driver.updateProviderTree(ctx(), 'fake-node-2', {
      cpu_allocation_ratio: 4,
      ram_allocation_ratio: 1.5,
      disk_allocation_ratio: 1,
      reserved_host_cpus: 1,
      reserved_host_memory_mb: 512,
      reserved_host_disk_mb: 1500,
    });
    expect(inventory).toEqual({
      VCPU: { total: 8, reserved: 1, min_unit: 1, max_unit: 8, step_size: 1, allocation_ratio: 4 },
      MEMORY_MB: {
        total: 16384,
        reserved: 512,
        min_unit: 1,
        max_unit: 16384,
        step_size: 1,
        allocation_ratio: 1.5,
      },
      DISK_GB: {
        total: 200,
        reserved: 2,
        min_unit: 1,
        max_unit: 200,
        step_size: 1,
        allocation_ratio: 1,
      },
    });
  });

  it('is built from config options by fakeDriverFromConfig', async () => {
    const built = fakeDriverFromConfig(
      { fake_nodes: [NODES[1]!], fake_async: true, host: 'h' },
      { store: new InMemoryFakeHypervisorStore(), sink: s.sink },
    );
    expect(built.asyncMode).toBe(true);
    expect(await built.getAvailableNodes(ctx())).toEqual(['fake-node-2']);
  });
});

describe('FakeDriver cold migration', () => {
  const migration: MigrationInfo = {
    migration_id: 'mig-1',
    migration_type: 'resize',
    source_compute: 'stratus',
    dest_compute: 'stratus',
    source_node: 'fake-node-1',
    dest_node: 'fake-node-2',
  };
  const bigger = { ...makeInstance().flavor, name: 'm1.large', vcpus: 4, memory_mb: 8192 };

  it('resize: power off at the source, the guest appears on the destination, confirm removes the source', async () => {
    await spawned();
    await driver.attachVolume(ctx(), vm, { connectionInfo: volume('v1'), mountpoint: '/dev/vdb' });
    expect(
      await driver.migrateDiskAndPowerOff(ctx(), vm, {
        destHost: 'stratus',
        destNode: 'fake-node-2',
        flavor: bigger,
        timeout: 0,
        retryInterval: 0,
      }),
    ).toEqual({ status: 'done', powerState: PowerState.SHUTDOWN, diskInfo: '[]' });

    const moved = { ...vm, node: 'fake-node-2', flavor: bigger };
    const request = {
      diskInfo: '[]',
      imageMeta: {},
      resizeInstance: true,
      blockDeviceMapping: [],
      powerOn: true,
    };
    expect(await driver.finishMigration(ctx(), migration, moved, request)).toEqual({
      status: 'done',
      powerState: PowerState.RUNNING,
    });
    expect(await driver.finishMigration(ctx(), migration, moved, request)).toMatchObject({
      status: 'done',
    });
    const dest = await s.store.get('fake-node-2', vm.instance_id);
    expect(dest?.flavor).toEqual({ vcpus: 4, memory_mb: 8192, disk_gb: 25 });
    expect(dest?.volumes).toEqual({ '/dev/vdb': 'v1' });
    // Until confirmed, both nodes hold the guest's resources.
    expect((await driver.getAvailableResource(ctx(), 'fake-node-1'))?.vcpus_used).toBe(2);

    await driver.confirmMigration(ctx(), migration, moved);
    expect(await s.store.get('fake-node-1', vm.instance_id)).toBeNull();
    expect(await power(moved)).toBe(PowerState.RUNNING);
  });

  it('revert: the destination guest is destroyed and the source comes back', async () => {
    await spawned();
    await driver.migrateDiskAndPowerOff(ctx(), vm, {
      destHost: 'stratus',
      destNode: 'fake-node-2',
      flavor: bigger,
      timeout: 0,
      retryInterval: 0,
    });
    const moved = { ...vm, node: 'fake-node-2', flavor: bigger };
    await driver.finishMigration(ctx(), migration, moved, {
      diskInfo: '[]',
      imageMeta: {},
      resizeInstance: true,
      blockDeviceMapping: [],
      powerOn: true,
    });
    await driver.destroy(ctx(), moved);
    expect(await driver.finishRevertMigration(ctx(), vm, migration, { powerOn: true })).toEqual({
      status: 'done',
      powerState: PowerState.RUNNING,
    });
    expect(await power(vm)).toBe(PowerState.RUNNING);
    expect(await driver.listInstanceUuids(ctx())).toEqual([vm.instance_id]);
  });

  it('finish_revert_migration re-creates a source guest that is gone', async () => {
    expect(await driver.finishRevertMigration(ctx(), vm, migration, { powerOn: false })).toEqual({
      status: 'done',
      powerState: PowerState.SHUTDOWN,
    });
    expect(await power(vm)).toBe(PowerState.SHUTDOWN);
  });

  it('refuses a same-node migration (supports_migrate_to_same_host is false)', async () => {
    await spawned();
    const same = { ...migration, dest_node: 'fake-node-1' };
    expect(
      await rejection(
        driver.finishMigration(ctx(), same, vm, {
          diskInfo: '[]',
          imageMeta: {},
          resizeInstance: false,
          blockDeviceMapping: [],
          powerOn: true,
        }),
      ),
    ).toMatchObject({ novaException: 'UnableToMigrateToSelf' });
  });
});

describe('FakeDriver live migration', () => {
  async function checked(): Promise<LiveMigrateData> {
    return driver.checkCanLiveMigrateDestination(ctx(), vm, {
      destNode: 'fake-node-2',
      blockMigration: false,
      diskOverCommit: false,
    });
  }

  it('checks the destination and moves the running guest there', async () => {
    await spawned();
    await driver.pause(ctx(), vm);
    const data = await checked();
    expect(data).toMatchObject({
      source_node: 'fake-node-1',
      dest_node: 'fake-node-2',
      is_shared_block_storage: true,
      disk_available_mb: 200 * 1024,
    });
    expect(await driver.checkCanLiveMigrateSource(ctx(), vm, data)).toBe(data);
    expect(await driver.preLiveMigration(ctx(), vm, data)).toBe(data);
    expect(await driver.liveMigration(ctx(), vm, data)).toEqual({ status: 'done' });
    await driver.postLiveMigrationAtDestination(ctx(), vm, data);
    // The manager always calls it; the fake has nothing left on the source (not a 501).
    await expect(driver.postLiveMigrationAtSource(ctx(), vm, [])).resolves.toBeUndefined();
    await driver.cleanup(ctx(), vm); // the source no longer has the guest
    const moved = { ...vm, node: 'fake-node-2' };
    expect(await power(moved)).toBe(PowerState.PAUSED);
    expect(await s.store.get('fake-node-1', vm.instance_id)).toBeNull();
    // A retried live_migration of the same command finds the work done.
    expect(await driver.liveMigration(ctx(), vm, data)).toEqual({ status: 'done' });
  });

  it('refuses the guest’s own node and nodes it does not manage', async () => {
    await spawned();
    expect(
      await rejection(
        driver.checkCanLiveMigrateDestination(ctx(), vm, {
          destNode: 'fake-node-1',
          blockMigration: false,
          diskOverCommit: false,
        }),
      ),
    ).toMatchObject({ novaException: 'UnableToMigrateToSelf' });
    expect(
      await rejection(
        driver.checkCanLiveMigrateDestination(ctx(), vm, {
          destNode: 'fake-node-7',
          blockMigration: false,
          diskOverCommit: false,
        }),
      ),
    ).toMatchObject({ novaException: 'MigrationPreCheckError' });
  });

  it('rolls back a destination copy but never deletes the last copy', async () => {
    await spawned();
    const data = await checked();
    await driver.postLiveMigrationAtDestination(ctx(), vm, data); // a copy at the destination
    await driver.rollbackLiveMigrationAtDestination(ctx(), vm, data, { destroyDisks: true });
    expect(await s.store.get('fake-node-2', vm.instance_id)).toBeNull();
    await driver.liveMigration(ctx(), vm, data);
    await driver.rollbackLiveMigrationAtDestination(ctx(), vm, data, { destroyDisks: true });
    expect(await s.store.get('fake-node-2', vm.instance_id)).not.toBeNull();
  });

  it('no-ops where Nova’s fake does', async () => {
    await spawned();
    const data = await checked();
    await expect(driver.cleanupLiveMigrationDestinationCheck(ctx(), data)).resolves.toBeUndefined();
    await expect(driver.liveMigrationForceComplete(ctx(), vm)).resolves.toBeUndefined();
    await expect(driver.liveMigrationAbort(ctx(), vm)).resolves.toBeUndefined();
    expect(await driver.getInstanceDiskInfo(ctx(), vm)).toBeNull();
  });
});

describe('FakeDriver unsupported methods', () => {
  const bdm = { volume_id: 'v', device_name: null, boot_index: 0, delete_on_termination: true };
  const cases: [string, () => Promise<unknown>][] = [
    [
      'rebuild',
      () =>
        driver.rebuild(ctx(), vm, {
          imageRef: 'i',
          imageMeta: {},
          injectedFiles: [],
          adminPassword: null,
          blockDeviceMapping: [],
          preserveEphemeral: false,
          evacuate: false,
        }),
    ],
    ['get_host_uptime', () => driver.getHostUptime(ctx())],
    ['power_update_event', () => driver.powerUpdateEvent(ctx(), vm, 'POWER_OFF')],
    [
      'check_instance_shared_storage_local',
      () => driver.checkInstanceSharedStorageLocal(ctx(), vm),
    ],
    [
      'check_instance_shared_storage_remote',
      () => driver.checkInstanceSharedStorageRemote(ctx(), {}),
    ],
    ['volume_snapshot_create', () => driver.volumeSnapshotCreate(ctx(), vm, 'v', {})],
    ['volume_snapshot_delete', () => driver.volumeSnapshotDelete(ctx(), vm, 'v', 's', {})],
    ['default_root_device_name', () => driver.defaultRootDeviceName(ctx(), vm, {}, bdm)],
    [
      'default_device_names_for_instance',
      () => driver.defaultDeviceNamesForInstance(ctx(), vm, '/dev/vda', []),
    ],
    ['get_device_name_for_instance', () => driver.getDeviceNameForInstance(ctx(), vm, [], bdm)],
    ['cache_image', () => driver.cacheImage(ctx(), 'image-1')],
  ];

  it.each(cases)('%s is NotSupported (501), never a silent success', async (nova, call) => {
    await spawned();
    const error = await rejection(call());
    expect(error).toBeInstanceOf(NotSupportedError);
    expect(error).toMatchObject({
      status: 501,
      code: ErrorCode.NotSupported,
      message: `The fake driver does not support ${nova}`,
    });
  });
});

describe('FakeDriver fault injection', () => {
  it('fails the next call of a method before it changes anything', async () => {
    const boom = new DriverError(
      'ComputeResourcesUnavailable',
      'Insufficient compute resources: test.',
    );
    s.faults.failNext('spawn', boom);
    expect(await rejection(driver.spawn(ctx(), vm, spawnRequest()))).toBe(boom);
    expect(await driver.instanceExists(ctx(), vm)).toBe(false);
    expect(await driver.spawn(ctx(), vm, spawnRequest())).toMatchObject({ status: 'done' });
  });

  it('fails as many times as asked, then recovers', async () => {
    await spawned();
    const boom = new Error('hypervisor hiccup');
    s.faults.failNext('powerOff', boom, 2);
    expect(await rejection(driver.powerOff(ctx(), vm))).toBe(boom);
    expect(await rejection(driver.powerOff(ctx(), vm))).toBe(boom);
    expect(await power()).toBe(PowerState.RUNNING);
    expect(s.faults.pending('powerOff')).toBe(0);
    expect(await driver.powerOff(ctx(), vm)).toMatchObject({ powerState: PowerState.SHUTDOWN });
  });

  it('failAlways keeps failing until cleared, and faults are per method', async () => {
    await spawned();
    s.faults.failAlways('getInfo', new Error('down'));
    await expect(driver.getInfo(ctx(), vm)).rejects.toThrow('down');
    await expect(driver.getInfo(ctx(), vm)).rejects.toThrow('down');
    await expect(driver.powerOff(ctx(), vm)).resolves.toMatchObject({ status: 'done' });
    s.faults.clear('getInfo');
    expect(await power()).toBe(PowerState.SHUTDOWN);
  });
});

describe('FakeDriver concurrency', () => {
  /** A store where another writer wins the first `conflicts` conditional updates. */
  class ContendedStore extends InMemoryFakeHypervisorStore {
    conflicts: number;
    constructor(conflicts: number) {
      super();
      this.conflicts = conflicts;
    }
    override async replace(guest: FakeGuest, expected: number): Promise<boolean> {
      if (this.conflicts > 0) {
        this.conflicts -= 1;
        return false;
      }
      return super.replace(guest, expected);
    }
  }

  it('re-reads and retries when another writer changed the guest first', async () => {
    const store = new ContendedStore(0);
    const setup = fakeSetup({ store });
    await setup.driver.spawn(ctx(), vm, spawnRequest());
    store.conflicts = 3;
    expect(await setup.driver.powerOff(ctx(), vm)).toMatchObject({
      powerState: PowerState.SHUTDOWN,
    });
  });

  it('gives up with HypervisorUnavailable when it never wins', async () => {
    const store = new ContendedStore(0);
    const setup = fakeSetup({ store });
    await setup.driver.spawn(ctx(), vm, spawnRequest());
    store.conflicts = 100;
    expect(await rejection(setup.driver.powerOff(ctx(), vm))).toMatchObject({
      novaException: 'HypervisorUnavailable',
    });
  });

  it('two concurrent spawns of one instance leave exactly one guest, and both succeed', async () => {
    const store = new InMemoryFakeHypervisorStore();
    const one = fakeSetup({ store });
    const two = fakeSetup({ store });
    const request = spawnRequest({ requestedNetworks: [{ network_id: 'n' }] });
    const [a, b] = await Promise.all([
      one.driver.spawn(ctx('x'), vm, request),
      two.driver.spawn(ctx('x'), vm, request),
    ]);
    expect(a.status).toBe('done');
    expect(b.status).toBe('done');
    expect(a.ports).toEqual(b.ports);
    expect(await store.listByNode('fake-node-1')).toHaveLength(1);
  });
});

describe('FakeDriver out-of-band changes', () => {
  it('reports a guest that shut itself down with a STOPPED event, in synchronous mode too', async () => {
    await spawned();
    await driver.simulatePowerChange('fake-node-1', vm.instance_id, PowerState.SHUTDOWN);
    expect(await power()).toBe(PowerState.SHUTDOWN);
    expect(s.sink.events).toMatchObject([
      { instanceId: vm.instance_id, transition: 'stopped', node: 'fake-node-1', source: 'fake' },
    ]);
    await driver.simulatePowerChange('fake-node-1', vm.instance_id, PowerState.SHUTDOWN);
    expect(s.sink.events).toHaveLength(1);
  });

  it('names the transition after the state the guest went to', async () => {
    await spawned();
    const change = (state: PowerState) =>
      driver.simulatePowerChange('fake-node-1', vm.instance_id, state);
    await change(PowerState.PAUSED);
    await change(PowerState.RUNNING);
    await change(PowerState.SUSPENDED);
    await change(PowerState.RUNNING);
    await change(PowerState.CRASHED);
    await change(PowerState.RUNNING);
    expect(s.sink.events.map((e) => e.transition)).toEqual([
      'paused',
      'resumed',
      'suspended',
      'resumed',
      'stopped',
      'started',
    ]);
  });

  it('loses a guest on request', async () => {
    await spawned();
    await driver.simulateGuestLoss('fake-node-1', vm.instance_id);
    expect(await driver.instanceExists(ctx(), vm)).toBe(false);
  });
});
