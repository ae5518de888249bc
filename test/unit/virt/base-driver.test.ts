import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../lib/errors.ts';
import { BaseComputeDriver, nodeUuid } from '../../../lib/virt/base-driver.ts';
import {
  CAPABILITY_KEYS,
  type DriverContext,
  type LiveMigrateData,
  type MigrationInfo,
} from '../../../lib/virt/driver.ts';
import { NotSupportedError } from '../../../lib/virt/errors.ts';
import { InMemoryLifecycleSink, type LifecycleEvent } from '../../../lib/virt/events.ts';
import { ctx, makeInstance, spawnRequest } from './fixtures.ts';

const instance = makeInstance();
const c = ctx();
const migration: MigrationInfo = {
  migration_id: 'm-1',
  migration_type: 'resize',
  source_compute: 'stratus',
  dest_compute: 'stratus',
  source_node: 'fake-node-1',
  dest_node: 'fake-node-2',
};
const migrateData: LiveMigrateData = {
  source_node: 'fake-node-1',
  dest_node: 'fake-node-2',
  block_migration: false,
  disk_over_commit: false,
  is_shared_block_storage: true,
  is_shared_instance_path: true,
  disk_available_mb: null,
  driver_data: {},
};
const volume = { volume_id: 'vol-1', driver_volume_type: 'fake', data: {} };
const bdm = { volume_id: 'vol-1', device_name: null, boot_index: 0, delete_on_termination: true };
const share = { share_id: 's', tag: 't', export_location: 'x' };

