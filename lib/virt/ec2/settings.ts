// The EC2 driver's own settings: config option `ec2` (env STRATUS_EC2, JSON). They say how
// Nova's names (networks, flavors, images, security groups) become EC2 ids, and which nodes the
// driver reports to the resource tracker (reference §3: pool nodes bounded by a vCPU budget,
// one node per Dedicated Host, whole servers for *.metal).

import * as z from 'zod/mini';
import '../../validation.ts';

const text = z.string().check(z.minLength(1), z.maxLength(255));
const count = (...checks: Parameters<ReturnType<typeof z.int>['check']>) =>
  z.int().check(...checks);
const withDefault = z._default;
const prefixed = (prefix: string) =>
  z
    .string()
    .check(z.regex(new RegExp(`^${prefix}-[0-9a-zA-Z]+$`), `an EC2 id starting with ${prefix}-`));

/**
 * Nova's classic m1.* flavors have no EC2 instance type of the same name worth launching (the
 * real m1.* are retired previous-generation types). Each maps to the current type with the same
 * memory; burstable t3 types have 2 vCPUs where the flavor says 1, so a guest may see more vCPUs
 * than its flavor (it is billed, scheduled and claimed as the flavor says).
 */
export const NOVA_FLAVOR_INSTANCE_TYPES: Readonly<Record<string, string>> = {
  'm1.tiny': 't3.nano',
  'm1.small': 't3.small',
  'm1.medium': 't3.medium',
  'm1.large': 'c5.xlarge',
  'm1.xlarge': 'c5.2xlarge',
};

/**
 * A pool node: on-demand capacity in one availability zone, as much as the operator grants it.
 * `vcpus` is a number, or `"quota"`: the account's On-Demand vCPU quota (Service Quotas code
 * `quota_code`) read at each resource audit, which needs a quota reader (Ec2DriverOptions).
 * `metal`: the pool is whole `*.metal` servers, `count` of them; vcpus/memory come from
 * DescribeInstanceTypes × count and each metal flavor takes one server.
 */
export const Ec2PoolSchema = z
  .strictObject({
    node: text,
    availability_zone: text,
    vcpus: z.optional(z.union([count(z.positive()), z.literal('quota')])),
    quota_code: withDefault(text, 'L-1216C47A'),
    memory_mb: z.optional(count(z.positive())),
    /** When `memory_mb` is not given: vcpus × this. */
    memory_mb_per_vcpu: withDefault(count(z.positive()), 4096),
    /** EBS is not local disk: the default is large enough never to bind before vCPU and memory. */
    local_gb: withDefault(count(z.positive()), 1_048_576),
    metal: z.optional(
      z.strictObject({
        instance_type: z
          .string()
          .check(z.regex(/^[a-z0-9-]+\.metal(-[0-9a-z]+)?$/, 'a *.metal instance type')),
        count: count(z.positive()),
      }),
    ),
    /** Subnet to launch into when the instance names no network (else the driver's default). */
    subnet: z.optional(prefixed('subnet')),
  })
  .check(
    z.refine(
      (pool) => pool.vcpus !== undefined || pool.metal !== undefined,
      'a pool needs vcpus (a number or "quota") or metal',
    ),
  );
export type Ec2Pool = z.output<typeof Ec2PoolSchema>;

