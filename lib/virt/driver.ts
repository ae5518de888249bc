// The ComputeDriver contract (nova/virt/driver.py, reference nova-compute.md §8), reshaped for a
// serverless control plane:
//
// - Every call that talks to the platform takes a DriverContext first. Nova passes a request
//   context to some methods only; here the command id travels everywhere so a driver can make
//   each platform call idempotent with it (EC2 ClientToken, tags) and log the request id.
// - Nothing waits for the platform. A call that the platform finishes later returns
//   `{ status: 'pending', expect, deadlineSeconds }`; the lifecycle event `expect` (or the
//   periodic sweeper at the deadline) completes the task. A call the platform finished at once
//   returns `{ status: 'done', powerState }`.
// - Nova's callbacks that assume one long-lived process (live_migration's post_method and
//   recover_method, register_event_listener's callback) become return values and a
//   LifecycleEventSink.
// - Method names are Nova's in camelCase; each carries its Nova name in a one-line comment.

import type {
  BlockDeviceMapping,
  Instance,
  InstanceFlavor,
  InstancePort,
} from '../compute/instance.ts';
import type { LifecycleTransition, PowerState, TaskState } from '../compute/states.ts';
import type { LifecycleEvent, LifecycleEventSink } from './events.ts';

/** Who is calling: the command that owns the work and the request it belongs to. */
export interface DriverContext {
  /** The command id: the idempotency key a driver may hand to the platform (ClientToken). */
  commandId: string;
  requestId: string;
}

/** The platform finished the work inside the call. */
export interface DriverDone {
  status: 'done';
  powerState: PowerState;
}

/** The platform accepted the work and will report `expect` as a lifecycle event. */
export interface DriverPending {
  status: 'pending';
  expect: LifecycleTransition;
  /** After this many seconds without the event, the sweeper re-checks the guest with getInfo. */
  deadlineSeconds: number;
}

export type DriverResult = DriverDone | DriverPending;

/** spawn's result also reports the network info the driver allocated. */
export type SpawnResult = DriverResult & { ports: InstancePort[] };

/** migrate_disk_and_power_off returns Nova's opaque `disk_info` (a JSON string). */
export type MigrateDiskResult = DriverResult & { diskInfo: string };

/** Completion of work that has no power-state transition (image upload, live migration). */
export type CompletionResult =
  | { status: 'done' }
  | { status: 'pending'; expect: LifecycleTransition | null; deadlineSeconds: number };

export interface RequestedNetwork {
  network_id: string;
  fixed_ip?: string;
}

/**
 * What spawn needs besides the instance record. Secrets (adminPassword, userData, the contents
 * of injected files) are handed to the driver only; a driver must never log or store them.
 */
export interface SpawnRequest {
  imageRef: string;
  imageMeta: Record<string, string>;
  injectedFiles: { path: string; contents: string }[];
  adminPassword: string | null;
  /** base64, as the command carries it. */
  userData: string | null;
  requestedNetworks: RequestedNetwork[];
  blockDeviceMapping: BlockDeviceMapping[];
  powerOn: boolean;
}

export interface RebuildRequest {
  imageRef: string;
  imageMeta: Record<string, string>;
  injectedFiles: { path: string; contents: string }[];
  adminPassword: string | null;
  blockDeviceMapping: BlockDeviceMapping[];
  preserveEphemeral: boolean;
  /** True when the rebuild is an evacuation onto this node. */
  evacuate: boolean;
}

export interface DestroyOptions {
  destroyDisks: boolean;
  destroySecrets: boolean;
}

export interface CleanupOptions extends DestroyOptions {
  destroyVifs: boolean;
}

/** Nova's power_off timeouts in seconds; 0/0 is a forced (hard) power off. */
export interface PowerOffOptions {
  timeout: number;
  retryInterval: number;
}

export type RebootType = 'SOFT' | 'HARD';

export interface RescueRequest {
  rescueImageRef: string | null;
  imageMeta: Record<string, string>;
  /** Secret: never logged or stored. */
  rescuePassword: string | null;
}

/** Nova's `update_task_state` callback that snapshot uses to advance the image task states. */
export type UpdateTaskState = (
  taskState: TaskState,
  expectedState?: TaskState | null,
) => Promise<void>;

/** Nova's InstanceInfo: the hypervisor's view of a guest. */
export interface InstanceInfo {
  state: PowerState;
  /** The platform's own id for the guest (EC2 instance id, fake domain id). */
  internalId?: string;
}

