// Every implemented operation's handler, by name. The lifecycle-events function uses it to
// finish whichever command's task an event completes; each command function imports only its
// own operation, so its bundle stays small.

import type { Operation } from '../../topology.ts';
import type { OperationHandler } from '../executor.ts';
import { buildAndRunInstance } from './build-and-run-instance.ts';
import { hostMaintenanceMode, setHostEnabled } from './hosts.ts';
import { getConsoleOutput, getDiagnostics } from './informational.ts';
import {
  addFixedIpToInstance,
  attachInterface,
  detachInterface,
  injectNetworkInfo,
  removeFixedIpFromInstance,
} from './interfaces.ts';
import { liveMigrateInstance } from './live-migration.ts';
import { lockInstance, unlockInstance } from './lock.ts';
import { setAdminPassword, triggerCrashDump } from './maintenance.ts';
import { pauseInstance, resumeInstance, suspendInstance, unpauseInstance } from './power-states.ts';
import { rebootInstance } from './reboot.ts';
import { rebuildInstance } from './rebuild.ts';
import { shelveInstance, shelveOffloadInstance, unshelveInstance } from './shelve.ts';
import { backupInstance, snapshotInstance } from './snapshot.ts';
import { rescueInstance, unrescueInstance } from './rescue.ts';
import { confirmResize, migrateInstance, resizeInstance, revertResize } from './resize.ts';
import { restoreInstance, softDeleteInstance } from './soft-delete.ts';
import { startInstance, stopInstance } from './power.ts';
import { attachVolume, detachVolume, swapVolume } from './volumes.ts';
import { terminateInstance } from './terminate-instance.ts';

export const OPERATION_HANDLERS: Partial<Record<Operation, OperationHandler>> = {
  build_and_run_instance: buildAndRunInstance,
  terminate_instance: terminateInstance,
  stop_instance: stopInstance,
  start_instance: startInstance,
  attach_volume: attachVolume,
  detach_volume: detachVolume,
  swap_volume: swapVolume,
  attach_interface: attachInterface,
  detach_interface: detachInterface,
  add_fixed_ip_to_instance: addFixedIpToInstance,
  remove_fixed_ip_from_instance: removeFixedIpFromInstance,
  inject_network_info: injectNetworkInfo,
  lock_instance: lockInstance,
  unlock_instance: unlockInstance,
  get_console_output: getConsoleOutput,
  get_diagnostics: getDiagnostics,
  set_host_enabled: setHostEnabled,
  host_maintenance_mode: hostMaintenanceMode,
  reboot_instance: rebootInstance,
  pause_instance: pauseInstance,
  unpause_instance: unpauseInstance,
  suspend_instance: suspendInstance,
  resume_instance: resumeInstance,
  rescue_instance: rescueInstance,
  unrescue_instance: unrescueInstance,
  soft_delete_instance: softDeleteInstance,
  restore_instance: restoreInstance,
  set_admin_password: setAdminPassword,
  trigger_crash_dump: triggerCrashDump,
  rebuild_instance: rebuildInstance,
  snapshot_instance: snapshotInstance,
  backup_instance: backupInstance,
  shelve_instance: shelveInstance,
  shelve_offload_instance: shelveOffloadInstance,
  unshelve_instance: unshelveInstance,
  resize_instance: resizeInstance,
  confirm_resize: confirmResize,
  revert_resize: revertResize,
  migrate_instance: migrateInstance,
  live_migrate_instance: liveMigrateInstance,
};
