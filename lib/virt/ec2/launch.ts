// spawn on EC2: one RunInstances, built here from the instance and the spawn request: the
// flavor's instance type, the AMI, the node's placement (pool or Dedicated Host), networks,
// block devices sized to the flavor, the deployment's tags and the user data. Nothing waits:
// the launch returns `pending`, and EC2's state-change event completes it.

import { createHash } from 'node:crypto';
import {
  type BlockDeviceMapping as Ec2BlockDeviceMapping,
  DescribeImagesCommand,
  type InstanceNetworkInterfaceSpecification,
  RunInstancesCommand,
  type RunInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import type { Instance } from '../../compute/instance.ts';
import { LifecycleTransition } from '../../compute/states.ts';
import type { DriverContext, SpawnRequest, SpawnResult } from '../driver.ts';
import { DriverError, NotSupportedError } from '../errors.ts';
import { type Ec2Context, attempt } from './calls.ts';
import { EC2_DRIVER_NAME, Ec2QuotaExceededError } from './errors.ts';
import { launchDeadline, pending } from './guest-actions.ts';
import { EXISTING_STATES, guestsOf, observationOf, preferred } from './guests.ts';
import { resolveAmi } from './images.ts';
import { portsOf, securityGroupIds, subnetFor } from './network.ts';
import { type NodeRef, nodeRef, zoneOf } from './nodes.ts';
import { powerStateOf } from './power-state.ts';
import { instanceTypeFor, launchesHibernationEnabled } from './settings.ts';
import { Ec2Intent, TAG, launchTagSpecifications } from './tags.ts';
import { buildUserData, fitsEc2Limit } from './user-data.ts';

/**
 * RunInstances' ClientToken: at most 64 ASCII characters, and the same token must always mean
 * the same parameters. The command id, the instance and the node together make one launch; a
 * redelivered command sends the same token and EC2 returns the instance it already launched.
 */
export function clientToken(commandId: string, instanceId: string, node: string): string {
  return createHash('sha256').update(`${commandId}\n${instanceId}\n${node}`).digest('hex');
}

function usageOf(instance: Instance) {
  const { flavor } = instance;
  return {
    vcpus: flavor.vcpus,
    memory_mb: flavor.memory_mb,
    disk_gb: flavor.root_gb + flavor.ephemeral_gb,
  };
}

/**
 * Launches the instance's guest. `observedVcpuLimits` is the driver's record of vCPU limits EC2
 * reported, per node; a launch refused for the vCPU quota adds to it.
 */
export async function spawnGuest(
  ec2: Ec2Context,
  observedVcpuLimits: Map<string, number>,
  ctx: DriverContext,
  instance: Instance,
  request: SpawnRequest,
): Promise<SpawnResult> {
  const secrets = [
    request.adminPassword,
    request.userData,
    ...request.injectedFiles.map((f) => f.contents),
  ];
  const ref = await nodeRef(ec2, instance.node);
  if (ref === null) {
    throw new DriverError(
      'ComputeResourcesUnavailable',
      `Insufficient compute resources: node ${instance.node ?? '(none)'} of instance ${instance.instance_id} is not a node of the ec2 driver.`,
    );
  }
  const node = instance.node!;
  const expect = request.powerOn ? LifecycleTransition.STARTED : LifecycleTransition.STOPPED;

  // A redelivered command finds its instance (moto ignores ClientToken; EC2 would return the
  // same instance for the same token anyway). Another live guest for this id is a conflict.
  const existing = preferred(
    (await guestsOf(ec2, instance.instance_id)).filter((g) => EXISTING_STATES.includes(g.state)),
  );
  if (existing !== null) {
    if (existing.commandId !== ctx.commandId) {
      throw new DriverError(
        'InstanceExists',
        `Instance ${instance.instance_id} already has EC2 instance ${existing.ec2Id}.`,
      );
    }
    const ports = portsOf(ec2, existing.raw, {});
    const settled = request.powerOn ? existing.state === 'running' : existing.state === 'stopped';
    return settled
      ? { status: 'done', powerState: powerStateOf(observationOf(existing.raw)), ports }
      : { ...pending(expect, launchDeadline(ec2, existing.instanceType)), ports };
  }

  const { input, networkBySubnet, instanceType } = await launchInput(
    ec2,
    ctx,
    instance,
    request,
    ref,
  );
  const out = await attempt('spawn', { instanceId: instance.instance_id, node, secrets }, () =>
    ec2.call('RunInstances', () => ec2.client.send(new RunInstancesCommand(input))),
  ).catch((error: unknown) => {
    if (error instanceof Ec2QuotaExceededError && error.vcpuLimit !== null) {
      // Our inventory promised more than the account may run: shrink the node until the
      // resource audit reads it again (getAvailableResource honours this limit).
      observedVcpuLimits.set(node, error.vcpuLimit);
      ec2.logger?.warn('EC2 vCPU quota reached; node inventory lowered', {
        node,
        vcpu_limit: error.vcpuLimit,
      });
    }
    throw error;
  });
  const launched = out.Instances?.[0];
  const ports = launched ? portsOf(ec2, launched, networkBySubnet) : [];
  return { ...pending(expect, launchDeadline(ec2, instanceType)), ports };
}

/** RunInstances' input for a spawn (everything but the call). */
async function launchInput(
  ec2: Ec2Context,
  ctx: DriverContext,
  instance: Instance,
  request: SpawnRequest,
  ref: NodeRef,
): Promise<{
  input: RunInstancesCommandInput;
  networkBySubnet: Record<string, string>;
  instanceType: string;
}> {
  const node = instance.node!;
  const instanceType = instanceTypeFor(ec2.settings, instance.flavor.name);
  if (instanceType === null) {
    throw new DriverError(
      'BuildAbortException',
      `Flavor ${instance.flavor.name} has no EC2 instance type: name it after one or map it in ec2.instance_types.`,
    );
  }
  if (request.blockDeviceMapping.length > 0) {
    throw new NotSupportedError(
      EC2_DRIVER_NAME,
      'spawn',
      'existing volumes cannot be part of an EC2 launch (the root disk comes from the AMI); attach them with attach_volume after the build',
    );
  }
  const imageId = await resolveAmi(ec2, request.imageRef, request.imageMeta);
  const hibernate = launchesHibernationEnabled(ec2.settings, instance.flavor.name, instanceType);
  const availabilityZone = zoneOf(ref);
  const groupIds = securityGroupIds(ec2, instance);

  const networkBySubnet: Record<string, string> = {};
  let networking: Pick<
    RunInstancesCommandInput,
    'SubnetId' | 'SecurityGroupIds' | 'NetworkInterfaces'
  >;
  if (request.requestedNetworks.length > 0) {
    const interfaces: InstanceNetworkInterfaceSpecification[] = request.requestedNetworks.map(
      (network, index) => {
        const subnet = subnetFor(ec2, network.network_id, availabilityZone);
        networkBySubnet[subnet] = network.network_id;
        return {
          DeviceIndex: index,
          SubnetId: subnet,
          ...(groupIds.length > 0 ? { Groups: groupIds } : {}),
          ...(network.fixed_ip ? { PrivateIpAddress: network.fixed_ip } : {}),
          DeleteOnTermination: true,
        };
      },
    );
    networking = { NetworkInterfaces: interfaces };
  } else {
    const subnet =
      (ref.kind === 'pool' ? ref.pool.subnet : undefined) ?? ec2.settings.default_subnet;
    networking = {
      ...(subnet ? { SubnetId: subnet } : {}),
      ...(groupIds.length > 0 ? { SecurityGroupIds: groupIds } : {}),
    };
  }

  const userData = buildUserData(request);
  if (!fitsEc2Limit(userData)) {
    throw new DriverError(
      'BuildAbortException',
      'The user data, injected files and admin password together exceed EC2 16 KB user data limit.',
    );
  }
  const tags = launchTagSpecifications({
    deployment: ec2.deployment,
    instanceId: instance.instance_id,
    node,
    commandId: ctx.commandId,
    displayName: instance.display_name,
    usage: usageOf(instance),
  });
  if (!request.powerOn) {
    // EC2 always boots a launch; the `running` event stops it (onStateChange).
    tags[0]!.Tags!.push(
      { Key: TAG.intent, Value: Ec2Intent.STOP },
      { Key: TAG.intentCommand, Value: ctx.commandId.slice(0, 256) },
    );
  }
  const keyName = instance.key_name ?? ec2.settings.key_name;
  const input: RunInstancesCommandInput = {
    ImageId: imageId,
    InstanceType: instanceType as RunInstancesCommandInput['InstanceType'],
    MinCount: 1,
    MaxCount: 1,
    ClientToken: clientToken(ctx.commandId, instance.instance_id, node),
    TagSpecifications: tags,
    // A guest that shuts itself down is stopped (Nova: SHUTDOWN), not deleted.
    InstanceInitiatedShutdownBehavior: 'stop',
    Placement:
      ref.kind === 'pool'
        ? { AvailabilityZone: availabilityZone }
        : {
            AvailabilityZone: availabilityZone,
            Tenancy: 'host',
            HostId: ref.host.hostId,
            // Stop/start stays on this host, so the instance keeps counting against its node.
            Affinity: 'host',
          },
    ...networking,
    ...(keyName ? { KeyName: keyName } : {}),
    ...(userData ? { UserData: userData } : {}),
    ...(hibernate ? { HibernationOptions: { Configured: true } } : {}),
  };
  const blockDevices = await launchBlockDevices(ec2, imageId, instance, hibernate);
  if (blockDevices.length > 0) input.BlockDeviceMappings = blockDevices;
  return { input, networkBySubnet, instanceType };
}

/** Root volume sized to the flavor (encrypted when hibernation needs it), ephemeral as EBS. */
async function launchBlockDevices(
  ec2: Ec2Context,
  imageId: string,
  instance: Instance,
  hibernate: boolean,
): Promise<Ec2BlockDeviceMapping[]> {
  const { root_gb: rootGb, ephemeral_gb: ephemeralGb } = instance.flavor;
  const mappings: Ec2BlockDeviceMapping[] = [];
  if (rootGb > 0 || hibernate) {
    const out = await ec2.call('DescribeImages', () =>
      ec2.client.send(new DescribeImagesCommand({ ImageIds: [imageId] })),
    );
    const image = out.Images?.[0];
    const root = image?.RootDeviceName;
    if (root !== undefined) {
      const snapshotGb =
        image?.BlockDeviceMappings?.find((m) => m.DeviceName === root)?.Ebs?.VolumeSize ?? 0;
      mappings.push({
        DeviceName: root,
        Ebs: {
          ...(rootGb > 0 ? { VolumeSize: Math.max(rootGb, snapshotGb) } : {}),
          DeleteOnTermination: true,
          ...(hibernate ? { Encrypted: true } : {}),
        },
      });
    }
  }
  if (ephemeralGb > 0) {
    // Nova's ephemeral disk: an EBS volume that lives and dies with the instance.
    mappings.push({
      DeviceName: '/dev/sdb',
      Ebs: { VolumeSize: ephemeralGb, DeleteOnTermination: true, VolumeType: 'gp3' },
    });
  }
  return mappings;
}
