// Strict schemas for the command envelope and for the args of every operation in CONTRACT §1.
// Unknown keys are rejected everywhere: a typo in a producer must be an answer, not a silent
// default. zod/mini (the tree-shakable API) keeps every function bundle small.

import * as z from 'zod/mini';
import '../validation.ts';
import { HOST_OPERATIONS, OPERATIONS, type Operation } from '../topology.ts';

/** CONTRACT §1 limits. */
export const MAX_BODY_BYTES = 256 * 1024;
export const MAX_STRING = 255;
export const MAX_METADATA_ENTRIES = 128;
/** EC2's user-data limit applies to the decoded bytes. */
export const MAX_USER_DATA_BYTES = 16 * 1024;

/**
 * An SQS queue URL: AWS's (https, `sqs.<region>.amazonaws.com[.cn]` or the legacy
 * `<region>.queue.amazonaws.com`), or a loopback emulator's (http) for local runs. Replies are
 * signed requests to this host, so no other host is accepted.
 */
export const SQS_QUEUE_URL =
  /^(https:\/\/(sqs\.[a-z0-9-]+\.amazonaws\.com(\.cn)?|[a-z0-9-]+\.queue\.amazonaws\.com)|http:\/\/(127\.0\.0\.1|localhost|sqs\.[a-z0-9-]+\.localhost)(:\d{1,5})?)\/\d{12}\/[A-Za-z0-9_-]{1,80}(\.fifo)?$/;

const str = z.string().check(z.minLength(1), z.maxLength(MAX_STRING));
const optionalStr = z.string().check(z.maxLength(MAX_STRING));
const uuid = z.uuid({ error: 'must be a UUID' });
const base64 = z.string().check(
  z.regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64'),
  z.refine((s) => s.length % 4 === 0, 'must be base64 (length a multiple of 4)'),
);

const metadata = z
  .record(str, optionalStr)
  .check(
    z.refine(
      (m) => Object.keys(m).length <= MAX_METADATA_ENTRIES,
      `at most ${MAX_METADATA_ENTRIES} entries`,
    ),
  );

const devicePath = z
  .string()
  .check(z.regex(/^\/dev\/[a-z0-9]+$/, 'must be a device path like /dev/vdb'));

const opt = z.optional;
const ip = z.union([z.ipv4(), z.ipv6()]);
const int = (...checks: Parameters<ReturnType<typeof z.int>['check']>) => z.int().check(...checks);
const boolDefault = (value: boolean) => z._default(z.boolean(), value);

const injectedFiles = z
  .array(z.strictObject({ path: str, contents: base64 }))
  .check(z.maxLength(5));

const blockDeviceMapping = z.array(
  z.strictObject({
    volume_id: str,
    device_name: opt(devicePath),
    boot_index: opt(int(z.gte(-1))),
    delete_on_termination: boolDefault(false),
  }),
);

const userData = base64.check(
  z.refine(
    (s) => Buffer.from(s, 'base64').length <= MAX_USER_DATA_BYTES,
    `decoded user_data must be at most ${MAX_USER_DATA_BYTES} bytes`,
  ),
);

const none = z.strictObject({});