/** The part of Nova's Migration record a driver needs. */
export interface MigrationInfo {
  migration_id: string;
  migration_type: 'migration' | 'resize' | 'live-migration' | 'evacuation';
  source_compute: string;
  dest_compute: string;
  source_node: string;
  dest_node: string;
}

export interface MigrateDiskRequest {
  destHost: string;
  destNode: string;
  /** The new flavor (equal to the old one for a cold migration). */
  flavor: InstanceFlavor;
  timeout: number;
  retryInterval: number;
}

export interface FinishMigrationRequest {
  diskInfo: string;
  imageMeta: Record<string, string>;
  /** True for a resize (the flavor changed), false for a cold migration. */
  resizeInstance: boolean;
  blockDeviceMapping: BlockDeviceMapping[];
  powerOn: boolean;
}

export interface LiveMigrationCheckRequest {
  /** The node the instance would move to. */
  destNode: string;
  blockMigration: boolean;
  diskOverCommit: boolean;
}

/**
 * Nova's LiveMigrateData, reduced to what a serverless driver pair needs. It is stored between
 * the steps of a live migration, so it must stay plain JSON.
 */
export interface LiveMigrateData {
  source_node: string;
  dest_node: string;
  block_migration: boolean;
  disk_over_commit: boolean;
  is_shared_block_storage: boolean;
  is_shared_instance_path: boolean;
  disk_available_mb: number | null;
  /** Driver-specific extras, opaque to the manager. */
  driver_data: Record<string, string | number | boolean | null>;
}

/** Cinder's connection_info, reduced: enough for a driver to find the volume. */
export interface VolumeConnectionInfo {
  volume_id: string;
  driver_volume_type: string;
  data: Record<string, unknown>;
}

export interface VolumeAttachRequest {
  connectionInfo: VolumeConnectionInfo;
  mountpoint: string;
  diskBus?: string | null;
  deviceType?: string | null;
  /** Device tag (supports_tagged_attach_volume). */
  tag?: string | null;
}

export interface VolumeDetachRequest {
  connectionInfo: VolumeConnectionInfo;
  mountpoint: string;
}

export interface SwapVolumeRequest {
  oldConnectionInfo: VolumeConnectionInfo;
  newConnectionInfo: VolumeConnectionInfo;
  mountpoint: string;
  /** New size in GiB, 0 to keep the old size. */
  resizeTo: number;
}

/** Nova's get_volume_connector result, reduced. */
export interface VolumeConnector {
  ip: string;
  initiator: string;
  host: string;
}

export interface HostVolumeUsageRequest {
  instance: Instance;
  instanceBdms: BlockDeviceMapping[];
}

export interface VolumeUsage {
  volume: string;
  instance: string;
  rd_bytes: number;
  rd_req: number;
  wr_bytes: number;
  wr_req: number;
}

/** [rd_req, rd_bytes, wr_req, wr_bytes, errs] as Nova's block_stats returns them. */
export type BlockStats = [number, number, number, number, number | null];

export interface ShareMapping {
  share_id: string;
  tag: string;
  export_location: string;
}

/**
 * attach_interface. Without Neutron the driver allocates the port (as spawn does): give a
 * `port_id` to name it, a `network_id` to choose its network, `fixed_ip` to choose its address.
 */
export interface InterfaceAttachRequest {
  port_id?: string;
  network_id?: string;
  fixed_ip?: string;
  tag?: string | null;
  imageMeta?: Record<string, string>;
}

export interface ConsoleInfo {
  host: string;
  port: number;
  internal_access_path: string | null;
  /** SPICE only. */
  tls_port?: number;
}

/** Nova's Diagnostics object (get_instance_diagnostics, API microversion 2.48). */
export interface InstanceDiagnostics {
  state: string;
  driver: string;
  hypervisor: string | null;
  hypervisor_os: string | null;
  uptime: number | null;
  config_drive: boolean;
  num_cpus: number;
  num_nics: number;
  num_disks: number;
  cpu_details: { id: number; time: number | null; utilisation: number | null }[];
  nic_details: {
    mac_address: string;
    rx_octets: number;
    rx_errors: number;
    rx_drop: number;
    rx_packets: number;
    rx_rate: number | null;
    tx_octets: number;
    tx_errors: number;
    tx_drop: number;
    tx_packets: number;
    tx_rate: number | null;
  }[];
  disk_details: {
    read_bytes: number;
    read_requests: number;
    write_bytes: number;
    write_requests: number;
    errors_count: number;
  }[];
  memory_details: { maximum: number; used: number };
}

