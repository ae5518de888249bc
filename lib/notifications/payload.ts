// Nova's legacy instance payload (`nova/notifications/base.py::info_from_instance`), the part of
// every `compute.instance.*` notification that billing consumers (Ceilometer, StackTach/Yagi)
// read. Keys, their order, and Nova's odd-looking defaults ('' for an unset cell, task state or
// zero progress) are all kept on purpose: subscribers written against Nova depend on them.
import type { Instance } from '../compute/instance.ts';
import type { TaskState, VmState } from '../compute/states.ts';
import { legacyTimestamp } from './time.ts';

export type LegacyFixedIp = {
  address: string;
  floating_ips: string[];
  label: string;
  meta: Record<string, string>;
  type: 'fixed';
  version: 4 | 6;
  vif_mac: string;
};

// Type aliases, not interfaces, so payloads are assignable to Record<string, unknown>.
export type LegacyInstancePayload = {
  tenant_id: string;
  user_id: string;
  instance_id: string;
  display_name: string;
  reservation_id: string;
  hostname: string;
  instance_type: string;
  instance_type_id: number;
  instance_flavor_id: string;
  architecture: string | null;
  memory_mb: number;
  disk_gb: number;
  vcpus: number;
  root_gb: number;
  ephemeral_gb: number;
  host: string | null;
  node: string | null;
  availability_zone: string | null;
  cell_name: string;
  created_at: string;
  terminated_at: string;
  deleted_at: string;
  launched_at: string;
  image_ref_url: string;
  os_type: string | null;
  kernel_id: string;
  ramdisk_id: string;
  state: VmState;
  state_description: TaskState | '';
  progress: number | '';
  access_ip_v4: string | null;
  access_ip_v6: string | null;
  fixed_ips?: LegacyFixedIp[];
  image_meta: Record<string, string>;
  metadata: Record<string, string>;
};

/** Keys the notification code must never publish (CONTRACT §1 marks them secret). */
export const SECRET_KEYS: ReadonlySet<string> = new Set([
  'admin_password',
  'user_data',
  'rescue_password',
  'new_password',
]);

/** Nova's fixed_ips: every fixed IP of every VIF, labelled with its network and the VIF's MAC. */
function fixedIps(instance: Instance): LegacyFixedIp[] {
  return instance.ports.flatMap((port) =>
    port.fixed_ips.map((ip) => ({
      address: ip.address,
      floating_ips: [...ip.floating_ips],
      label: ip.label,
      meta: { ...ip.meta },
      type: ip.type,
      version: ip.version,
      // Nova overwrites each IP's vif_mac with the VIF's address; the port is the VIF here.
      vif_mac: port.mac,
    })),
  );
}

/**
 * The legacy instance info, keys in Nova's order. `fixed_ips` appears only when
 * `includeFixedIps` is set, as Nova adds it only when it was handed network info (the update
 * and exists notifications never carry it).
 */
export function instancePayload(
  instance: Instance,
  opts: { includeFixedIps?: boolean } = {},
): LegacyInstancePayload {
  const { flavor } = instance;
  return {
    tenant_id: instance.project_id,
    user_id: instance.user_id,
    instance_id: instance.instance_id,
    display_name: instance.display_name,
    reservation_id: instance.reservation_id,
    hostname: instance.hostname,
    instance_type: flavor.name,
    instance_type_id: flavor.id,
    instance_flavor_id: flavor.flavorid,
    architecture: instance.architecture,
    memory_mb: flavor.memory_mb,
    disk_gb: flavor.root_gb + flavor.ephemeral_gb,
    vcpus: flavor.vcpus,
    root_gb: flavor.root_gb,
    ephemeral_gb: flavor.ephemeral_gb,
    host: instance.host,
    node: instance.node,
    availability_zone: instance.availability_zone,
    // Stratus has no cells; Nova sends '' for an unset cell_name.
    cell_name: '',
    created_at: legacyTimestamp(instance.created_at),
    terminated_at: legacyTimestamp(instance.terminated_at),
    deleted_at: legacyTimestamp(instance.deleted_at),
    launched_at: legacyTimestamp(instance.launched_at),
    // Nova falls back to the bare image id when it has no Glance endpoint; Stratus never has one.
    image_ref_url: instance.image_ref,
    os_type: instance.os_type,
    kernel_id: instance.kernel_id,
    ramdisk_id: instance.ramdisk_id,
    state: instance.vm_state,
    state_description: instance.task_state ?? '',
    // Nova: `int(progress) if progress else ''`; a fraction below 1 is '' too, never a 0.
    progress: Math.trunc(instance.progress) || '',
    access_ip_v4: instance.access_ip_v4,
    access_ip_v6: instance.access_ip_v6,
    ...(opts.includeFixedIps ? { fixed_ips: fixedIps(instance) } : {}),
    image_meta: { ...instance.image_meta },
    metadata: { ...instance.metadata },
  };
}

/** Refuse a payload that names a secret: a programming error, never something to publish. */
export function assertNoSecrets(payload: Readonly<Record<string, unknown>>): void {
  for (const key of Object.keys(payload)) {
    if (SECRET_KEYS.has(key)) {
      throw new Error(`refusing to build a notification carrying the secret field '${key}'`);
    }
  }
}