/** Every Nova [NI] method of the base class, with the Nova name its error must carry. */
const NOT_IMPLEMENTED: [string, (d: BaseComputeDriver) => Promise<unknown>][] = [
  ['init_host', (d) => d.initHost(c, 'stratus')],
  ['get_available_nodes', (d) => d.getAvailableNodes(c)],
  ['get_host_ip_addr', (d) => d.getHostIpAddr(c)],
  ['host_power_action', (d) => d.hostPowerAction(c, 'reboot')],
  ['host_maintenance_mode', (d) => d.hostMaintenanceMode(c, 'fake-node-1', true)],
  ['set_host_enabled', (d) => d.setHostEnabled(c, 'fake-node-1', true)],
  ['get_host_uptime', (d) => d.getHostUptime(c)],
  ['get_host_cpu_stats', (d) => d.getHostCpuStats(c)],
  ['spawn', (d) => d.spawn(c, instance, spawnRequest())],
  [
    'rebuild',
    (d) =>
      d.rebuild(c, instance, {
        imageRef: 'i',
        imageMeta: {},
        injectedFiles: [],
        adminPassword: null,
        blockDeviceMapping: [],
        preserveEphemeral: false,
        evacuate: false,
      }),
  ],
  ['destroy', (d) => d.destroy(c, instance)],
  ['cleanup', (d) => d.cleanup(c, instance)],
  ['soft_delete', (d) => d.softDelete(c, instance)],
  ['restore', (d) => d.restore(c, instance)],
  ['snapshot', (d) => d.snapshot(c, instance, 'img', async () => {})],
  ['set_admin_password', (d) => d.setAdminPassword(c, instance, 'secret')],
  ['trigger_crash_dump', (d) => d.triggerCrashDump(c, instance)],
  ['quiesce', (d) => d.quiesce(c, instance, {})],
  ['unquiesce', (d) => d.unquiesce(c, instance, {})],
  ['cache_image', (d) => d.cacheImage(c, 'img')],
  ['get_info', (d) => d.getInfo(c, instance)],
  ['list_instances', (d) => d.listInstances(c)],
  ['list_instance_uuids', (d) => d.listInstanceUuids(c)],
  ['reboot', (d) => d.reboot(c, instance, 'SOFT')],
  ['power_off', (d) => d.powerOff(c, instance)],
  ['power_on', (d) => d.powerOn(c, instance)],
  ['pause', (d) => d.pause(c, instance)],
  ['unpause', (d) => d.unpause(c, instance)],
  ['suspend', (d) => d.suspend(c, instance)],
  ['resume', (d) => d.resume(c, instance)],
  ['resume_state_on_host_boot', (d) => d.resumeStateOnHostBoot(c, instance)],
  [
    'rescue',
    (d) => d.rescue(c, instance, { rescueImageRef: null, imageMeta: {}, rescuePassword: null }),
  ],
  ['unrescue', (d) => d.unrescue(c, instance)],
  ['poll_rebooting_instances', (d) => d.pollRebootingInstances(c, 60, [instance])],
  ['power_update_event', (d) => d.powerUpdateEvent(c, instance, 'POWER_ON')],
  [
    'migrate_disk_and_power_off',
    (d) =>
      d.migrateDiskAndPowerOff(c, instance, {
        destHost: 'stratus',
        destNode: 'fake-node-2',
        flavor: instance.flavor,
        timeout: 0,
        retryInterval: 0,
      }),
  ],
  [
    'finish_migration',
    (d) =>
      d.finishMigration(c, migration, instance, {
        diskInfo: '[]',
        imageMeta: {},
        resizeInstance: true,
        blockDeviceMapping: [],
        powerOn: true,
      }),
  ],
  ['confirm_migration', (d) => d.confirmMigration(c, migration, instance)],
  [
    'finish_revert_migration',
    (d) => d.finishRevertMigration(c, instance, migration, { powerOn: true }),
  ],
  [
    'check_can_live_migrate_destination',
    (d) =>
      d.checkCanLiveMigrateDestination(c, instance, {
        destNode: 'fake-node-2',
        blockMigration: false,
        diskOverCommit: false,
      }),
  ],
  [
    'cleanup_live_migration_destination_check',
    (d) => d.cleanupLiveMigrationDestinationCheck(c, migrateData),
  ],
  ['check_can_live_migrate_source', (d) => d.checkCanLiveMigrateSource(c, instance, migrateData)],
  ['pre_live_migration', (d) => d.preLiveMigration(c, instance, migrateData)],
  ['live_migration', (d) => d.liveMigration(c, instance, migrateData)],
  ['live_migration_force_complete', (d) => d.liveMigrationForceComplete(c, instance)],
  ['live_migration_abort', (d) => d.liveMigrationAbort(c, instance)],
  [
    'rollback_live_migration_at_destination',
    (d) => d.rollbackLiveMigrationAtDestination(c, instance, migrateData, { destroyDisks: true }),
  ],
  ['post_live_migration_at_source', (d) => d.postLiveMigrationAtSource(c, instance, [])],
  [
    'post_live_migration_at_destination',
    (d) => d.postLiveMigrationAtDestination(c, instance, migrateData),
  ],
  ['check_instance_shared_storage_local', (d) => d.checkInstanceSharedStorageLocal(c, instance)],
  ['check_instance_shared_storage_remote', (d) => d.checkInstanceSharedStorageRemote(c, {})],
  ['get_instance_disk_info', (d) => d.getInstanceDiskInfo(c, instance)],
  [
    'attach_volume',
    (d) => d.attachVolume(c, instance, { connectionInfo: volume, mountpoint: '/dev/vdb' }),
  ],
  [
    'detach_volume',
    (d) => d.detachVolume(c, instance, { connectionInfo: volume, mountpoint: '/dev/vdb' }),
  ],
  [
    'swap_volume',
    (d) =>
      d.swapVolume(c, instance, {
        oldConnectionInfo: volume,
        newConnectionInfo: volume,
        mountpoint: '/dev/vdb',
        resizeTo: 0,
      }),
  ],
  ['extend_volume', (d) => d.extendVolume(c, instance, volume, 1)],
  ['get_volume_connector', (d) => d.getVolumeConnector(c, instance)],
  ['get_all_volume_usage', (d) => d.getAllVolumeUsage(c, [])],
  ['block_stats', (d) => d.blockStats(c, instance, 'vda')],
  ['volume_snapshot_create', (d) => d.volumeSnapshotCreate(c, instance, 'vol-1', {})],
  ['volume_snapshot_delete', (d) => d.volumeSnapshotDelete(c, instance, 'vol-1', 'snap-1', {})],
  ['default_root_device_name', (d) => d.defaultRootDeviceName(c, instance, {}, bdm)],
  [
    'default_device_names_for_instance',
    (d) => d.defaultDeviceNamesForInstance(c, instance, '/dev/vda', [bdm]),
  ],
  ['get_device_name_for_instance', (d) => d.getDeviceNameForInstance(c, instance, [], bdm)],
  ['mount_share', (d) => d.mountShare(c, instance, share)],
  ['umount_share', (d) => d.umountShare(c, instance, share)],
  ['attach_interface', (d) => d.attachInterface(c, instance, { network_id: 'net' })],
  ['detach_interface', (d) => d.detachInterface(c, instance, 'port')],
  ['plug_vifs', (d) => d.plugVifs(c, instance, [])],
  ['unplug_vifs', (d) => d.unplugVifs(c, instance, [])],
  ['get_console_output', (d) => d.getConsoleOutput(c, instance)],
  ['get_vnc_console', (d) => d.getVncConsole(c, instance)],
  ['get_spice_console', (d) => d.getSpiceConsole(c, instance)],
  ['get_serial_console', (d) => d.getSerialConsole(c, instance)],
  ['get_mks_console', (d) => d.getMksConsole(c, instance)],
  ['get_diagnostics', (d) => d.getDiagnostics(c, instance)],
  ['get_instance_diagnostics', (d) => d.getInstanceDiagnostics(c, instance)],
  ['get_available_resource', (d) => d.getAvailableResource(c, 'fake-node-1')],
  [
    'update_provider_tree',
    (d) =>
      d.updateProviderTree(c, 'fake-node-1', {
        cpu_allocation_ratio: 4,
        ram_allocation_ratio: 1,
        disk_allocation_ratio: 1,
        reserved_host_cpus: 0,
        reserved_host_memory_mb: 512,
        reserved_host_disk_mb: 0,
      }),
  ],
];

