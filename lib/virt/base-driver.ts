// Nova's ComputeDriver base class: every [NI] method raises NotSupportedError (answered 501),
// every [default] method behaves as Nova's default. Concrete drivers override what they support,
// so a driver that says nothing about a method can never pretend to have done it.

import type { BlockDeviceMapping, Instance, InstancePort } from '../compute/instance.ts';
import { uuidv5 } from '../notifications/message-id.ts';
import type {
  BlockStats,
  CleanupOptions,
  CompletionResult,
  ComputeDriver,
  ConsoleInfo,
  DestroyOptions,
  DriverCapabilities,
  DriverContext,
  DriverResult,
  FinishMigrationRequest,
  HostPowerAction,
  HostVolumeUsageRequest,
  InstanceDiagnostics,
  InstanceDriverMetadata,
  InstanceInfo,
  InterfaceAttachRequest,
  InventorySettings,
  LiveMigrateData,
  LiveMigrationCheckRequest,
  MigrateDiskRequest,
  MigrateDiskResult,
  MigrationInfo,
  NodeInventory,
  NodeResources,
  PowerOffOptions,
  RebootType,
  RebuildRequest,
  RescueRequest,
  ShareMapping,
  SpawnRequest,
  SpawnResult,
  SwapVolumeRequest,
  UpdateTaskState,
  VolumeAttachRequest,
  VolumeConnectionInfo,
  VolumeConnector,
  VolumeDetachRequest,
  VolumeUsage,
} from './driver.ts';
import { CAPABILITY_KEYS, CAPABILITY_TRAITS, NO_CAPABILITIES } from './driver.ts';
import { NotSupportedError, isNotSupported } from './errors.ts';
import type { LifecycleEvent, LifecycleEventSink } from './events.ts';

/** The RFC 9562 DNS namespace; node uuids are uuid5(DNS, '<node>.nodes.stratus.compute'). */
const NAMESPACE_DNS = '6ba7b810-9dad-11d1-80b4-00c04fd430c8';

/**
 * A node's stable uuid. Nova persists a random one per compute host; a Lambda has no local disk
 * to keep it on, so Stratus derives it from the node name instead.
 */
export function nodeUuid(nodename: string): string {
  return uuidv5(`${nodename}.nodes.stratus.compute`, NAMESPACE_DNS);
}

export interface BaseDriverOptions {
  /** Used in NotSupported messages: "The <name> driver does not support …". */
  name?: string;
  sink?: LifecycleEventSink | null;
  now?: () => Date;
}

export class BaseComputeDriver implements ComputeDriver {
  readonly name: string;
  readonly rebalancesNodes: boolean = false;
  protected eventSink: LifecycleEventSink | null;
  protected readonly now: () => Date;

  constructor(options: BaseDriverOptions = {}) {
    this.name = options.name ?? 'base';
    this.eventSink = options.sink ?? null;
    this.now = options.now ?? (() => new Date());
  }

  get capabilities(): Readonly<DriverCapabilities> {
    return NO_CAPABILITIES;
  }

  /** The error for a Nova [NI] method, named by its Nova name. */
  protected notSupported(novaMethod: string, reason?: string): NotSupportedError {
    return new NotSupportedError(this.name, novaMethod, reason);
  }

  // ── Service / host lifecycle ─────────────────────────────────────────────────────────────
  async initHost(_ctx: DriverContext, _host: string): Promise<void> {
    throw this.notSupported('init_host');
  }

  async cleanupHost(_ctx: DriverContext, _host: string): Promise<void> {}

  async processInstancesAtStartup(_ctx: DriverContext, instances: Instance[]): Promise<Instance[]> {
    return instances;
  }

  async getAvailableNodes(_ctx: DriverContext, _refresh?: boolean): Promise<string[]> {
    throw this.notSupported('get_available_nodes');
  }

  /** Nova's default: the local node uuid of the (single) node. */
  async getNodenamesByUuid(ctx: DriverContext, refresh = false): Promise<Record<string, string>> {
    const [nodename] = await this.getAvailableNodes(ctx, refresh);
    return nodename === undefined ? {} : { [nodeUuid(nodename)]: nodename };
  }

