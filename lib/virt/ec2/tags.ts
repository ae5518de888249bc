// How the EC2 driver marks what it owns. One AWS account may hold several Stratus deployments
// and instances nobody asked Stratus to manage, so every instance, volume and interface the
// driver creates carries the deployment's name, and every Describe* it sends filters on it: an
// instance without our tag is never listed, adopted, stopped or terminated (reference §1,
// list_instances: "always filter by our tag so foreign instances in the account are never
// adopted"). Identity tags are written at creation (TagSpecifications), never afterwards, so
// there is no window in which a just-launched instance is untagged (the classic
// CreateTags-after-RunInstances race, reference §5 InvalidInstanceID.NotFound). Only the
// `intent` tags of multi-step emulations are written later, on instances already ours.

import type { Filter, ResourceType, Tag, TagSpecification } from '@aws-sdk/client-ec2';

/** Tag keys. `aws:` is reserved by AWS; ours share the `stratus:` prefix. */
export const TAG = {
  /** The deployment (config `prefix`) that owns the resource. */
  deployment: 'stratus:deployment',
  /** The Stratus (Nova) instance uuid of an EC2 instance. */
  instanceId: 'stratus:instance-id',
  /**
   * The node the instance counts against: a pool node name, or a Dedicated Host's node name.
   * On a Dedicated Host this tag is the node's identity (host recovery replaces the `h-…` id but
   * keeps the tags, reference §3.2b).
   */
  node: 'stratus:node',
  /** The command that launched the instance (also its RunInstances ClientToken). */
  commandId: 'stratus:command-id',
  /** What the instance counts as on its node: `<vcpus>/<memory_mb>/<disk_gb>` of its flavor. */
  usage: 'stratus:usage',
  /**
   * A multi-step emulation in flight (see Ec2Intent); the state-change event that ends one step
   * makes the driver take the next. Absent when nothing is in flight.
   */
  intent: 'stratus:intent',
  /** The command that set the intent, so a redelivered command recognises its own. */
  intentCommand: 'stratus:intent-command',
  /** On an AMI made by snapshot: the Stratus (Glance) image id it stands for. */
  imageId: 'stratus:image-id',
  /** AWS's display name tag. */
  name: 'Name',
} as const;

/**
 * Steps an emulated operation leaves for the next state-change event:
 * - `start`: a HARD reboot stopped the instance; start it once `stopped`.
 * - `stop`: spawn with power_on false launched it (EC2 always boots); stop it once `running`.
 * - `resume`: a resume started a hibernated instance; its `running` is RESUMED, not STARTED.
 * - `terminate`: the driver terminated the instance (so `terminated` is not a crash).
 */
export const Ec2Intent = {
  START: 'start',
  STOP: 'stop',
  RESUME: 'resume',
  TERMINATE: 'terminate',
} as const;
export type Ec2Intent = (typeof Ec2Intent)[keyof typeof Ec2Intent];

export function isEc2Intent(value: string | undefined | null): value is Ec2Intent {
  return (Object.values(Ec2Intent) as (string | undefined | null)[]).includes(value);
}

/** AWS limits tag values to 256 characters. */
const MAX_TAG_VALUE = 256;

function tag(Key: string, Value: string): Tag {
  return { Key, Value: Value.slice(0, MAX_TAG_VALUE) };
}

/** The value of `key` in an EC2 tag list, or undefined. */
export function tagValue(tags: readonly Tag[] | undefined, key: string): string | undefined {
  return tags?.find((t) => t.Key === key)?.Value;
}

/** The tags of a resource that belongs to `deployment`. */
export function deploymentTags(deployment: string): Tag[] {
  return [tag(TAG.deployment, deployment)];
}

export interface InstanceTagInput {
  deployment: string;
  instanceId: string;
  node: string;
  commandId: string;
  displayName: string;
  usage: { vcpus: number; memory_mb: number; disk_gb: number };
}

/** Every tag an EC2 instance launched for a Stratus instance carries. */
export function instanceTags(input: InstanceTagInput): Tag[] {
  const { vcpus, memory_mb, disk_gb } = input.usage;
  return [
    ...deploymentTags(input.deployment),
    tag(TAG.instanceId, input.instanceId),
    tag(TAG.node, input.node),
    tag(TAG.commandId, input.commandId),
    tag(TAG.usage, `${vcpus}/${memory_mb}/${disk_gb}`),
    tag(TAG.name, input.displayName || input.instanceId),
  ];
}

/**
 * RunInstances TagSpecifications: the instance gets every tag; its root/data volumes and its
 * network interfaces get the deployment and instance id, so they can be traced and cleaned up.
 */
export function launchTagSpecifications(input: InstanceTagInput): TagSpecification[] {
  const owned = [...deploymentTags(input.deployment), tag(TAG.instanceId, input.instanceId)];
  const spec = (ResourceType: ResourceType, Tags: Tag[]): TagSpecification => ({
    ResourceType,
    Tags,
  });
  return [
    spec('instance', instanceTags(input)),
    spec('volume', owned),
    spec('network-interface', owned),
  ];
}

/** TagSpecifications for another resource created on behalf of an instance (ENI, AMI). */
export function ownedTagSpecifications(
  resourceType: ResourceType,
  deployment: string,
  instanceId: string,
  extra: Tag[] = [],
): TagSpecification[] {
  return [
    {
      ResourceType: resourceType,
      Tags: [...deploymentTags(deployment), tag(TAG.instanceId, instanceId), ...extra],
    },
  ];
}

/**
 * The states in which a guest exists for Nova. `shutting-down` is a destroy in progress: like a
 * destroyed libvirt domain it is no longer listed (terminated ones are long gone).
 */
export const LIVE_STATES = ['pending', 'running', 'stopping', 'stopped'];

/** Filters that restrict a Describe* call to this deployment's resources. */
export function deploymentFilters(deployment: string): Filter[] {
  return [{ Name: `tag:${TAG.deployment}`, Values: [deployment] }];
}

/**
 * DescribeInstances filters for this deployment's instances: all live ones, or those of one
 * Stratus instance, or those on one node. Terminated instances stay visible in EC2 for about an
 * hour; `includeGone` keeps shutting-down and terminated ones (to tell a finished destroy from
 * a guest lost out of band).
 */
export function instanceFilters(
  deployment: string,
  options: { instanceId?: string; node?: string; includeGone?: boolean } = {},
): Filter[] {
  const filters = deploymentFilters(deployment);
  if (options.instanceId !== undefined)
    filters.push({ Name: `tag:${TAG.instanceId}`, Values: [options.instanceId] });
  if (options.node !== undefined) filters.push({ Name: `tag:${TAG.node}`, Values: [options.node] });
  if (!options.includeGone) filters.push({ Name: 'instance-state-name', Values: LIVE_STATES });
  return filters;
}

/** Whether an EC2 resource's tags say it belongs to `deployment`. */
export function ownedBy(tags: readonly Tag[] | undefined, deployment: string): boolean {
  return tagValue(tags, TAG.deployment) === deployment;
}