/** Nova's InstanceDriverMetadata (get_instance_driver_metadata). */
export interface InstanceDriverMetadata {
  instance_meta: { name: string; uuid: string };
  owner: { userid: string; username: string; projectid: string; projectname: string };
  flavor: {
    name: string;
    flavorid: string;
    memory_mb: number;
    vcpus: number;
    ephemeral_gb: number;
    root_gb: number;
    swap: number;
    extra_specs: Record<string, string>;
  };
  image: { id: string; properties: Record<string, string> };
  root_type: 'image' | 'volume';
  root_id: string;
  /** Seconds since the epoch, as Nova's time.time(). */
  creation_time: number;
  network_info: InstancePort[];
}

export type HostPowerAction = 'startup' | 'shutdown' | 'reboot';

/** Every capability flag of nova/virt/driver.py (§8.2). */
export const CAPABILITY_KEYS = [
  'has_imagecache',
  'supports_evacuate',
  'supports_migrate_to_same_host',
  'supports_attach_interface',
  'supports_device_tagging',
  'supports_tagged_attach_interface',
  'supports_tagged_attach_volume',
  'supports_extend_volume',
  'supports_multiattach',
  'supports_trusted_certs',
  'supports_pcpus',
  'supports_accelerators',
  'supports_bfv_rescue',
  'supports_vtpm',
  'supports_secure_boot',
  'supports_socket_pci_numa_affinity',
  'supports_remote_managed_ports',
  'supports_address_space_passthrough',
  'supports_address_space_emulated',
  'supports_stateless_firmware',
  'supports_virtio_fs',
  'supports_mem_backing_file',
  'supports_ephemeral_encryption',
  'supports_ephemeral_encryption_luks',
  'supports_ephemeral_encryption_plain',
  'supports_image_type_aki',
  'supports_image_type_ami',
  'supports_image_type_ari',
  'supports_image_type_iso',
  'supports_image_type_qcow2',
  'supports_image_type_raw',
  'supports_image_type_vdi',
  'supports_image_type_vhd',
  'supports_image_type_vhdx',
  'supports_image_type_vmdk',
  'supports_image_type_ploop',
] as const;
export type CapabilityKey = (typeof CAPABILITY_KEYS)[number];
export type DriverCapabilities = Record<CapabilityKey, boolean>;

/** The base driver's capabilities: everything false, as in Nova. */
export const NO_CAPABILITIES: Readonly<DriverCapabilities> = Object.freeze(
  Object.fromEntries(CAPABILITY_KEYS.map((key) => [key, false])) as DriverCapabilities,
);

