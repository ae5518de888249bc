import type { PowerState, TaskState, VmState } from './states.ts';

/** The flavor as copied onto the instance at build time (Nova keeps its own copy too). */
export interface InstanceFlavor {
  /** Flavor name, e.g. `m1.small` (Nova's `instance_type`). */
  name: string;
  /** Public flavor id (Nova's `flavorid`), e.g. `2`. */
  flavorid: string;
  /** Numeric catalog id (Nova's `instance_type_id`). */
  id: number;
  vcpus: number;
  memory_mb: number;
  root_gb: number;
  ephemeral_gb: number;
}

export interface FixedIp {
  address: string;
  version: 4 | 6;
  label: string;
  vif_mac: string;
  type: 'fixed';
  floating_ips: string[];
  meta: Record<string, string>;
}

/** A network port as known to the instance (Nova's network info cache, reduced). */
export interface InstancePort {
  port_id: string;
  network_id: string;
  mac: string;
  fixed_ips: FixedIp[];
}

export interface BlockDeviceMapping {
  volume_id: string;
  device_name: string | null;
  boot_index: number | null;
  delete_on_termination: boolean;
}

/**
 * The stored instance record. Field names follow Nova's Instance object and the wire format, so
 * the record, the notifications and the CLI all speak the same names.
 *
 * Secrets (admin_password, user_data) are deliberately absent: they travel from the command to
 * the driver and are never stored.
 */
export interface Instance {
  instance_id: string;
  project_id: string;
  user_id: string;
  display_name: string;
  hostname: string;
  reservation_id: string;
  flavor: InstanceFlavor;
  image_ref: string;
  /** `image_*` system metadata (Nova's image_meta, prefix stripped). */
  image_meta: Record<string, string>;
  /**
   * Nova's other system metadata: what operations keep between their steps (old_vm_state for
   * suspend/resume, shelved_* for shelving, …). Never user-editable, never secret.
   */
  system_metadata: Record<string, string>;
  metadata: Record<string, string>;
  key_name: string | null;
  security_groups: string[];
  ports: InstancePort[];
  block_device_mapping: BlockDeviceMapping[];
  /** The root disk's device (Nova's root_device_name), the prefix new volumes are named after. */
  root_device_name?: string | null;

  vm_state: VmState;
  task_state: TaskState | null;
  power_state: PowerState;
  /** The command that owns the current task_state, so a redelivered command resumes its task. */
  task_owner: string | null;
  progress: number;

  host: string | null;
  node: string | null;
  availability_zone: string | null;

  locked: boolean;
  locked_by: 'owner' | 'admin' | null;
  locked_reason: string | null;

  os_type: string | null;
  architecture: string | null;
  kernel_id: string;
  ramdisk_id: string;
  access_ip_v4: string | null;
  access_ip_v6: string | null;

  /** ISO-8601 UTC timestamps; null when unset. */
  created_at: string;
  updated_at: string;
  launched_at: string | null;
  terminated_at: string | null;
  deleted_at: string | null;
  /** True once the instance reached DELETED; the record stays readable for the usage audit. */
  deleted: boolean;

  /** Incremented by every write: the optimistic-concurrency token. */
  version: number;
}

/** The fields an operation may change in one state write. */
export type InstanceChanges = Partial<
  Omit<Instance, 'instance_id' | 'project_id' | 'user_id' | 'created_at' | 'version'>
>;