  async nodeIsAvailable(ctx: DriverContext, nodename: string): Promise<boolean> {
    if ((await this.getAvailableNodes(ctx)).includes(nodename)) return true;
    return (await this.getAvailableNodes(ctx, true)).includes(nodename);
  }

  async isNodeDeleted(_ctx: DriverContext, _nodename: string): Promise<boolean> {
    return false;
  }

  async getHostIpAddr(_ctx: DriverContext): Promise<string> {
    throw this.notSupported('get_host_ip_addr');
  }

  async hostPowerAction(_ctx: DriverContext, _action: HostPowerAction): Promise<string> {
    throw this.notSupported('host_power_action');
  }

  async hostMaintenanceMode(
    _ctx: DriverContext,
    _host: string,
    _mode: boolean,
  ): Promise<'on_maintenance' | 'off_maintenance'> {
    throw this.notSupported('host_maintenance_mode');
  }

  async setHostEnabled(
    _ctx: DriverContext,
    _host: string,
    _enabled: boolean,
  ): Promise<'enabled' | 'disabled'> {
    throw this.notSupported('set_host_enabled');
  }

  async getHostUptime(_ctx: DriverContext): Promise<string> {
    throw this.notSupported('get_host_uptime');
  }

  async getHostCpuStats(_ctx: DriverContext): Promise<Record<string, number>> {
    throw this.notSupported('get_host_cpu_stats');
  }

  // ── Instance lifecycle ───────────────────────────────────────────────────────────────────
  async spawn(
    _ctx: DriverContext,
    _instance: Instance,
    _request: SpawnRequest,
  ): Promise<SpawnResult> {
    throw this.notSupported('spawn');
  }

  async prepareForSpawn(_ctx: DriverContext, _instance: Instance): Promise<void> {}

  async failedSpawnCleanup(_ctx: DriverContext, _instance: Instance): Promise<void> {}

  async rebuild(
    _ctx: DriverContext,
    _instance: Instance,
    _request: RebuildRequest,
  ): Promise<DriverResult> {
    throw this.notSupported('rebuild');
  }

  async destroy(
    _ctx: DriverContext,
    _instance: Instance,
    _options?: DestroyOptions,
  ): Promise<DriverResult> {
    throw this.notSupported('destroy');
  }

  async cleanup(
    _ctx: DriverContext,
    _instance: Instance,
    _options?: CleanupOptions,
  ): Promise<void> {
    throw this.notSupported('cleanup');
  }

  async softDelete(_ctx: DriverContext, _instance: Instance): Promise<DriverResult> {
    throw this.notSupported('soft_delete');
  }

  async restore(_ctx: DriverContext, _instance: Instance): Promise<DriverResult> {
    throw this.notSupported('restore');
  }

  async snapshot(
    _ctx: DriverContext,
    _instance: Instance,
    _imageId: string,
    _updateTaskState: UpdateTaskState,
  ): Promise<CompletionResult> {
    throw this.notSupported('snapshot');
  }

  async setAdminPassword(
    _ctx: DriverContext,
    _instance: Instance,
    _newPassword: string,
  ): Promise<void> {
    throw this.notSupported('set_admin_password');
  }

  async triggerCrashDump(_ctx: DriverContext, _instance: Instance): Promise<void> {
    throw this.notSupported('trigger_crash_dump');
  }

  async quiesce(
    _ctx: DriverContext,
    _instance: Instance,
    _imageMeta: Record<string, string>,
  ): Promise<void> {
    throw this.notSupported('quiesce');
  }

  async unquiesce(
    _ctx: DriverContext,
    _instance: Instance,
    _imageMeta: Record<string, string>,
  ): Promise<void> {
    throw this.notSupported('unquiesce');
  }

  async deleteInstanceFiles(_ctx: DriverContext, _instance: Instance): Promise<boolean> {
    return true;
  }

  async cleanupLingeringInstanceResources(
    _ctx: DriverContext,
    _instance: Instance,
  ): Promise<boolean> {
    return true;
  }

  async instanceOnDisk(_ctx: DriverContext, _instance: Instance): Promise<boolean> {
    return false;
  }

  async cacheImage(_ctx: DriverContext, _imageId: string): Promise<boolean> {
    throw this.notSupported('cache_image');
  }

