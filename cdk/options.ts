// Deployment options for the CDK app. The names are the contract's (CONTRACT §4) and the same
// ones lib/config.ts reads from STRATUS_* in the functions, so one option has one name everywhere:
// `-c notify_on_state_change=vm_state` at synth becomes STRATUS_NOTIFY_ON_STATE_CHANGE=vm_state.

import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Node } from 'constructs';
import { z } from 'zod';
import { z as zm } from 'zod/mini';
import { ConfigSchema, envName } from '../lib/config.ts';
import { busName } from '../lib/topology.ts';

const RETENTION_DAYS = new Set<number>(
  Object.values(RetentionDays).filter((v): v is number => typeof v === 'number'),
);

const IAM_PRINCIPAL_ARN = /^arn:aws[a-z-]*:iam::\d{12}:(root|user\/.+|role\/.+)$/;
const SNS_TOPIC_ARN = /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$/;
// Wildcards are allowed in the region, account and name so one entry can cover a naming scheme.
const SQS_QUEUE_ARN = /^arn:aws[a-z-]*:sqs:[a-z0-9*-]+:(\d{12}|\*):[A-Za-z0-9_.*-]{1,80}$/;

/**
 * Everything the CDK app accepts: the functions' options (lib/config.ts) plus options that only
 * shape the infrastructure and never reach a function's environment.
 */
export const DeploymentOptionsSchema = zm.extend(ConfigSchema, {
  // Stricter than the functions' schema: the stack turns these into IAM principals.
  producer_principals: z
    .array(
      z.string().regex(IAM_PRINCIPAL_ARN, 'an IAM ARN: arn:aws:iam::<account>:root|user/…|role/…'),
    )
    .default([]),
  /** An existing SNS topic for alarm actions; default: a topic the stack creates. */
  alarm_topic_arn: z.string().regex(SNS_TOPIC_ARN, 'an SNS topic ARN').optional(),
  /** Queues a command's `reply_to` may name; default: every queue in the stack's account and region. */
  reply_queue_arns: z
    .array(z.string().regex(SQS_QUEUE_ARN, 'an SQS queue ARN (wildcards allowed)'))
    .min(1)
    .optional(),
  log_retention_days: z.coerce
    .number()
    .refine(
      (days) => RETENTION_DAYS.has(days),
      'a CloudWatch Logs retention (1, 3, 5, 7, 14, 30, …)',
    )
    .default(30),
  /** Days the notification archive keeps events; 0 keeps them forever. */
  archive_retention_days: z.coerce.number().int().min(0).default(30),
});

export type DeploymentOptionsInput = z.input<typeof DeploymentOptionsSchema>;
export type DeploymentOptions = z.output<typeof DeploymentOptionsSchema>;

/**
 * Reads every option from CDK context. `-c` values arrive as strings, so a value that looks like
 * JSON (`[…]` or `{…}`) is parsed: structured options are written as JSON on the command line.
 */
export function readContextOptions(node: Node): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  for (const option of Object.keys(DeploymentOptionsSchema.def.shape)) {
    const value: unknown = node.tryGetContext(option);
    if (value === undefined || value === '') continue;
    raw[option] = typeof value === 'string' ? parseStructured(option, value) : value;
  }
  return raw;
}

function parseStructured(option: string, value: string): unknown {
  const trimmed = value.trim();
  if (!trimmed.startsWith('[') && !trimmed.startsWith('{')) return value;
  try {
    return JSON.parse(trimmed);
  } catch {
    throw new Error(`Invalid Stratus option "${option}": not valid JSON: ${value}`);
  }
}

/** Validates options (from context and/or props); the error names every bad option. */
export function resolveDeploymentOptions(raw: Record<string, unknown>): DeploymentOptions {
  const parsed = DeploymentOptionsSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const option = issue.path.length > 0 ? String(issue.path[0]) : '(options)';
    const where = issue.path.length > 1 ? ` at ${issue.path.slice(1).join('.')}` : '';
    return `  - ${option}${where}: ${issue.message}`;
  });
  throw new Error(
    `Invalid Stratus deployment options (CDK context keys or stack props):\n${problems.join('\n')}`,
  );
}

/** The notification bus's name: the configured one, or `<prefix>-notifications`. */
export function eventBusName(options: DeploymentOptions): string {
  return options.event_bus_name ?? busName(options.prefix);
}

/**
 * Options no function reads: producer principals become queue policies, `local_tick_seconds`
 * drives only the local control plane, and the infrastructure-only options above.
 */
const NOT_FOR_FUNCTIONS = new Set<string>([
  'producer_principals',
  'local_tick_seconds',
  'alarm_topic_arn',
  'reply_queue_arns',
  'log_retention_days',
  'archive_retention_days',
]);
const FAKE_DRIVER_ONLY = new Set<string>(['fake_nodes', 'fake_async']);
/** The EC2 driver's settings (STRATUS_EC2) reach functions only when they run that driver. */
const EC2_DRIVER_ONLY = new Set<string>(['ec2']);

/** Lambda's limit on the total size of a function's environment variables (keys + values). */
export const LAMBDA_ENVIRONMENT_LIMIT_BYTES = 4096;

/**
 * The STRATUS_* variables a function gets: every option it reads, with its resolved value, so the
 * console shows the configuration that actually runs. Table names derive from `prefix` and the
 * bus from `event_bus_name`, exactly as lib/config.ts derives them.
 */
export function functionEnvironment(options: DeploymentOptions): Record<string, string> {
  const environment: Record<string, string> = {};
  const values: Record<string, unknown> = { ...options, event_bus_name: eventBusName(options) };
  for (const [option, value] of Object.entries(values)) {
    if (value === undefined || NOT_FOR_FUNCTIONS.has(option)) continue;
    if (FAKE_DRIVER_ONLY.has(option) && options.driver !== 'fake') continue;
    if (EC2_DRIVER_ONLY.has(option) && options.driver !== 'ec2') continue;
    environment[envName(option)] =
      typeof value === 'object' ? JSON.stringify(value) : String(value);
  }
  return environment;
}

/** Fails synth, naming the largest variables, when an environment would exceed Lambda's limit. */
export function assertEnvironmentFits(environment: Record<string, string>): void {
  const size = (key: string, value: string) => Buffer.byteLength(key) + Buffer.byteLength(value);
  const total = Object.entries(environment).reduce((sum, [k, v]) => sum + size(k, v), 0);
  if (total <= LAMBDA_ENVIRONMENT_LIMIT_BYTES) return;
  const largest = Object.entries(environment)
    .sort(([ka, va], [kb, vb]) => size(kb, vb) - size(ka, va))
    .slice(0, 3)
    .map(([k, v]) => `${k} (${size(k, v)} bytes)`);
  throw new Error(
    `Function environment is ${total} bytes, over Lambda's ${LAMBDA_ENVIRONMENT_LIMIT_BYTES}-byte ` +
      `limit; largest: ${largest.join(', ')}. Shorten the catalog or node list.`,
  );
}
