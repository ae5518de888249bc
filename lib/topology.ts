// The deployment's shape, defined once and read by the CDK stack, the local control plane and
// the tests, so that what runs locally is what gets deployed.

/** Every operation of CONTRACT §1, in the contract's order. */
export const OPERATIONS = [
  'build_and_run_instance',
  'terminate_instance',
  'soft_delete_instance',
  'restore_instance',
  'stop_instance',
  'start_instance',
  'reboot_instance',
  'pause_instance',
  'unpause_instance',
  'suspend_instance',
  'resume_instance',
  'rescue_instance',
  'unrescue_instance',
  'rebuild_instance',
  'resize_instance',
  'confirm_resize',
  'revert_resize',
  'migrate_instance',
  'live_migrate_instance',
  'snapshot_instance',
  'backup_instance',
  'shelve_instance',
  'shelve_offload_instance',
  'unshelve_instance',
  'attach_volume',
  'detach_volume',
  'swap_volume',
  'attach_interface',
  'detach_interface',
  'set_admin_password',
  'lock_instance',
  'unlock_instance',
  'get_console_output',
  'get_diagnostics',
  'trigger_crash_dump',
  'inject_network_info',
  'add_fixed_ip_to_instance',
  'remove_fixed_ip_from_instance',
  'set_host_enabled',
  'host_maintenance_mode',
] as const;
export type Operation = (typeof OPERATIONS)[number];

/**
 * Operations whose code exists: the stack deploys a queue, DLQ, function and alarms only for
 * these. Every operation of the contract is implemented today; the list stays so a new
 * operation can land in the contract before its code does.
 */
export const IMPLEMENTED_OPERATIONS: readonly Operation[] = OPERATIONS;

/** Operations that address a node (host) rather than an instance. */
export const HOST_OPERATIONS: readonly Operation[] = ['set_host_enabled', 'host_maintenance_mode'];

export function isOperation(value: string): value is Operation {
  return (OPERATIONS as readonly string[]).includes(value);
}

/** `build_and_run_instance` → `build-and-run-instance`: the queue and function file stem. */
export function operationSlug(operation: Operation): string {
  return operation.replaceAll('_', '-');
}

export function queueName(prefix: string, operation: Operation): string {
  return `${prefix}-${operationSlug(operation)}`;
}

export function dlqName(prefix: string, operation: Operation): string {
  return `${queueName(prefix, operation)}-dlq`;
}

/** Settings of one command-consuming function and its event source mapping. */
export interface OperationFunctionSettings {
  operation: Operation;
  /** Path of the handler module, relative to the repository root. */
  entry: string;
  timeoutSeconds: number;
  memoryMb: number;
  batchSize: number;
  maxBatchingWindowSeconds: number;
  maxConcurrency: number;
  /** SQS visibility timeout: 6 × the function timeout, as Lambda's SQS guide recommends. */
  visibilityTimeoutSeconds: number;
  /** Receives before a message moves to its DLQ (≥ 5 so throttles do not exhaust attempts). */
  maxReceiveCount: number;
}

const DEFAULT_TIMEOUT_SECONDS = 60;

export function operationFunction(operation: Operation): OperationFunctionSettings {
  const timeoutSeconds = DEFAULT_TIMEOUT_SECONDS;
  return {
    operation,
    entry: `functions/${operationSlug(operation)}.ts`,
    timeoutSeconds,
    memoryMb: 512,
    batchSize: 10,
    maxBatchingWindowSeconds: 1,
    maxConcurrency: 20,
    visibilityTimeoutSeconds: timeoutSeconds * 6,
    maxReceiveCount: 5,
  };
}

