// Deployment configuration: Nova's option names (CONTRACT §4), read once from the environment
// as STRATUS_<OPTION>. The CDK app passes the same names as context and sets them on functions;
// the local control plane reads them the same way. Structured options are JSON.

import * as z from 'zod/mini';
import './validation.ts';
import { DEFAULT_FLAVORS, FlavorSchema, type Flavor } from './compute/flavors.ts';
import { ErrorCode, StratusError } from './errors.ts';
import { DEFAULT_EVENT_SOURCE, DEFAULT_PREFIX, busName, tableName } from './topology.ts';
import { Ec2SettingsSchema } from './virt/ec2/settings.ts';

const BOOL_WORDS = ['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'] as const;
const bool = z.pipe(
  z.union([z.boolean(), z.enum(BOOL_WORDS)]),
  z.transform((v: boolean | (typeof BOOL_WORDS)[number]): boolean =>
    typeof v === 'boolean' ? v : ['true', '1', 'yes', 'on'].includes(v),
  ),
);
const name = z.string().check(z.minLength(1), z.maxLength(255));
const int = (...checks: Parameters<ReturnType<typeof z.int>['check']>) => z.int().check(...checks);
/** Environment values are strings: options that are numbers accept numeric strings. */
const coercedNumber = (...checks: Parameters<ReturnType<typeof z.number>['check']>) =>
  z.coerce.number().check(
    z.refine((n) => Number.isFinite(n), 'must be a finite number'),
    ...checks,
  );
const coercedInt = (min: number) =>
  z.coerce.number().check(
    z.refine((n) => Number.isInteger(n), 'must be an integer'),
    z.gte(min),
  );
const withDefault = z._default;

/** `#` starts the usage audit's segment shard keys (lib/audit/shards.ts), never a node. */
const nodeName = z.string().check(
  z.minLength(1),
  z.maxLength(255),
  z.refine((n) => !n.startsWith('#'), 'a node name must not start with #'),
);

export const FakeNodeSchema = z.strictObject({
  node: nodeName,
  vcpus: int(z.positive()),
  memory_mb: int(z.positive()),
  local_gb: int(z.positive()),
  availability_zone: withDefault(name, 'nova'),
});
export type FakeNode = z.output<typeof FakeNodeSchema>;

export const DEFAULT_FAKE_NODES: readonly FakeNode[] = [
  { node: 'fake-node-1', vcpus: 16, memory_mb: 32768, local_gb: 500, availability_zone: 'nova' },
  { node: 'fake-node-2', vcpus: 16, memory_mb: 32768, local_gb: 500, availability_zone: 'nova' },
];

export const NOTIFY_ON_STATE_CHANGE = ['None', 'vm_state', 'vm_and_task_state'] as const;
export type NotifyOnStateChange = (typeof NOTIFY_ON_STATE_CHANGE)[number];

/** The options, their types and Nova's defaults. Keys are the option names users write. */
export const ConfigSchema = z.strictObject({
  host: withDefault(name, 'stratus'),
  driver: withDefault(z.enum(['fake', 'ec2']), 'fake'),
  prefix: withDefault(
    z
      .string()
      .check(z.regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'lower-case letters, digits and -, at most 40')),
    DEFAULT_PREFIX,
  ),
  event_source: withDefault(name, DEFAULT_EVENT_SOURCE),
  event_bus_name: z.optional(name),
  notify_on_state_change: withDefault(z.enum(NOTIFY_ON_STATE_CHANGE), 'None'),
  notify_api_faults: withDefault(bool, false),
  instance_usage_audit: withDefault(bool, true),
  instance_usage_audit_period: withDefault(
    z
      .string()
      .check(z.regex(/^(hour|day|month|year)(@([0-9]+))?$/, 'hour|day|month|year[@offset]')),
    'hour',
  ),
  /** How long a shard's audit run holds its task_log lease before another run may take over. */
  usage_audit_lease_seconds: withDefault(coercedInt(30), 300),
  cpu_allocation_ratio: withDefault(coercedNumber(z.positive()), 4.0),
  ram_allocation_ratio: withDefault(coercedNumber(z.positive()), 1.0),
  disk_allocation_ratio: withDefault(coercedNumber(z.positive()), 1.0),
  reserved_host_cpus: withDefault(coercedInt(0), 0),
  reserved_host_memory_mb: withDefault(coercedInt(0), 512),
  reserved_host_disk_mb: withDefault(coercedInt(0), 0),
  /** Nova's [filter_scheduler] ram_weight_multiplier: > 0 spreads by free RAM, < 0 packs. */
  ram_weight_multiplier: withDefault(coercedNumber(), 1.0),
  instance_build_timeout: withDefault(coercedInt(0), 0),
  reboot_timeout: withDefault(coercedInt(0), 0),
  rescue_timeout: withDefault(coercedInt(0), 0),
  resize_confirm_window: withDefault(coercedInt(0), 0),
  reclaim_instance_interval: withDefault(coercedInt(0), 0),
  shelved_offload_time: withDefault(coercedInt(-1), 0),
  sync_power_state_interval: withDefault(coercedInt(-1), 600),
  /** Nova's [compute]max_disk_devices_to_attach: -1 unlimited; 0 is invalid. */
  max_disk_devices_to_attach: withDefault(
    coercedInt(-1).check(z.refine((n) => n !== 0, 'must be -1 (unlimited) or a positive count')),
    -1,
  ),
  /** SQS SenderIds (IAM user ids, or role ids `AROA…` matching any session) trusted to claim `admin`. */
  admin_producers: withDefault(z.array(z.string().check(z.minLength(1))), []),
  producer_principals: withDefault(z.array(z.string().check(z.minLength(1))), []),
  flavors: withDefault(z.array(FlavorSchema).check(z.minLength(1)), () => [...DEFAULT_FLAVORS]),
  fake_nodes: withDefault(z.array(FakeNodeSchema).check(z.minLength(1)), () => [
    ...DEFAULT_FAKE_NODES,
  ]),
  /** The fake driver's asynchronous mode: spawn and power changes complete from lifecycle events. */
  fake_async: withDefault(bool, false),
  /** The EC2 driver's settings (lib/virt/ec2/settings.ts, docs/ec2-driver.md); JSON. */
  ec2: z.prefault(Ec2SettingsSchema, {}),
  local_tick_seconds: withDefault(coercedInt(1), 10),
});

export type Config = z.output<typeof ConfigSchema> & {
  flavors: Flavor[];
  tables: { state: string; idempotency: string; fakeHypervisor: string };
  event_bus: string;
};

const STRUCTURED = new Set([
  'admin_producers',
  'producer_principals',
  'flavors',
  'fake_nodes',
  'ec2',
]);

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
  for (const option of Object.keys(ConfigSchema.def.shape)) {
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