  async manageImageCache(_ctx: DriverContext, _allInstances: Instance[]): Promise<void> {}

  // ── Inventory of guests ──────────────────────────────────────────────────────────────────
  async getInfo(
    _ctx: DriverContext,
    _instance: Instance,
    _useCache?: boolean,
  ): Promise<InstanceInfo> {
    throw this.notSupported('get_info');
  }

  async listInstances(_ctx: DriverContext): Promise<string[]> {
    throw this.notSupported('list_instances');
  }

  async listInstanceUuids(_ctx: DriverContext): Promise<string[]> {
    throw this.notSupported('list_instance_uuids');
  }

  /** Nova's default: look in list_instance_uuids, else in list_instances. */
  async instanceExists(ctx: DriverContext, instance: Instance): Promise<boolean> {
    try {
      return (await this.listInstanceUuids(ctx)).includes(instance.instance_id);
    } catch (error) {
      if (!isNotSupported(error)) throw error;
      return (await this.listInstances(ctx)).includes(instance.instance_id);
    }
  }

  async getNumInstances(ctx: DriverContext): Promise<number> {
    return (await this.listInstances(ctx)).length;
  }

  async getInstanceDriverMetadata(
    _ctx: DriverContext,
    instance: Instance,
    networkInfo: InstancePort[],
  ): Promise<InstanceDriverMetadata> {
    const { flavor } = instance;
    return {
      instance_meta: {
        name: instance.display_name || instance.instance_id,
        uuid: instance.instance_id,
      },
      owner: {
        userid: instance.user_id,
        username: 'N/A',
        projectid: instance.project_id,
        projectname: 'N/A',
      },
      flavor: {
        name: flavor.name,
        flavorid: flavor.flavorid,
        memory_mb: flavor.memory_mb,
        vcpus: flavor.vcpus,
        ephemeral_gb: flavor.ephemeral_gb,
        root_gb: flavor.root_gb,
        swap: 0,
        extra_specs: {},
      },
      image: { id: instance.image_ref, properties: { ...instance.image_meta } },
      root_type: instance.image_ref ? 'image' : 'volume',
      root_id: instance.image_meta['base_image_ref'] ?? instance.image_ref,
      creation_time: this.now().getTime() / 1000,
      network_info: networkInfo,
    };
  }

  // ── Power ────────────────────────────────────────────────────────────────────────────────
  async reboot(
    _ctx: DriverContext,
    _instance: Instance,
    _rebootType: RebootType,
  ): Promise<DriverResult> {
    throw this.notSupported('reboot');
  }

  async powerOff(
    _ctx: DriverContext,
    _instance: Instance,
    _options?: PowerOffOptions,
  ): Promise<DriverResult> {
    throw this.notSupported('power_off');
  }

  async powerOn(_ctx: DriverContext, _instance: Instance): Promise<DriverResult> {
    throw this.notSupported('power_on');
  }

  async pause(_ctx: DriverContext, _instance: Instance): Promise<DriverResult> {
    throw this.notSupported('pause');
  }

  async unpause(_ctx: DriverContext, _instance: Instance): Promise<DriverResult> {
    throw this.notSupported('unpause');
  }

  async suspend(_ctx: DriverContext, _instance: Instance): Promise<DriverResult> {
    throw this.notSupported('suspend');
  }

  async resume(_ctx: DriverContext, _instance: Instance): Promise<DriverResult> {
    throw this.notSupported('resume');
  }

  async resumeStateOnHostBoot(_ctx: DriverContext, _instance: Instance): Promise<DriverResult> {
    throw this.notSupported('resume_state_on_host_boot');
  }

  async rescue(
    _ctx: DriverContext,
    _instance: Instance,
    _request: RescueRequest,
  ): Promise<DriverResult> {
    throw this.notSupported('rescue');
  }

  async unrescue(_ctx: DriverContext, _instance: Instance): Promise<DriverResult> {
    throw this.notSupported('unrescue');
  }

  async pollRebootingInstances(
    _ctx: DriverContext,
    _timeoutSeconds: number,
    _instances: Instance[],
  ): Promise<void> {
    throw this.notSupported('poll_rebooting_instances');
  }