/** The os-traits each capability is reported as (nova/virt/driver.py CAPABILITY_TRAITS_MAP). */
export const CAPABILITY_TRAITS: Readonly<Partial<Record<CapabilityKey, string>>> = {
  supports_attach_interface: 'COMPUTE_NET_ATTACH_INTERFACE',
  supports_device_tagging: 'COMPUTE_DEVICE_TAGGING',
  supports_tagged_attach_interface: 'COMPUTE_NET_ATTACH_INTERFACE_WITH_TAG',
  supports_tagged_attach_volume: 'COMPUTE_VOLUME_ATTACH_WITH_TAG',
  supports_extend_volume: 'COMPUTE_VOLUME_EXTEND',
  supports_multiattach: 'COMPUTE_VOLUME_MULTI_ATTACH',
  supports_trusted_certs: 'COMPUTE_TRUSTED_CERTS',
  supports_accelerators: 'COMPUTE_ACCELERATORS',
  supports_image_type_aki: 'COMPUTE_IMAGE_TYPE_AKI',
  supports_image_type_ami: 'COMPUTE_IMAGE_TYPE_AMI',
  supports_image_type_ari: 'COMPUTE_IMAGE_TYPE_ARI',
  supports_image_type_iso: 'COMPUTE_IMAGE_TYPE_ISO',
  supports_image_type_qcow2: 'COMPUTE_IMAGE_TYPE_QCOW2',
  supports_image_type_raw: 'COMPUTE_IMAGE_TYPE_RAW',
  supports_image_type_vdi: 'COMPUTE_IMAGE_TYPE_VDI',
  supports_image_type_vhd: 'COMPUTE_IMAGE_TYPE_VHD',
  supports_image_type_vhdx: 'COMPUTE_IMAGE_TYPE_VHDX',
  supports_image_type_vmdk: 'COMPUTE_IMAGE_TYPE_VMDK',
  supports_image_type_ploop: 'COMPUTE_IMAGE_TYPE_PLOOP',
  supports_migrate_to_same_host: 'COMPUTE_SAME_HOST_COLD_MIGRATE',
  supports_bfv_rescue: 'COMPUTE_RESCUE_BFV',
  supports_secure_boot: 'COMPUTE_SECURITY_UEFI_SECURE_BOOT',
  supports_socket_pci_numa_affinity: 'COMPUTE_SOCKET_PCI_NUMA_AFFINITY',
  supports_remote_managed_ports: 'COMPUTE_REMOTE_MANAGED_PORTS',
  supports_ephemeral_encryption: 'COMPUTE_EPHEMERAL_ENCRYPTION',
  supports_ephemeral_encryption_luks: 'COMPUTE_EPHEMERAL_ENCRYPTION_LUKS',
  supports_ephemeral_encryption_plain: 'COMPUTE_EPHEMERAL_ENCRYPTION_PLAIN',
  supports_address_space_passthrough: 'COMPUTE_ADDRESS_SPACE_PASSTHROUGH',
  supports_address_space_emulated: 'COMPUTE_ADDRESS_SPACE_EMULATED',
  supports_stateless_firmware: 'COMPUTE_SECURITY_STATELESS_FIRMWARE',
  supports_virtio_fs: 'COMPUTE_STORAGE_VIRTIO_FS',
  supports_mem_backing_file: 'COMPUTE_MEM_BACKING_FILE',
};

/** [architecture, hypervisor type, vm mode], as Nova's supported_instances. */
export type SupportedInstance = [string, string, string];

/** get_available_resource: what the resource tracker reads for one node (§8.3). */
export interface NodeResources {
  vcpus: number;
  memory_mb: number;
  local_gb: number;
  vcpus_used: number;
  memory_mb_used: number;
  local_gb_used: number;
  /** JSON string. */
  cpu_info: string;
  numa_topology: null;
  hypervisor_type: string;
  hypervisor_version: number;
  hypervisor_hostname: string;
  availability_zone: string;
  supported_instances: SupportedInstance[];
}

/** Nova's allocation ratios and reserved amounts, the inputs of update_provider_tree. */
export interface InventorySettings {
  cpu_allocation_ratio: number;
  ram_allocation_ratio: number;
  disk_allocation_ratio: number;
  reserved_host_cpus: number;
  reserved_host_memory_mb: number;
  reserved_host_disk_mb: number;
}

export interface InventoryRecord {
  total: number;
  reserved: number;
  min_unit: number;
  max_unit: number;
  step_size: number;
  allocation_ratio: number;
}

export type NodeInventory = Record<'VCPU' | 'MEMORY_MB' | 'DISK_GB', InventoryRecord>;

/**
 * The contract between the compute manager and a hypervisor. Methods are grouped as in
 * nova/virt/driver.py. BaseComputeDriver implements all of it (Nova's [NI] methods raise
 * NotSupportedError); concrete drivers override what they support.
 */
export interface ComputeDriver {
  /** Driver name used in messages, e.g. `fake`, `ec2`. */
  readonly name: string;
  /** capabilities */
  readonly capabilities: Readonly<DriverCapabilities>;
  /** rebalances_nodes (Ironic only) */
  readonly rebalancesNodes: boolean;