/** Args per operation. Keys named in SECRET_ARGS are secrets: never logged, stored or published. */
export const ARGS_SCHEMAS = {
  build_and_run_instance: z.strictObject({
    flavor: str,
    image_ref: str,
    display_name: opt(optionalStr),
    hostname: opt(
      z
        .string()
        .check(z.regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i, 'must be a valid host name label')),
    ),
    metadata: opt(metadata),
    availability_zone: opt(str),
    node: opt(str),
    networks: opt(
      z.array(z.strictObject({ network_id: str, fixed_ip: opt(ip) })).check(z.maxLength(16)),
    ),
    security_groups: opt(z.array(str).check(z.maxLength(16))),
    key_name: opt(str),
    user_data: opt(userData),
    injected_files: opt(injectedFiles),
    admin_password: opt(optionalStr),
    block_device_mapping: opt(blockDeviceMapping),
  }),
  terminate_instance: none,
  soft_delete_instance: none,
  restore_instance: none,
  stop_instance: z.strictObject({ clean_shutdown: boolDefault(true) }),
  start_instance: none,
  reboot_instance: z.strictObject({ reboot_type: z.enum(['SOFT', 'HARD']) }),
  pause_instance: none,
  unpause_instance: none,
  suspend_instance: none,
  resume_instance: none,
  rescue_instance: z.strictObject({
    rescue_image_ref: opt(str),
    rescue_password: opt(optionalStr),
  }),
  unrescue_instance: none,
  rebuild_instance: z.strictObject({
    image_ref: str,
    admin_password: opt(optionalStr),
    injected_files: opt(injectedFiles),
    preserve_ephemeral: boolDefault(false),
    display_name: opt(optionalStr),
    metadata: opt(metadata),
  }),
  resize_instance: z.strictObject({ flavor: str }),
  confirm_resize: none,
  revert_resize: none,
  migrate_instance: z.strictObject({ node: opt(str) }),
  live_migrate_instance: z.strictObject({ node: opt(str), block_migration: boolDefault(false) }),
  snapshot_instance: z.strictObject({ image_name: str, metadata: opt(metadata) }),
  backup_instance: z.strictObject({ image_name: str, backup_type: str, rotation: int(z.gte(0)) }),
  shelve_instance: none,
  shelve_offload_instance: none,
  unshelve_instance: z.strictObject({ availability_zone: opt(str) }),
  attach_volume: z.strictObject({
    volume_id: str,
    device: opt(devicePath),
    disk_bus: opt(str),
    device_type: opt(str),
  }),
  detach_volume: z.strictObject({ volume_id: str }),
  swap_volume: z.strictObject({ old_volume_id: str, new_volume_id: str }),
  attach_interface: z
    .strictObject({ network_id: opt(str), port_id: opt(str), fixed_ip: opt(ip) })
    .check(
      z.refine(
        (a) => (a.network_id === undefined) !== (a.port_id === undefined),
        'exactly one of network_id or port_id is required',
      ),
    ),
  detach_interface: z.strictObject({ port_id: str }),
  set_admin_password: z.strictObject({ new_password: optionalStr }),
  lock_instance: z.strictObject({ reason: opt(optionalStr) }),
  unlock_instance: none,
  get_console_output: z.strictObject({ tail_length: opt(int(z.gt(0))) }),
  get_diagnostics: none,
  trigger_crash_dump: none,
  inject_network_info: none,
  add_fixed_ip_to_instance: z.strictObject({ network_id: str }),
  remove_fixed_ip_from_instance: z.strictObject({ address: ip }),
  set_host_enabled: z.strictObject({ enabled: z.boolean() }),
  host_maintenance_mode: z.strictObject({ mode: z.boolean() }),
} as const satisfies Record<Operation, z.ZodMiniType>;

export type ArgsOf<O extends Operation> = z.output<(typeof ARGS_SCHEMAS)[O]>;

/** Arg keys that hold secrets. Their values never leave the command's memory. */
export const SECRET_ARGS: ReadonlySet<string> = new Set([
  'admin_password',
  'user_data',
  'rescue_password',
  'new_password',
  'injected_files',
]);

export const ContextSchema = z.strictObject({
  user_id: str,
  project_id: str,
  request_id: opt(str),
  roles: z._default(z.array(str).check(z.maxLength(32)), []),
});

export const EnvelopeSchema = z.strictObject({
  version: z.literal(1),
  command_id: z
    .string()
    .check(z.regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be 1–128 characters of [A-Za-z0-9._:-]')),
  operation: z.enum(OPERATIONS),
  context: ContextSchema,
  instance_id: opt(uuid),
  node: opt(str),
  args: z._default(z.record(z.string(), z.unknown()), {}),
  reply_to: opt(
    z.string().check(z.maxLength(1024), z.regex(SQS_QUEUE_URL, 'must be an SQS queue URL')),
  ),
});
export type Envelope = z.output<typeof EnvelopeSchema>;

/** A validated command: the envelope with its args parsed by the operation's schema. */
export interface Command<O extends Operation = Operation> {
  version: 1;
  command_id: string;
  operation: O;
  context: { user_id: string; project_id: string; request_id: string; roles: string[] };
  instance_id: string;
  node?: string;
  args: ArgsOf<O>;
  reply_to?: string;
}

/** Cross-field rules the per-field schemas cannot express. */
export function envelopeRuleViolations(envelope: Envelope): string[] {
  const problems: string[] = [];
  const isHostOp = HOST_OPERATIONS.includes(envelope.operation);
  if (isHostOp && envelope.node === undefined) problems.push('node: required for host operations');
  if (!isHostOp && envelope.node !== undefined) {
    problems.push('node: only host operations take a top-level node');
  }
  if (
    !isHostOp &&
    envelope.operation !== 'build_and_run_instance' &&
    envelope.instance_id === undefined
  ) {
    problems.push('instance_id: required for instance operations');
  }
  return problems;
}