describe('BaseComputeDriver [NI] methods', () => {
  const driver = new BaseComputeDriver({ name: 'nothing' });

  it.each(NOT_IMPLEMENTED)(
    '%s raises NotSupported (501) naming the Nova method',
    async (nova, call) => {
      const error = await call(driver).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(NotSupportedError);
      expect(error).toMatchObject({
        code: ErrorCode.NotSupported,
        status: 501,
        method: nova,
        message: `The nothing driver does not support ${nova}`,
      });
    },
  );
});

/** A driver that only knows how to list its guests, to exercise Nova's defaults. */
class ListingDriver extends BaseComputeDriver {
  uuids: string[] | null = null;
  names: string[] = [];
  nodes = ['node-a', 'node-b'];
  nodeCalls: boolean[] = [];

  override async listInstanceUuids(_ctx: DriverContext): Promise<string[]> {
    if (this.uuids === null) return super.listInstanceUuids(_ctx);
    return this.uuids;
  }

  override async listInstances(_ctx: DriverContext): Promise<string[]> {
    return this.names;
  }

  override async getAvailableNodes(_ctx: DriverContext, refresh = false): Promise<string[]> {
    this.nodeCalls.push(refresh);
    return refresh ? [...this.nodes, 'node-new'] : this.nodes;
  }
}