  // ── Service / host lifecycle ─────────────────────────────────────────────────────────────
  /** init_host */
  initHost(ctx: DriverContext, host: string): Promise<void>;
  /** cleanup_host */
  cleanupHost(ctx: DriverContext, host: string): Promise<void>;
  /** process_instances_at_startup */
  processInstancesAtStartup(ctx: DriverContext, instances: Instance[]): Promise<Instance[]>;
  /** get_available_nodes */
  getAvailableNodes(ctx: DriverContext, refresh?: boolean): Promise<string[]>;
  /** get_nodenames_by_uuid */
  getNodenamesByUuid(ctx: DriverContext, refresh?: boolean): Promise<Record<string, string>>;
  /** node_is_available */
  nodeIsAvailable(ctx: DriverContext, nodename: string): Promise<boolean>;
  /** is_node_deleted */
  isNodeDeleted(ctx: DriverContext, nodename: string): Promise<boolean>;
  /** get_host_ip_addr */
  getHostIpAddr(ctx: DriverContext): Promise<string>;
  /** host_power_action */
  hostPowerAction(ctx: DriverContext, action: HostPowerAction): Promise<string>;
  /** host_maintenance_mode (`host` is the node the command names) */
  hostMaintenanceMode(
    ctx: DriverContext,
    host: string,
    mode: boolean,
  ): Promise<'on_maintenance' | 'off_maintenance'>;
  /** set_host_enabled (Nova has no host argument; Stratus commands name the node) */
  setHostEnabled(
    ctx: DriverContext,
    host: string,
    enabled: boolean,
  ): Promise<'enabled' | 'disabled'>;
  /** get_host_uptime */
  getHostUptime(ctx: DriverContext): Promise<string>;
  /** get_host_cpu_stats */
  getHostCpuStats(ctx: DriverContext): Promise<Record<string, number>>;

  // ── Instance lifecycle ───────────────────────────────────────────────────────────────────
  /** spawn */
  spawn(ctx: DriverContext, instance: Instance, request: SpawnRequest): Promise<SpawnResult>;
  /** prepare_for_spawn */
  prepareForSpawn(ctx: DriverContext, instance: Instance): Promise<void>;
  /** failed_spawn_cleanup */
  failedSpawnCleanup(ctx: DriverContext, instance: Instance): Promise<void>;
  /** rebuild (NotSupported → the manager's default: power off, destroy, spawn) */
  rebuild(ctx: DriverContext, instance: Instance, request: RebuildRequest): Promise<DriverResult>;
  /** destroy; an unknown guest counts as done */
  destroy(ctx: DriverContext, instance: Instance, options?: DestroyOptions): Promise<DriverResult>;
  /** cleanup */
  cleanup(ctx: DriverContext, instance: Instance, options?: CleanupOptions): Promise<void>;
  /** soft_delete (NotSupported → the manager powers off) */
  softDelete(ctx: DriverContext, instance: Instance): Promise<DriverResult>;
  /** restore (NotSupported → the manager powers on) */
  restore(ctx: DriverContext, instance: Instance): Promise<DriverResult>;
  /** snapshot */
  snapshot(
    ctx: DriverContext,
    instance: Instance,
    imageId: string,
    updateTaskState: UpdateTaskState,
  ): Promise<CompletionResult>;
  /** set_admin_password */
  setAdminPassword(ctx: DriverContext, instance: Instance, newPassword: string): Promise<void>;
  /** trigger_crash_dump */
  triggerCrashDump(ctx: DriverContext, instance: Instance): Promise<void>;
  /** quiesce */
  quiesce(ctx: DriverContext, instance: Instance, imageMeta: Record<string, string>): Promise<void>;
  /** unquiesce */
  unquiesce(
    ctx: DriverContext,
    instance: Instance,
    imageMeta: Record<string, string>,
  ): Promise<void>;
  /** delete_instance_files */
  deleteInstanceFiles(ctx: DriverContext, instance: Instance): Promise<boolean>;
  /** cleanup_lingering_instance_resources */
  cleanupLingeringInstanceResources(ctx: DriverContext, instance: Instance): Promise<boolean>;
  /** instance_on_disk */
  instanceOnDisk(ctx: DriverContext, instance: Instance): Promise<boolean>;
  /** cache_image */
  cacheImage(ctx: DriverContext, imageId: string): Promise<boolean>;
  /** manage_image_cache */
  manageImageCache(ctx: DriverContext, allInstances: Instance[]): Promise<void>;

  // ── Inventory of guests ──────────────────────────────────────────────────────────────────
  /** get_info; throws InstanceNotFoundError for an unknown guest */
  getInfo(ctx: DriverContext, instance: Instance, useCache?: boolean): Promise<InstanceInfo>;
  /** list_instances (guest names; Stratus guests are named by their instance id) */
  listInstances(ctx: DriverContext): Promise<string[]>;
  /** list_instance_uuids */
  listInstanceUuids(ctx: DriverContext): Promise<string[]>;
  /** instance_exists */
  instanceExists(ctx: DriverContext, instance: Instance): Promise<boolean>;
  /** get_num_instances */
  getNumInstances(ctx: DriverContext): Promise<number>;
  /** get_instance_driver_metadata */
  getInstanceDriverMetadata(
    ctx: DriverContext,
    instance: Instance,
    networkInfo: InstancePort[],
  ): Promise<InstanceDriverMetadata>;