  async powerUpdateEvent(
    _ctx: DriverContext,
    _instance: Instance,
    _targetPowerState: 'POWER_ON' | 'POWER_OFF',
  ): Promise<void> {
    throw this.notSupported('power_update_event');
  }

  // ── Cold migration / resize ──────────────────────────────────────────────────────────────
  async migrateDiskAndPowerOff(
    _ctx: DriverContext,
    _instance: Instance,
    _request: MigrateDiskRequest,
  ): Promise<MigrateDiskResult> {
    throw this.notSupported('migrate_disk_and_power_off');
  }

  async finishMigration(
    _ctx: DriverContext,
    _migration: MigrationInfo,
    _instance: Instance,
    _request: FinishMigrationRequest,
  ): Promise<DriverResult> {
    throw this.notSupported('finish_migration');
  }

  async confirmMigration(
    _ctx: DriverContext,
    _migration: MigrationInfo,
    _instance: Instance,
  ): Promise<void> {
    throw this.notSupported('confirm_migration');
  }

  async finishRevertMigration(
    _ctx: DriverContext,
    _instance: Instance,
    _migration: MigrationInfo,
    _options: { powerOn: boolean },
  ): Promise<DriverResult> {
    throw this.notSupported('finish_revert_migration');
  }

  // ── Live migration ───────────────────────────────────────────────────────────────────────
  async checkCanLiveMigrateDestination(
    _ctx: DriverContext,
    _instance: Instance,
    _request: LiveMigrationCheckRequest,
  ): Promise<LiveMigrateData> {
    throw this.notSupported('check_can_live_migrate_destination');
  }

  async cleanupLiveMigrationDestinationCheck(
    _ctx: DriverContext,
    _destCheckData: LiveMigrateData,
  ): Promise<void> {
    throw this.notSupported('cleanup_live_migration_destination_check');
  }

  async checkCanLiveMigrateSource(
    _ctx: DriverContext,
    _instance: Instance,
    _destCheckData: LiveMigrateData,
  ): Promise<LiveMigrateData> {
    throw this.notSupported('check_can_live_migrate_source');
  }

  async checkSourceMigrateDataAtDest(
    _ctx: DriverContext,
    _instance: Instance,
    migrateData: LiveMigrateData,
    _migration: MigrationInfo,
  ): Promise<LiveMigrateData> {
    return migrateData;
  }

  async postClaimMigrateData(
    _ctx: DriverContext,
    _instance: Instance,
    migrateData: LiveMigrateData,
  ): Promise<LiveMigrateData> {
    return migrateData;
  }

  async preLiveMigration(
    _ctx: DriverContext,
    _instance: Instance,
    _migrateData: LiveMigrateData,
  ): Promise<LiveMigrateData> {
    throw this.notSupported('pre_live_migration');
  }

  async liveMigration(
    _ctx: DriverContext,
    _instance: Instance,
    _migrateData: LiveMigrateData,
  ): Promise<CompletionResult> {
    throw this.notSupported('live_migration');
  }

  async liveMigrationForceComplete(_ctx: DriverContext, _instance: Instance): Promise<void> {
    throw this.notSupported('live_migration_force_complete');
  }

  async liveMigrationAbort(_ctx: DriverContext, _instance: Instance): Promise<void> {
    throw this.notSupported('live_migration_abort');
  }

  async rollbackLiveMigrationAtSource(
    _ctx: DriverContext,
    _instance: Instance,
    _migrateData: LiveMigrateData,
  ): Promise<void> {}

  async rollbackLiveMigrationAtDestination(
    _ctx: DriverContext,
    _instance: Instance,
    _migrateData: LiveMigrateData,
    _options: { destroyDisks: boolean },
  ): Promise<void> {
    throw this.notSupported('rollback_live_migration_at_destination');
  }

  async postLiveMigration(
    _ctx: DriverContext,
    _instance: Instance,
    _migrateData: LiveMigrateData,
  ): Promise<void> {}

  async postLiveMigrationAtSource(
    _ctx: DriverContext,
    _instance: Instance,
    _networkInfo: InstancePort[],
  ): Promise<void> {
    throw this.notSupported('post_live_migration_at_source');
  }

  async postLiveMigrationAtDestination(
    _ctx: DriverContext,
    _instance: Instance,
    _migrateData: LiveMigrateData,
  ): Promise<void> {
    throw this.notSupported('post_live_migration_at_destination');
  }

