// Deployment configuration: Nova's option names (CONTRACT §4), read once from the environment
// as STRATUS_<OPTION>. The CDK app passes the same names as context and sets them on functions;
// the local control plane reads them the same way. Structured options are JSON.

import { z } from 'zod';
import { DEFAULT_FLAVORS, FlavorSchema, type Flavor } from './compute/flavors.ts';
import { ErrorCode, StratusError } from './errors.ts';
import { DEFAULT_EVENT_SOURCE, DEFAULT_PREFIX, busName, tableName } from './topology.ts';

const bool = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'])])
  .transform((v) => (typeof v === 'boolean' ? v : ['true', '1', 'yes', 'on'].includes(v)));
const num = z.coerce.number().finite();
const nonNegativeInt = z.coerce.number().int().nonnegative();

export const FakeNodeSchema = z.strictObject({
  node: z.string().min(1).max(255),
  vcpus: z.number().int().positive(),
  memory_mb: z.number().int().positive(),
  local_gb: z.number().int().positive(),
  availability_zone: z.string().min(1).max(255).default('nova'),
});
export type FakeNode = z.infer<typeof FakeNodeSchema>;

export const DEFAULT_FAKE_NODES: readonly FakeNode[] = [
  { node: 'fake-node-1', vcpus: 16, memory_mb: 32768, local_gb: 500, availability_zone: 'nova' },
  { node: 'fake-node-2', vcpus: 16, memory_mb: 32768, local_gb: 500, availability_zone: 'nova' },
];

export const NOTIFY_ON_STATE_CHANGE = ['None', 'vm_state', 'vm_and_task_state'] as const;
export type NotifyOnStateChange = (typeof NOTIFY_ON_STATE_CHANGE)[number];

/** The options, their types and Nova's defaults. Keys are the option names users write. */
export const ConfigSchema = z.strictObject({
  host: z.string().min(1).max(255).default('stratus'),
  driver: z.enum(['fake', 'ec2']).default('fake'),
  prefix: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'lower-case letters, digits and -, at most 40')
    .default(DEFAULT_PREFIX),
  event_source: z.string().min(1).max(255).default(DEFAULT_EVENT_SOURCE),
  event_bus_name: z.string().min(1).max(255).optional(),
  notify_on_state_change: z.enum(NOTIFY_ON_STATE_CHANGE).default('None'),
  notify_api_faults: bool.default(false),
  instance_usage_audit: bool.default(true),
  instance_usage_audit_period: z
    .string()
    .regex(/^(hour|day|month|year)(@([0-9]+))?$/, 'hour|day|month|year[@offset]')
    .default('hour'),
  cpu_allocation_ratio: num.positive().default(4.0),
  ram_allocation_ratio: num.positive().default(1.0),
  disk_allocation_ratio: num.positive().default(1.0),
  reserved_host_cpus: nonNegativeInt.default(0),
  reserved_host_memory_mb: nonNegativeInt.default(512),
  reserved_host_disk_mb: nonNegativeInt.default(0),
  instance_build_timeout: nonNegativeInt.default(0),
  reboot_timeout: nonNegativeInt.default(0),
  rescue_timeout: nonNegativeInt.default(0),
  resize_confirm_window: nonNegativeInt.default(0),
  reclaim_instance_interval: nonNegativeInt.default(0),
  shelved_offload_time: z.coerce.number().int().min(-1).default(0),
  sync_power_state_interval: z.coerce.number().int().min(-1).default(600),
  /** SQS SenderIds (IAM user ids, or role ids `AROA…` matching any session) trusted to claim `admin`. */
  admin_producers: z.array(z.string().min(1)).default([]),
  producer_principals: z.array(z.string().min(1)).default([]),
  flavors: z
    .array(FlavorSchema)
    .min(1)
    .default([...DEFAULT_FLAVORS]),
  fake_nodes: z
    .array(FakeNodeSchema)
    .min(1)
    .default([...DEFAULT_FAKE_NODES]),
  /** The fake driver's asynchronous mode: spawn and power changes complete from lifecycle events. */
  fake_async: bool.default(false),
  local_tick_seconds: z.coerce.number().int().positive().default(10),
});

export type Config = z.infer<typeof ConfigSchema> & {
  flavors: Flavor[];
  tables: { state: string; idempotency: string; fakeHypervisor: string };
  event_bus: string;
};

const STRUCTURED = new Set(['admin_producers', 'producer_principals', 'flavors', 'fake_nodes']);

/** `notify_on_state_change` → `STRATUS_NOTIFY_ON_STATE_CHANGE`. */
export function envName(option: string): string {
  return `STRATUS_${option.toUpperCase()}`;
}

/**
 * Reads every option from the environment. Throws one StratusError naming each bad option, so a
 * misconfigured function fails at cold start with a message that says what to fix.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const raw: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const option of Object.keys(ConfigSchema.shape)) {
    const value = env[envName(option)];
    if (value === undefined || value === '') continue;
    if (STRUCTURED.has(option)) {
      try {
        raw[option] = JSON.parse(value);
      } catch {
        problems.push(`${envName(option)}: not valid JSON`);
      }
    } else {
      raw[option] = value;
    }
  }
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push(`${envName(String(issue.path[0] ?? '?'))}: ${issue.message}`);
    }
  }
  if (problems.length > 0 || !parsed.success) {
    throw new StratusError(ErrorCode.ConfigError, `Invalid configuration: ${problems.join('; ')}`);
  }
  const c = parsed.data;
  return {
    ...c,
    tables: {
      state: tableName(c.prefix, 'state'),
      idempotency: tableName(c.prefix, 'idempotency'),
      fakeHypervisor: tableName(c.prefix, 'fakeHypervisor'),
    },
    event_bus: c.event_bus_name ?? busName(c.prefix),
  };
}