/** DynamoDB tables. Key schemas live here so the stack and the local plane agree. */
export const TABLES = {
  /** Instances, actions, faults and the notification outbox (single-table design). */
  state: {
    suffix: 'state',
    partitionKey: 'pk',
    sortKey: 'sk',
    ttlAttribute: 'expires_at',
    indexes: {
      /** Look an action up by its command_id alone (the CLI, rejected commands). */
      byCommand: { name: 'by-command', partitionKey: 'command_id', sortKey: 'sk' },
      /**
       * Instances by usage-audit shard (lib/audit/shards.ts): a node's name lists the instances
       * on it (the periodic tasks use that too), `#segment-<k>` the node-less ones. Sparse on
       * `index_node`: records retired by the audit leave it.
       */
      byNode: { name: 'by-node', partitionKey: 'index_node', sortKey: 'pk' },
      /** Actions waiting on a lifecycle event, by deadline (the sweeper): sparse on `wait_shard`. */
      byWait: { name: 'by-wait', partitionKey: 'wait_shard', sortKey: 'wait_until' },
    },
  },
  /** Powertools idempotency records, keyed on command_id. */
  idempotency: {
    suffix: 'idempotency',
    partitionKey: 'id',
    ttlAttribute: 'expiration',
  },
  /** The fake driver's hypervisor: guests per node, so it works inside Lambda. */
  fakeHypervisor: {
    suffix: 'fake-hypervisor',
    partitionKey: 'pk',
    sortKey: 'sk',
  },
} as const;

/** Waiting actions spread over this many index partitions, so no one partition runs hot. */
export const WAIT_SHARDS = 8;

/**
 * Node-less instances are audited in this many key segments. A constant, not an option: every
 * function must place an instance in the same segment, and changing it between two runs would
 * move instances between shards.
 */
export const AUDIT_SEGMENTS = 8;

export function tableName(prefix: string, table: keyof typeof TABLES): string {
  return `${prefix}-${TABLES[table].suffix}`;
}

export const DEFAULT_PREFIX = 'stratus';
export const DEFAULT_EVENT_SOURCE = 'stratus.compute';

export function busName(prefix: string): string {
  return `${prefix}-notifications`;
}

/** The queue that receives driver lifecycle events (EC2 state changes, the fake driver's events). */
export function lifecycleQueueName(prefix: string): string {
  return `${prefix}-lifecycle-events`;
}

/**
 * The usage audit (lib/audit): a scheduled fan-out that sends one message per shard to the
 * shard queue, and the shard worker that consumes it, one shard per invocation.
 */
export const USAGE_AUDIT = {
  fanOut: {
    entry: 'functions/usage-audit.ts',
    timeoutSeconds: 60,
    memoryMb: 256,
    /** Nova checks every periodic tick (60 s); a finished period needs no faster reaction. */
    scheduleMinutes: 5,
  },
  worker: {
    entry: 'functions/usage-audit-shard.ts',
    /** Lambda's maximum: a large shard renews its lease as it goes. */
    timeoutSeconds: 900,
    /** Memory buys CPU: building and sending exists is CPU-bound JSON work. */
    memoryMb: 1024,
    batchSize: 1,
    maxBatchingWindowSeconds: 0,
    maxConcurrency: 10,
    /** More than the timeout, so a message is never redelivered while its run is alive. */
    visibilityTimeoutSeconds: 960,
    maxReceiveCount: 5,
  },
} as const;

export function auditQueueName(prefix: string): string {
  return `${prefix}-usage-audit-shards`;
}

/** The `source` of the fake driver's lifecycle events on the deployment's bus. */
export const LIFECYCLE_EVENT_SOURCE = 'stratus.virt';

const LIFECYCLE_TIMEOUT_SECONDS = 60;

/** The lifecycle-events function and its queue. */
export const LIFECYCLE_FUNCTION = {
  entry: 'functions/lifecycle-events.ts',
  timeoutSeconds: LIFECYCLE_TIMEOUT_SECONDS,
  memoryMb: 512,
  batchSize: 10,
  maxBatchingWindowSeconds: 1,
  maxConcurrency: 20,
  visibilityTimeoutSeconds: LIFECYCLE_TIMEOUT_SECONDS * 6,
  maxReceiveCount: 5,
} as const;