  // ── Power ────────────────────────────────────────────────────────────────────────────────
  /** reboot */
  reboot(ctx: DriverContext, instance: Instance, rebootType: RebootType): Promise<DriverResult>;
  /** power_off */
  powerOff(
    ctx: DriverContext,
    instance: Instance,
    options?: PowerOffOptions,
  ): Promise<DriverResult>;
  /** power_on */
  powerOn(ctx: DriverContext, instance: Instance): Promise<DriverResult>;
  /** pause */
  pause(ctx: DriverContext, instance: Instance): Promise<DriverResult>;
  /** unpause */
  unpause(ctx: DriverContext, instance: Instance): Promise<DriverResult>;
  /** suspend */
  suspend(ctx: DriverContext, instance: Instance): Promise<DriverResult>;
  /** resume */
  resume(ctx: DriverContext, instance: Instance): Promise<DriverResult>;
  /** resume_state_on_host_boot */
  resumeStateOnHostBoot(ctx: DriverContext, instance: Instance): Promise<DriverResult>;
  /** rescue */
  rescue(ctx: DriverContext, instance: Instance, request: RescueRequest): Promise<DriverResult>;
  /** unrescue */
  unrescue(ctx: DriverContext, instance: Instance): Promise<DriverResult>;
  /** poll_rebooting_instances */
  pollRebootingInstances(
    ctx: DriverContext,
    timeoutSeconds: number,
    instances: Instance[],
  ): Promise<void>;
  /** power_update_event (Ironic's external power events) */
  powerUpdateEvent(
    ctx: DriverContext,
    instance: Instance,
    targetPowerState: 'POWER_ON' | 'POWER_OFF',
  ): Promise<void>;

  // ── Cold migration / resize ──────────────────────────────────────────────────────────────
  /** migrate_disk_and_power_off (runs for the source node) */
  migrateDiskAndPowerOff(
    ctx: DriverContext,
    instance: Instance,
    request: MigrateDiskRequest,
  ): Promise<MigrateDiskResult>;
  /** finish_migration (creates the guest on migration.dest_node) */
  finishMigration(
    ctx: DriverContext,
    migration: MigrationInfo,
    instance: Instance,
    request: FinishMigrationRequest,
  ): Promise<DriverResult>;
  /** confirm_migration (removes the guest from migration.source_node) */
  confirmMigration(ctx: DriverContext, migration: MigrationInfo, instance: Instance): Promise<void>;
  /** finish_revert_migration (brings the guest back on migration.source_node) */
  finishRevertMigration(
    ctx: DriverContext,
    instance: Instance,
    migration: MigrationInfo,
    options: { powerOn: boolean },
  ): Promise<DriverResult>;