export const Ec2SettingsSchema = z.strictObject({
  /** AWS region; the SDK's own resolution (AWS_REGION) when absent. */
  region: z.optional(text),
  /** Neutron network id → EC2 subnet id. A requested network not listed here fails the build. */
  subnets: withDefault(z.record(text, prefixed('subnet')), {}),
  /** Subnet for instances that request no network (and pools without their own). */
  default_subnet: z.optional(prefixed('subnet')),
  /**
   * Nova security group name → EC2 security group id. An instance's `default` group that is not
   * listed is left to EC2 (the VPC's default group); any other unlisted name fails the build.
   */
  security_groups: withDefault(z.record(text, prefixed('sg')), {}),
  /** Key pair for instances that name none. */
  key_name: z.optional(text),
  /** Flavor name → instance type; overrides NOVA_FLAVOR_INSTANCE_TYPES and the flavor name. */
  instance_types: withDefault(z.record(text, text), {}),
  /** Image ref → AMI id; an image ref that is itself `ami-…` needs no entry. */
  images: withDefault(z.record(text, prefixed('ami')), {}),
  /** Pool nodes (may be empty when only Dedicated Hosts are used). */
  pools: withDefault(z.array(Ec2PoolSchema), []),
  /**
   * One node per Dedicated Host tagged `stratus:deployment=<prefix>`, named by its `stratus:node`
   * tag (stable across host recovery; hosts without it are named `ec2-host:<host id>`).
   */
  dedicated_hosts: withDefault(z.boolean(), false),
  /**
   * Launch instances hibernation-enabled (HibernationOptions.Configured), which is what lets
   * suspend hibernate them. It can only be chosen at launch; *.metal types never get it. All
   * flavors when `hibernation_flavors` is absent, else only those. Requires an encrypted EBS
   * root and a hibernation-capable AMI (AWS rejects the launch otherwise).
   */
  hibernation: withDefault(z.boolean(), false),
  hibernation_flavors: z.optional(z.array(text)),
  /** Seconds a pending launch/start waits for its event before the sweeper checks. */
  launch_deadline_seconds: withDefault(count(z.positive()), 900),
  /** The same for *.metal types, which take 20-35 minutes to boot (reference §1, spawn). */
  metal_launch_deadline_seconds: withDefault(count(z.positive()), 2700),
  /** Deadline of a pending stop, terminate or hibernate. */
  stop_deadline_seconds: withDefault(count(z.positive()), 600),
  /** How long reads tolerate InvalidInstanceID.NotFound right after a launch (eventual consistency). */
  not_found_grace_seconds: withDefault(count(z.gte(0)), 60),
  /** SDK max attempts (adaptive retry mode) for throttled or transient failures. */
  max_attempts: withDefault(count(z.positive()), 8),
});
export type Ec2Settings = z.output<typeof Ec2SettingsSchema>;

/** Settings with every default filled in (what `ec2: {}` parses to). */
export function defaultEc2Settings(overrides: z.input<typeof Ec2SettingsSchema> = {}): Ec2Settings {
  return Ec2SettingsSchema.parse(overrides);
}

const AMI_ID = /^ami-[0-9a-f]{8,17}$/;

/** The EC2 instance type a flavor launches as, or null when the settings cannot tell. */
export function instanceTypeFor(settings: Ec2Settings, flavorName: string): string | null {
  return (
    settings.instance_types[flavorName] ??
    NOVA_FLAVOR_INSTANCE_TYPES[flavorName] ??
    (flavorName.includes('.') ? flavorName : null)
  );
}

/** The AMI an image ref launches, or null when the settings cannot tell. */
export function amiFor(
  settings: Ec2Settings,
  imageRef: string,
  imageMeta: Record<string, string> = {},
): string | null {
  const mapped = settings.images[imageRef];
  if (mapped !== undefined) return mapped;
  if (AMI_ID.test(imageRef)) return imageRef;
  // Glance images registered for EC2 carry their AMI as a property (Omni's `aws_image_id`).
  const property = imageMeta['aws_image_id'];
  return property !== undefined && AMI_ID.test(property) ? property : null;
}

export function isMetalType(instanceType: string): boolean {
  return /\.metal(-|$)/.test(instanceType);
}

/** Whether an instance of this flavor and type is launched hibernation-enabled. */
export function launchesHibernationEnabled(
  settings: Ec2Settings,
  flavorName: string,
  instanceType: string,
): boolean {
  if (!settings.hibernation || isMetalType(instanceType)) return false;
  return settings.hibernation_flavors === undefined
    ? true
    : settings.hibernation_flavors.includes(flavorName);
}