  async checkInstanceSharedStorageLocal(
    _ctx: DriverContext,
    _instance: Instance,
  ): Promise<Record<string, string> | null> {
    throw this.notSupported('check_instance_shared_storage_local');
  }

  async checkInstanceSharedStorageRemote(
    _ctx: DriverContext,
    _data: Record<string, string>,
  ): Promise<boolean> {
    throw this.notSupported('check_instance_shared_storage_remote');
  }

  async checkInstanceSharedStorageCleanup(
    _ctx: DriverContext,
    _data: Record<string, string>,
  ): Promise<void> {}

  async getInstanceDiskInfo(_ctx: DriverContext, _instance: Instance): Promise<string | null> {
    throw this.notSupported('get_instance_disk_info');
  }

  // ── Volumes, block devices, shares ───────────────────────────────────────────────────────
  async attachVolume(
    _ctx: DriverContext,
    _instance: Instance,
    _request: VolumeAttachRequest,
  ): Promise<void> {
    throw this.notSupported('attach_volume');
  }

  async detachVolume(
    _ctx: DriverContext,
    _instance: Instance,
    _request: VolumeDetachRequest,
  ): Promise<void> {
    throw this.notSupported('detach_volume');
  }

  async swapVolume(
    _ctx: DriverContext,
    _instance: Instance,
    _request: SwapVolumeRequest,
  ): Promise<void> {
    throw this.notSupported('swap_volume');
  }

  async extendVolume(
    _ctx: DriverContext,
    _instance: Instance,
    _connectionInfo: VolumeConnectionInfo,
    _requestedSize: number,
  ): Promise<void> {
    throw this.notSupported('extend_volume');
  }

  async getVolumeConnector(_ctx: DriverContext, _instance: Instance): Promise<VolumeConnector> {
    throw this.notSupported('get_volume_connector');
  }

  async getAllVolumeUsage(
    _ctx: DriverContext,
    _hostBdms: HostVolumeUsageRequest[],
  ): Promise<VolumeUsage[]> {
    throw this.notSupported('get_all_volume_usage');
  }

  async blockStats(
    _ctx: DriverContext,
    _instance: Instance,
    _diskId: string,
  ): Promise<BlockStats | null> {
    throw this.notSupported('block_stats');
  }

  async volumeSnapshotCreate(
    _ctx: DriverContext,
    _instance: Instance,
    _volumeId: string,
    _createInfo: Record<string, unknown>,
  ): Promise<void> {
    throw this.notSupported('volume_snapshot_create');
  }

  async volumeSnapshotDelete(
    _ctx: DriverContext,
    _instance: Instance,
    _volumeId: string,
    _snapshotId: string,
    _deleteInfo: Record<string, unknown>,
  ): Promise<void> {
    throw this.notSupported('volume_snapshot_delete');
  }

  async defaultRootDeviceName(
    _ctx: DriverContext,
    _instance: Instance,
    _imageMeta: Record<string, string>,
    _rootBdm: BlockDeviceMapping,
  ): Promise<string> {
    throw this.notSupported('default_root_device_name');
  }

  async defaultDeviceNamesForInstance(
    _ctx: DriverContext,
    _instance: Instance,
    _rootDeviceName: string,
    _bdms: BlockDeviceMapping[],
  ): Promise<BlockDeviceMapping[]> {
    throw this.notSupported('default_device_names_for_instance');
  }

  async getDeviceNameForInstance(
    _ctx: DriverContext,
    _instance: Instance,
    _bdms: BlockDeviceMapping[],
    _newBdm: BlockDeviceMapping,
  ): Promise<string> {
    throw this.notSupported('get_device_name_for_instance');
  }

  async mountShare(_ctx: DriverContext, _instance: Instance, _share: ShareMapping): Promise<void> {
    throw this.notSupported('mount_share');
  }

  async umountShare(_ctx: DriverContext, _instance: Instance, _share: ShareMapping): Promise<void> {
    throw this.notSupported('umount_share');
  }

  async isSupportedFsFormat(_ctx: DriverContext, _fsType: string): Promise<boolean> {
    return false;
  }