  // ── Live migration ───────────────────────────────────────────────────────────────────────
  /** check_can_live_migrate_destination */
  checkCanLiveMigrateDestination(
    ctx: DriverContext,
    instance: Instance,
    request: LiveMigrationCheckRequest,
  ): Promise<LiveMigrateData>;
  /** cleanup_live_migration_destination_check */
  cleanupLiveMigrationDestinationCheck(
    ctx: DriverContext,
    destCheckData: LiveMigrateData,
  ): Promise<void>;
  /** check_can_live_migrate_source */
  checkCanLiveMigrateSource(
    ctx: DriverContext,
    instance: Instance,
    destCheckData: LiveMigrateData,
  ): Promise<LiveMigrateData>;
  /** check_source_migrate_data_at_dest */
  checkSourceMigrateDataAtDest(
    ctx: DriverContext,
    instance: Instance,
    migrateData: LiveMigrateData,
    migration: MigrationInfo,
  ): Promise<LiveMigrateData>;
  /** post_claim_migrate_data */
  postClaimMigrateData(
    ctx: DriverContext,
    instance: Instance,
    migrateData: LiveMigrateData,
  ): Promise<LiveMigrateData>;
  /** pre_live_migration */
  preLiveMigration(
    ctx: DriverContext,
    instance: Instance,
    migrateData: LiveMigrateData,
  ): Promise<LiveMigrateData>;
  /**
   * live_migration. Nova calls back post_method or recover_method; here `done` means "go on
   * with post-migration", a thrown error means "roll back", and `pending` waits for the
   * `migration_completed` event.
   */
  liveMigration(
    ctx: DriverContext,
    instance: Instance,
    migrateData: LiveMigrateData,
  ): Promise<CompletionResult>;
  /** live_migration_force_complete */
  liveMigrationForceComplete(ctx: DriverContext, instance: Instance): Promise<void>;
  /** live_migration_abort */
  liveMigrationAbort(ctx: DriverContext, instance: Instance): Promise<void>;
  /** rollback_live_migration_at_source */
  rollbackLiveMigrationAtSource(
    ctx: DriverContext,
    instance: Instance,
    migrateData: LiveMigrateData,
  ): Promise<void>;
  /** rollback_live_migration_at_destination */
  rollbackLiveMigrationAtDestination(
    ctx: DriverContext,
    instance: Instance,
    migrateData: LiveMigrateData,
    options: { destroyDisks: boolean },
  ): Promise<void>;
  /** post_live_migration */
  postLiveMigration(
    ctx: DriverContext,
    instance: Instance,
    migrateData: LiveMigrateData,
  ): Promise<void>;
  /** post_live_migration_at_source */
  postLiveMigrationAtSource(
    ctx: DriverContext,
    instance: Instance,
    networkInfo: InstancePort[],
  ): Promise<void>;
  /** post_live_migration_at_destination */
  postLiveMigrationAtDestination(
    ctx: DriverContext,
    instance: Instance,
    migrateData: LiveMigrateData,
  ): Promise<void>;
  /** check_instance_shared_storage_local */
  checkInstanceSharedStorageLocal(
    ctx: DriverContext,
    instance: Instance,
  ): Promise<Record<string, string> | null>;
  /** check_instance_shared_storage_remote */
  checkInstanceSharedStorageRemote(
    ctx: DriverContext,
    data: Record<string, string>,
  ): Promise<boolean>;
  /** check_instance_shared_storage_cleanup */
  checkInstanceSharedStorageCleanup(
    ctx: DriverContext,
    data: Record<string, string>,
  ): Promise<void>;
  /** get_instance_disk_info (JSON string) */
  getInstanceDiskInfo(ctx: DriverContext, instance: Instance): Promise<string | null>;

  // ── Volumes, block devices, shares ───────────────────────────────────────────────────────
  /** attach_volume */
  attachVolume(ctx: DriverContext, instance: Instance, request: VolumeAttachRequest): Promise<void>;
  /** detach_volume */
  detachVolume(ctx: DriverContext, instance: Instance, request: VolumeDetachRequest): Promise<void>;
  /** swap_volume */
  swapVolume(ctx: DriverContext, instance: Instance, request: SwapVolumeRequest): Promise<void>;
  /** extend_volume (requestedSize in bytes) */
  extendVolume(
    ctx: DriverContext,
    instance: Instance,
    connectionInfo: VolumeConnectionInfo,
    requestedSize: number,
  ): Promise<void>;
  /** get_volume_connector */
  getVolumeConnector(ctx: DriverContext, instance: Instance): Promise<VolumeConnector>;
  /** get_all_volume_usage */
  getAllVolumeUsage(ctx: DriverContext, hostBdms: HostVolumeUsageRequest[]): Promise<VolumeUsage[]>;
  /** block_stats */
  blockStats(ctx: DriverContext, instance: Instance, diskId: string): Promise<BlockStats | null>;
  /** volume_snapshot_create */
  volumeSnapshotCreate(
    ctx: DriverContext,
    instance: Instance,
    volumeId: string,
    createInfo: Record<string, unknown>,
  ): Promise<void>;
  /** volume_snapshot_delete */
  volumeSnapshotDelete(
    ctx: DriverContext,
    instance: Instance,
    volumeId: string,
    snapshotId: string,
    deleteInfo: Record<string, unknown>,
  ): Promise<void>;
  /** default_root_device_name (NotSupported → compute utils pick the name) */
  defaultRootDeviceName(
    ctx: DriverContext,
    instance: Instance,
    imageMeta: Record<string, string>,
    rootBdm: BlockDeviceMapping,
  ): Promise<string>;
  /** default_device_names_for_instance (returns the mappings with names filled in) */
  defaultDeviceNamesForInstance(
    ctx: DriverContext,
    instance: Instance,
    rootDeviceName: string,
    bdms: BlockDeviceMapping[],
  ): Promise<BlockDeviceMapping[]>;
  /** get_device_name_for_instance */
  getDeviceNameForInstance(
    ctx: DriverContext,
    instance: Instance,
    bdms: BlockDeviceMapping[],
    newBdm: BlockDeviceMapping,
  ): Promise<string>;
  /** mount_share */
  mountShare(ctx: DriverContext, instance: Instance, share: ShareMapping): Promise<void>;
  /** umount_share */
  umountShare(ctx: DriverContext, instance: Instance, share: ShareMapping): Promise<void>;
  /** is_supported_fs_format */
  isSupportedFsFormat(ctx: DriverContext, fsType: string): Promise<boolean>;