describe('BaseComputeDriver [default] methods', () => {
  it('instance_exists looks in list_instance_uuids', async () => {
    const driver = new ListingDriver();
    driver.uuids = [instance.instance_id];
    expect(await driver.instanceExists(c, instance)).toBe(true);
    driver.uuids = ['someone-else'];
    expect(await driver.instanceExists(c, instance)).toBe(false);
  });

  it('instance_exists falls back to list_instances when list_instance_uuids is not supported', async () => {
    const driver = new ListingDriver();
    driver.names = [instance.instance_id];
    expect(await driver.instanceExists(c, instance)).toBe(true);
  });

  it('get_num_instances counts list_instances', async () => {
    const driver = new ListingDriver();
    driver.names = ['a', 'b', 'c'];
    expect(await driver.getNumInstances(c)).toBe(3);
  });

  it('node_is_available asks again with refresh before saying no', async () => {
    const driver = new ListingDriver();
    expect(await driver.nodeIsAvailable(c, 'node-a')).toBe(true);
    expect(driver.nodeCalls).toEqual([false]);
    expect(await driver.nodeIsAvailable(c, 'node-new')).toBe(true);
    expect(await driver.nodeIsAvailable(c, 'node-zzz')).toBe(false);
  });

  it('get_nodenames_by_uuid maps a stable uuid to the first node', async () => {
    const driver = new ListingDriver();
    const byUuid = await driver.getNodenamesByUuid(c);
    expect(byUuid).toEqual({ [nodeUuid('node-a')]: 'node-a' });
    expect(nodeUuid('node-a')).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    expect(nodeUuid('node-a')).not.toBe(nodeUuid('node-b'));
  });

  it('has no capabilities and reports every trait as false', () => {
    const driver = new BaseComputeDriver();
    for (const key of CAPABILITY_KEYS) expect(driver.capabilities[key]).toBe(false);
    const traits = driver.capabilitiesAsTraits();
    expect(traits['COMPUTE_NET_ATTACH_INTERFACE']).toBe(false);
    expect(traits['COMPUTE_SAME_HOST_COLD_MIGRATE']).toBe(false);
    expect(Object.values(traits).every((v) => v === false)).toBe(true);
    expect(driver.rebalancesNodes).toBe(false);
  });

  it('keeps Nova’s trivial defaults', async () => {
    const driver = new BaseComputeDriver();
    await expect(driver.injectNetworkInfo(c, instance, [])).resolves.toBeUndefined();
    await expect(
      driver.prepareNetworksBeforeBlockDeviceMapping(c, instance, []),
    ).resolves.toBeUndefined();
    await expect(driver.cleanNetworksPreparation(c, instance, [])).resolves.toBeUndefined();
    await expect(driver.prepareForSpawn(c, instance)).resolves.toBeUndefined();
    await expect(driver.failedSpawnCleanup(c, instance)).resolves.toBeUndefined();
    await expect(driver.cleanupHost(c, 'stratus')).resolves.toBeUndefined();
    await expect(driver.manageImageCache(c, [])).resolves.toBeUndefined();
    await expect(
      driver.rollbackLiveMigrationAtSource(c, instance, migrateData),
    ).resolves.toBeUndefined();
    await expect(driver.postLiveMigration(c, instance, migrateData)).resolves.toBeUndefined();
    await expect(driver.checkInstanceSharedStorageCleanup(c, {})).resolves.toBeUndefined();
    expect(await driver.processInstancesAtStartup(c, [instance])).toEqual([instance]);
    expect(await driver.isNodeDeleted(c, 'n')).toBe(false);
    expect(await driver.deleteInstanceFiles(c, instance)).toBe(true);
    expect(await driver.cleanupLingeringInstanceResources(c, instance)).toBe(true);
    expect(await driver.instanceOnDisk(c, instance)).toBe(false);
    expect(await driver.isSupportedFsFormat(c, 'ext4')).toBe(false);
    expect(await driver.networkBindingHostId(c, instance)).toBe('stratus');
    expect(driver.managesNetworkBindingHostId()).toBe(false);
    expect(await driver.checkSourceMigrateDataAtDest(c, instance, migrateData, migration)).toBe(
      migrateData,
    );
    expect(await driver.postClaimMigrateData(c, instance, migrateData)).toBe(migrateData);
  });

  it('builds Nova’s instance driver metadata from the record', async () => {
    const driver = new BaseComputeDriver({ now: () => new Date('2026-01-01T00:00:10Z') });
    const meta = await driver.getInstanceDriverMetadata(c, instance, []);
    expect(meta.instance_meta).toEqual({ name: 'vm', uuid: instance.instance_id });
    expect(meta.owner).toMatchObject({ userid: 'user-a', projectid: 'project-a' });
    expect(meta.flavor).toMatchObject({ name: 'm1.small', vcpus: 2, root_gb: 20, ephemeral_gb: 5 });
    expect(meta.root_type).toBe('image');
    expect(meta.root_id).toBe('image-1');
    expect(meta.creation_time).toBe(Date.parse('2026-01-01T00:00:10Z') / 1000);
  });
});

describe('BaseComputeDriver events', () => {
  const event: LifecycleEvent = {
    instanceId: instance.instance_id,
    transition: 'stopped',
    node: 'fake-node-1',
    occurredAt: '2026-03-01T12:00:00.000Z',
    source: 'fake',
    sequence: 1,
  };

  it('discards events while nobody listens, delivers them to the registered sink', async () => {
    const driver = new BaseComputeDriver();
    await driver.emitEvent(event);
    const sink = new InMemoryLifecycleSink();
    driver.registerEventListener(sink);
    await driver.emitEvent(event);
    expect(sink.events).toEqual([event]);
    driver.registerEventListener(null);
    await driver.emitEvent(event);
    expect(sink.events).toHaveLength(1);
  });

  it('lets a delivery failure propagate so the command is retried', async () => {
    const driver = new BaseComputeDriver({
      sink: { emit: () => Promise.reject(new Error('EventBridge throttled')) },
    });
    await expect(driver.emitEvent(event)).rejects.toThrow('EventBridge throttled');
  });
});