  // ── Network ──────────────────────────────────────────────────────────────────────────────
  async attachInterface(
    _ctx: DriverContext,
    _instance: Instance,
    _request: InterfaceAttachRequest,
  ): Promise<InstancePort> {
    throw this.notSupported('attach_interface');
  }

  async detachInterface(_ctx: DriverContext, _instance: Instance, _portId: string): Promise<void> {
    throw this.notSupported('detach_interface');
  }

  async plugVifs(
    _ctx: DriverContext,
    _instance: Instance,
    _networkInfo: InstancePort[],
  ): Promise<void> {
    throw this.notSupported('plug_vifs');
  }

  async unplugVifs(
    _ctx: DriverContext,
    _instance: Instance,
    _networkInfo: InstancePort[],
  ): Promise<void> {
    throw this.notSupported('unplug_vifs');
  }

  async injectNetworkInfo(
    _ctx: DriverContext,
    _instance: Instance,
    _networkInfo: InstancePort[],
  ): Promise<void> {}

  async prepareNetworksBeforeBlockDeviceMapping(
    _ctx: DriverContext,
    _instance: Instance,
    _networkInfo: InstancePort[],
  ): Promise<void> {}

  async cleanNetworksPreparation(
    _ctx: DriverContext,
    _instance: Instance,
    _networkInfo: InstancePort[],
  ): Promise<void> {}

  async networkBindingHostId(_ctx: DriverContext, instance: Instance): Promise<string | null> {
    return instance.host;
  }

  managesNetworkBindingHostId(): boolean {
    return false;
  }

  // ── Consoles ─────────────────────────────────────────────────────────────────────────────
  async getConsoleOutput(_ctx: DriverContext, _instance: Instance): Promise<string> {
    throw this.notSupported('get_console_output');
  }

  async getVncConsole(_ctx: DriverContext, _instance: Instance): Promise<ConsoleInfo> {
    throw this.notSupported('get_vnc_console');
  }

  async getSpiceConsole(_ctx: DriverContext, _instance: Instance): Promise<ConsoleInfo> {
    throw this.notSupported('get_spice_console');
  }

  async getSerialConsole(_ctx: DriverContext, _instance: Instance): Promise<ConsoleInfo> {
    throw this.notSupported('get_serial_console');
  }

  async getMksConsole(_ctx: DriverContext, _instance: Instance): Promise<ConsoleInfo> {
    throw this.notSupported('get_mks_console');
  }

  // ── Diagnostics ──────────────────────────────────────────────────────────────────────────
  async getDiagnostics(
    _ctx: DriverContext,
    _instance: Instance,
  ): Promise<Record<string, number | null>> {
    throw this.notSupported('get_diagnostics');
  }

  async getInstanceDiagnostics(
    _ctx: DriverContext,
    _instance: Instance,
  ): Promise<InstanceDiagnostics> {
    throw this.notSupported('get_instance_diagnostics');
  }

  // ── Events ───────────────────────────────────────────────────────────────────────────────
  registerEventListener(sink: LifecycleEventSink | null): void {
    this.eventSink = sink;
  }

  /**
   * Nova discards an event nobody listens for and swallows a listener's failure. Here an event
   * completes a pending task, so a failed delivery propagates: the command is retried and the
   * event sent again, instead of leaving the task to time out.
   */
  async emitEvent(event: LifecycleEvent): Promise<void> {
    if (this.eventSink === null) return;
    await this.eventSink.emit(event);
  }

  // ── Resources ────────────────────────────────────────────────────────────────────────────
  async getAvailableResource(
    _ctx: DriverContext,
    _nodename: string,
  ): Promise<NodeResources | null> {
    throw this.notSupported('get_available_resource');
  }

  async updateProviderTree(
    _ctx: DriverContext,
    _nodename: string,
    _settings: InventorySettings,
  ): Promise<NodeInventory | null> {
    throw this.notSupported('update_provider_tree');
  }

  capabilitiesAsTraits(): Record<string, boolean> {
    const traits: Record<string, boolean> = {};
    for (const key of CAPABILITY_KEYS) {
      const trait = CAPABILITY_TRAITS[key];
      if (trait !== undefined) traits[trait] = this.capabilities[key];
    }
    return traits;
  }
}
