// Nova's three instance state machines, with their wire strings (nova/compute/vm_states.py,
// task_states.py, power_state.py). The wire strings are what producers, subscribers and the
// stored items see, so they must match Nova exactly.

export const VmState = {
  ACTIVE: 'active',
  BUILDING: 'building',
  PAUSED: 'paused',
  SUSPENDED: 'suspended',
  STOPPED: 'stopped',
  RESCUED: 'rescued',
  RESIZED: 'resized',
  SOFT_DELETED: 'soft-delete',
  DELETED: 'deleted',
  ERROR: 'error',
  SHELVED: 'shelved',
  SHELVED_OFFLOADED: 'shelved_offloaded',
} as const;
export type VmState = (typeof VmState)[keyof typeof VmState];
export const ALL_VM_STATES: readonly VmState[] = Object.values(VmState);

export const TaskState = {
  SCHEDULING: 'scheduling',
  BLOCK_DEVICE_MAPPING: 'block_device_mapping',
  NETWORKING: 'networking',
  SPAWNING: 'spawning',
  IMAGE_SNAPSHOT: 'image_snapshot',
  IMAGE_SNAPSHOT_PENDING: 'image_snapshot_pending',
  IMAGE_PENDING_UPLOAD: 'image_pending_upload',
  IMAGE_UPLOADING: 'image_uploading',
  IMAGE_BACKUP: 'image_backup',
  UPDATING_PASSWORD: 'updating_password',
  RESIZE_PREP: 'resize_prep',
  RESIZE_MIGRATING: 'resize_migrating',
  RESIZE_MIGRATED: 'resize_migrated',
  RESIZE_FINISH: 'resize_finish',
  RESIZE_REVERTING: 'resize_reverting',
  RESIZE_CONFIRMING: 'resize_confirming',
  REBOOTING: 'rebooting',
  REBOOT_PENDING: 'reboot_pending',
  REBOOT_STARTED: 'reboot_started',
  REBOOTING_HARD: 'rebooting_hard',
  REBOOT_PENDING_HARD: 'reboot_pending_hard',
  REBOOT_STARTED_HARD: 'reboot_started_hard',
  PAUSING: 'pausing',
  UNPAUSING: 'unpausing',
  SUSPENDING: 'suspending',
  RESUMING: 'resuming',
  POWERING_OFF: 'powering-off',
  POWERING_ON: 'powering-on',
  RESCUING: 'rescuing',
  UNRESCUING: 'unrescuing',
  REBUILDING: 'rebuilding',
  REBUILD_BLOCK_DEVICE_MAPPING: 'rebuild_block_device_mapping',
  REBUILD_SPAWNING: 'rebuild_spawning',
  MIGRATING: 'migrating',
  DELETING: 'deleting',
  SOFT_DELETING: 'soft-deleting',
  RESTORING: 'restoring',
  SHELVING: 'shelving',
  SHELVING_IMAGE_PENDING_UPLOAD: 'shelving_image_pending_upload',
  SHELVING_IMAGE_UPLOADING: 'shelving_image_uploading',
  SHELVING_OFFLOADING: 'shelving_offloading',
  UNSHELVING: 'unshelving',
} as const;
export type TaskState = (typeof TaskState)[keyof typeof TaskState];
export const ALL_TASK_STATES: readonly TaskState[] = Object.values(TaskState);

/** power_state is an integer code; the hypervisor is authoritative, the record is a cache. */
export const PowerState = {
  NOSTATE: 0,
  RUNNING: 1,
  PAUSED: 3,
  SHUTDOWN: 4,
  CRASHED: 6,
  SUSPENDED: 7,
} as const;
export type PowerState = (typeof PowerState)[keyof typeof PowerState];
export const ALL_POWER_STATES: readonly PowerState[] = Object.values(PowerState);

/** The string form used by versioned payloads and by humans (STATE_MAP). */
export const POWER_STATE_NAMES: Readonly<Record<PowerState, string>> = {
  0: 'pending',
  1: 'running',
  3: 'paused',
  4: 'shutdown',
  6: 'crashed',
  7: 'suspended',
};

// Nova's helper groups.
export const ALLOW_SOFT_REBOOT: readonly VmState[] = [VmState.ACTIVE];
export const ALLOW_HARD_REBOOT: readonly VmState[] = [
  VmState.ACTIVE,
  VmState.STOPPED,
  VmState.PAUSED,
  VmState.SUSPENDED,
  VmState.ERROR,
];
export const ALLOW_TRIGGER_CRASH_DUMP: readonly VmState[] = [
  VmState.ACTIVE,
  VmState.PAUSED,
  VmState.RESCUED,
  VmState.RESIZED,
  VmState.ERROR,
];
export const ALLOW_REBOOT: readonly (TaskState | null)[] = [
  null,
  TaskState.REBOOTING,
  TaskState.REBOOT_PENDING,
  TaskState.REBOOT_STARTED,
  TaskState.RESUMING,
  TaskState.REBOOTING_HARD,
  TaskState.UNPAUSING,
  TaskState.PAUSING,
  TaskState.SUSPENDING,
];
export const SOFT_REBOOT_STATES: readonly TaskState[] = [
  TaskState.REBOOTING,
  TaskState.REBOOT_PENDING,
  TaskState.REBOOT_STARTED,
];
export const HARD_REBOOT_STATES: readonly TaskState[] = [
  TaskState.REBOOTING_HARD,
  TaskState.REBOOT_PENDING_HARD,
  TaskState.REBOOT_STARTED_HARD,
];
export const RESIZING_STATES: readonly TaskState[] = [
  TaskState.RESIZE_PREP,
  TaskState.RESIZE_MIGRATING,
  TaskState.RESIZE_MIGRATED,
  TaskState.RESIZE_FINISH,
];
export const REBUILD_STATES: readonly TaskState[] = [
  TaskState.REBUILDING,
  TaskState.REBUILD_BLOCK_DEVICE_MAPPING,
  TaskState.REBUILD_SPAWNING,
];

/** Nova's allow_resource_removal: when an instance stops counting against its node. */
export function allowResourceRemoval(vm: VmState, task: TaskState | null): boolean {
  return (
    vm === VmState.DELETED || (vm === VmState.SHELVED_OFFLOADED && task !== TaskState.SPAWNING)
  );
}

/** Virt lifecycle transitions (nova/virt/event.py) and the power_state each one implies. */
export const LifecycleTransition = {
  STARTED: 'started',
  STOPPED: 'stopped',
  PAUSED: 'paused',
  RESUMED: 'resumed',
  SUSPENDED: 'suspended',
  POSTCOPY_STARTED: 'postcopy_started',
  MIGRATION_COMPLETED: 'migration_completed',
} as const;
export type LifecycleTransition = (typeof LifecycleTransition)[keyof typeof LifecycleTransition];

export const POWER_STATE_FOR_TRANSITION: Readonly<Record<LifecycleTransition, PowerState>> = {
  started: PowerState.RUNNING,
  stopped: PowerState.SHUTDOWN,
  paused: PowerState.PAUSED,
  resumed: PowerState.RUNNING,
  suspended: PowerState.SUSPENDED,
  postcopy_started: PowerState.PAUSED,
  migration_completed: PowerState.PAUSED,
};
