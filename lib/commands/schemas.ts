// Strict schemas for the command envelope and for the args of every operation in CONTRACT §1.
// Unknown keys are rejected everywhere: a typo in a producer must be an answer, not a silent
// default.

import { z } from 'zod';
import { HOST_OPERATIONS, OPERATIONS, type Operation } from '../topology.ts';

/** CONTRACT §1 limits. */
export const MAX_BODY_BYTES = 256 * 1024;
export const MAX_STRING = 255;
export const MAX_METADATA_ENTRIES = 128;
/** EC2's user-data limit applies to the decoded bytes. */
export const MAX_USER_DATA_BYTES = 16 * 1024;

const str = z.string().min(1).max(MAX_STRING);
const optionalStr = z.string().max(MAX_STRING);
const uuid = z.uuid({ error: 'must be a UUID' });
const base64 = z
  .string()
  .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64')
  .refine((s) => s.length % 4 === 0, 'must be base64 (length a multiple of 4)');

const metadata = z
  .record(str, optionalStr)
  .refine((m) => Object.keys(m).length <= MAX_METADATA_ENTRIES, {
    message: `at most ${MAX_METADATA_ENTRIES} entries`,
  });

const devicePath = z.string().regex(/^\/dev\/[a-z0-9]+$/, 'must be a device path like /dev/vdb');

const injectedFiles = z
  .array(z.strictObject({ path: z.string().min(1).max(MAX_STRING), contents: base64 }))
  .max(5);

const blockDeviceMapping = z.array(
  z.strictObject({
    volume_id: str,
    device_name: devicePath.optional(),
    boot_index: z.number().int().min(-1).optional(),
    delete_on_termination: z.boolean().default(false),
  }),
);

const userData = base64.refine((s) => Buffer.from(s, 'base64').length <= MAX_USER_DATA_BYTES, {
  message: `decoded user_data must be at most ${MAX_USER_DATA_BYTES} bytes`,
});

const none = z.strictObject({});

/** Args per operation. Keys named in SECRET_ARGS are secrets: never logged, stored or published. */
export const ARGS_SCHEMAS = {
  build_and_run_instance: z.strictObject({
    flavor: str,
    image_ref: str,
    display_name: optionalStr.optional(),
    hostname: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i, 'must be a valid host name label')
      .optional(),
    metadata: metadata.optional(),
    availability_zone: str.optional(),
    node: str.optional(),
    networks: z
      .array(
        z.strictObject({ network_id: str, fixed_ip: z.union([z.ipv4(), z.ipv6()]).optional() }),
      )
      .max(16)
      .optional(),
    security_groups: z.array(str).max(16).optional(),
    key_name: str.optional(),
    user_data: userData.optional(),
    injected_files: injectedFiles.optional(),
    admin_password: optionalStr.optional(),
    block_device_mapping: blockDeviceMapping.optional(),
  }),
  terminate_instance: none,
  soft_delete_instance: none,
  restore_instance: none,
  stop_instance: z.strictObject({ clean_shutdown: z.boolean().default(true) }),
  start_instance: none,
  reboot_instance: z.strictObject({ reboot_type: z.enum(['SOFT', 'HARD']) }),
  pause_instance: none,
  unpause_instance: none,
  suspend_instance: none,
  resume_instance: none,
  rescue_instance: z.strictObject({
    rescue_image_ref: str.optional(),
    rescue_password: optionalStr.optional(),
  }),
  unrescue_instance: none,
  rebuild_instance: z.strictObject({
    image_ref: str,
    admin_password: optionalStr.optional(),
    injected_files: injectedFiles.optional(),
    preserve_ephemeral: z.boolean().default(false),
    display_name: optionalStr.optional(),
    metadata: metadata.optional(),
  }),
  resize_instance: z.strictObject({ flavor: str }),
  confirm_resize: none,
  revert_resize: none,
  migrate_instance: z.strictObject({ node: str.optional() }),
  live_migrate_instance: z.strictObject({
    node: str.optional(),
    block_migration: z.boolean().default(false),
  }),
  snapshot_instance: z.strictObject({ image_name: str, metadata: metadata.optional() }),
  backup_instance: z.strictObject({
    image_name: str,
    backup_type: str,
    rotation: z.number().int().nonnegative(),
  }),
  shelve_instance: none,
  shelve_offload_instance: none,
  unshelve_instance: z.strictObject({ availability_zone: str.optional() }),
  attach_volume: z.strictObject({
    volume_id: str,
    device: devicePath.optional(),
    disk_bus: str.optional(),
    device_type: str.optional(),
  }),
  detach_volume: z.strictObject({ volume_id: str }),
  swap_volume: z.strictObject({ old_volume_id: str, new_volume_id: str }),
  attach_interface: z
    .strictObject({
      network_id: str.optional(),
      port_id: str.optional(),
      fixed_ip: z.union([z.ipv4(), z.ipv6()]).optional(),
    })
    .refine((a) => (a.network_id === undefined) !== (a.port_id === undefined), {
      message: 'exactly one of network_id or port_id is required',
    }),
  detach_interface: z.strictObject({ port_id: str }),
  set_admin_password: z.strictObject({ new_password: optionalStr }),
  lock_instance: z.strictObject({ reason: optionalStr.optional() }),
  unlock_instance: none,
  get_console_output: z.strictObject({ tail_length: z.number().int().positive().optional() }),
  get_diagnostics: none,
  trigger_crash_dump: none,
  inject_network_info: none,
  add_fixed_ip_to_instance: z.strictObject({ network_id: str }),
  remove_fixed_ip_from_instance: z.strictObject({ address: z.union([z.ipv4(), z.ipv6()]) }),
  set_host_enabled: z.strictObject({ enabled: z.boolean() }),
  host_maintenance_mode: z.strictObject({ mode: z.boolean() }),
} as const satisfies Record<Operation, z.ZodType>;

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
  request_id: str.optional(),
  roles: z.array(str).max(32).default([]),
});

export const EnvelopeSchema = z.strictObject({
  version: z.literal(1),
  command_id: z
    .string()
    .regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be 1–128 characters of [A-Za-z0-9._:-]'),
  operation: z.enum(OPERATIONS),
  context: ContextSchema,
  instance_id: uuid.optional(),
  node: str.optional(),
  args: z.record(z.string(), z.unknown()).default({}),
  reply_to: z
    .string()
    .max(1024)
    .regex(/^https?:\/\/[^\s]+$/, 'must be an SQS queue URL')
    .optional(),
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