  // ── Network ──────────────────────────────────────────────────────────────────────────────
  /** attach_interface (returns the attached port) */
  attachInterface(
    ctx: DriverContext,
    instance: Instance,
    request: InterfaceAttachRequest,
  ): Promise<InstancePort>;
  /** detach_interface */
  detachInterface(ctx: DriverContext, instance: Instance, portId: string): Promise<void>;
  /** plug_vifs */
  plugVifs(ctx: DriverContext, instance: Instance, networkInfo: InstancePort[]): Promise<void>;
  /** unplug_vifs */
  unplugVifs(ctx: DriverContext, instance: Instance, networkInfo: InstancePort[]): Promise<void>;
  /** inject_network_info */
  injectNetworkInfo(
    ctx: DriverContext,
    instance: Instance,
    networkInfo: InstancePort[],
  ): Promise<void>;
  /** prepare_networks_before_block_device_mapping */
  prepareNetworksBeforeBlockDeviceMapping(
    ctx: DriverContext,
    instance: Instance,
    networkInfo: InstancePort[],
  ): Promise<void>;
  /** clean_networks_preparation */
  cleanNetworksPreparation(
    ctx: DriverContext,
    instance: Instance,
    networkInfo: InstancePort[],
  ): Promise<void>;
  /** network_binding_host_id */
  networkBindingHostId(ctx: DriverContext, instance: Instance): Promise<string | null>;
  /** manages_network_binding_host_id */
  managesNetworkBindingHostId(): boolean;

  // ── Consoles ─────────────────────────────────────────────────────────────────────────────
  /** get_console_output (the whole log; the manager applies tail_length) */
  getConsoleOutput(ctx: DriverContext, instance: Instance): Promise<string>;
  /** get_vnc_console */
  getVncConsole(ctx: DriverContext, instance: Instance): Promise<ConsoleInfo>;
  /** get_spice_console */
  getSpiceConsole(ctx: DriverContext, instance: Instance): Promise<ConsoleInfo>;
  /** get_serial_console */
  getSerialConsole(ctx: DriverContext, instance: Instance): Promise<ConsoleInfo>;
  /** get_mks_console */
  getMksConsole(ctx: DriverContext, instance: Instance): Promise<ConsoleInfo>;

  // ── Diagnostics ──────────────────────────────────────────────────────────────────────────
  /** get_diagnostics (free-form) */
  getDiagnostics(ctx: DriverContext, instance: Instance): Promise<Record<string, number | null>>;
  /** get_instance_diagnostics */
  getInstanceDiagnostics(ctx: DriverContext, instance: Instance): Promise<InstanceDiagnostics>;

  // ── Events ───────────────────────────────────────────────────────────────────────────────
  /** register_event_listener: the sink receives every lifecycle event; null unregisters */
  registerEventListener(sink: LifecycleEventSink | null): void;
  /** emit_event: unlike Nova, a delivery failure propagates so the command is retried */
  emitEvent(event: LifecycleEvent): Promise<void>;

  // ── Resources ────────────────────────────────────────────────────────────────────────────
  /** get_available_resource; null for a node this driver does not manage (Nova: `{}`) */
  getAvailableResource(ctx: DriverContext, nodename: string): Promise<NodeResources | null>;
  /** update_provider_tree: returns the node's inventory (there is no Placement tree here) */
  updateProviderTree(
    ctx: DriverContext,
    nodename: string,
    settings: InventorySettings,
  ): Promise<NodeInventory | null>;
  /** capabilities_as_traits */
  capabilitiesAsTraits(): Record<string, boolean>;
}
