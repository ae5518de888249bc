// Networks and ports on EC2: a Nova network is a subnet (ec2.subnets), a security group an EC2
// security group (ec2.security_groups), a port an ENI (the ENI id is the port id). Secondary
// interfaces attach and detach; the primary one (device 0) lives and dies with its instance.

import {
  AttachNetworkInterfaceCommand,
  CreateNetworkInterfaceCommand,
  DeleteNetworkInterfaceCommand,
  DescribeNetworkInterfacesCommand,
  DetachNetworkInterfaceCommand,
  type Instance as Ec2Instance,
  type NetworkInterface,
} from '@aws-sdk/client-ec2';
import type { Instance, InstancePort } from '../../compute/instance.ts';
import type { DriverContext, InterfaceAttachRequest } from '../driver.ts';
import { DriverError } from '../errors.ts';
import { isAwsId } from './aws-ids.ts';
import { type Ec2Context, attempt } from './calls.ts';
import { ec2ErrorCode, translateEc2Error } from './errors.ts';
import { type Guest } from './guests.ts';
import { TAG, deploymentFilters, ownedTagSpecifications, tagValue } from './tags.ts';

export function subnetFor(ec2: Ec2Context, networkId: string, availabilityZone: string): string {
  const subnet =
    ec2.settings.subnets[networkId] ?? (isAwsId('subnet', networkId) ? networkId : undefined);
  if (subnet === undefined) {
    throw new DriverError(
      'NetworkNotFound',
      `Network ${networkId} has no subnet in ${availabilityZone}: map it in ec2.subnets.`,
    );
  }
  return subnet;
}

export function securityGroupIds(ec2: Ec2Context, instance: Instance): string[] {
  const ids: string[] = [];
  for (const name of instance.security_groups) {
    const id = ec2.settings.security_groups[name] ?? (isAwsId('sg', name) ? name : undefined);
    if (id !== undefined) ids.push(id);
    // `default` without a mapping is the VPC's default group, which EC2 applies by itself.
    else if (name !== 'default') {
      throw new DriverError(
        'SecurityGroupNotFound',
        `Security group ${name} has no EC2 security group: map it in ec2.security_groups.`,
      );
    }
  }
  return [...new Set(ids)];
}

/** Nova ports for an EC2 instance's network interfaces (the ENI id is the port id). */
export function portsOf(
  ec2: Ec2Context,
  raw: Ec2Instance,
  networkBySubnet: Record<string, string>,
): InstancePort[] {
  const subnetNetworks = { ...configuredNetworkBySubnet(ec2), ...networkBySubnet };
  return [...(raw.NetworkInterfaces ?? [])]
    .sort((a, b) => (a.Attachment?.DeviceIndex ?? 0) - (b.Attachment?.DeviceIndex ?? 0))
    .flatMap((eni) => (eni.NetworkInterfaceId ? [portOf(eni, subnetNetworks)] : []));
}

function portOf(
  eni: {
    NetworkInterfaceId?: string;
    SubnetId?: string;
    MacAddress?: string;
    PrivateIpAddresses?: { PrivateIpAddress?: string }[];
    PrivateIpAddress?: string;
  },
  subnetNetworks: Record<string, string>,
): InstancePort {
  const subnet = eni.SubnetId ?? '';
  const networkId = subnetNetworks[subnet] ?? subnet;
  const mac = eni.MacAddress ?? '';
  const addresses = (eni.PrivateIpAddresses ?? []).flatMap((a) =>
    a.PrivateIpAddress ? [a.PrivateIpAddress] : [],
  );
  if (addresses.length === 0 && eni.PrivateIpAddress) addresses.push(eni.PrivateIpAddress);
  return {
    port_id: eni.NetworkInterfaceId!,
    network_id: networkId,
    mac,
    fixed_ips: addresses.map((address) => ({
      address,
      version: address.includes(':') ? 6 : 4,
      label: networkId,
      vif_mac: mac,
      type: 'fixed',
      floating_ips: [],
      meta: {},
    })),
  };
}

/** ec2.subnets turned around: the Nova network of each mapped subnet. */
function configuredNetworkBySubnet(ec2: Ec2Context): Record<string, string> {
  return Object.fromEntries(
    Object.entries(ec2.settings.subnets).map(([network, subnet]) => [subnet, network]),
  );
}

async function describeEnis(
  ec2: Ec2Context,
  filters: ReturnType<typeof deploymentFilters>,
): Promise<NetworkInterface[]> {
  try {
    const out = await ec2.call('DescribeNetworkInterfaces', () =>
      ec2.client.send(new DescribeNetworkInterfacesCommand({ Filters: filters })),
    );
    return out.NetworkInterfaces ?? [];
  } catch (error) {
    if (ec2ErrorCode(error) === 'InvalidNetworkInterfaceID.NotFound') return [];
    throw error;
  }
}

/**
 * A secondary network interface: an existing ENI (`port_id` eni-…) or a new one in the
 * network's subnet, attached at the next free device index. A retried command finds the ENI
 * it created (tagged with its command id) and returns it.
 */
export async function attachInterface(
  ec2: Ec2Context,
  ctx: DriverContext,
  instance: Instance,
  guest: Guest,
  request: InterfaceAttachRequest,
): Promise<InstancePort> {
  const context = { instanceId: instance.instance_id };
  const zone = guest.raw.Placement?.AvailabilityZone ?? '';
  let eni: NetworkInterface | undefined;
  if (isAwsId('eni', request.port_id)) {
    eni = (
      await describeEnis(ec2, [{ Name: 'network-interface-id', Values: [request.port_id] }])
    )[0];
  } else {
    eni = (
      await describeEnis(ec2, [
        ...deploymentFilters(ec2.deployment),
        { Name: `tag:${TAG.instanceId}`, Values: [instance.instance_id] },
        { Name: `tag:${TAG.commandId}`, Values: [ctx.commandId] },
      ])
    )[0];
    if (eni === undefined) {
      if (request.network_id === undefined) {
        throw new DriverError(
          'InterfaceAttachFailed',
          `Failed to attach network adapter device to ${instance.instance_id}: no network given.`,
        );
      }
      const subnet = subnetFor(ec2, request.network_id, zone);
      const groups = securityGroupIds(ec2, instance);
      const created = await attempt('attach_interface', context, () =>
        ec2.call('CreateNetworkInterface', () =>
          ec2.client.send(
            new CreateNetworkInterfaceCommand({
              SubnetId: subnet,
              ...(groups.length > 0 ? { Groups: groups } : {}),
              ...(request.fixed_ip ? { PrivateIpAddress: request.fixed_ip } : {}),
              TagSpecifications: ownedTagSpecifications(
                'network-interface',
                ec2.deployment,
                instance.instance_id,
                [{ Key: TAG.commandId, Value: ctx.commandId.slice(0, 256) }],
              ),
            }),
          ),
        ),
      );
      eni = created.NetworkInterface;
    }
  }
  if (eni?.NetworkInterfaceId === undefined) {
    throw new DriverError(
      'InterfaceAttachFailed',
      `Failed to attach network adapter device to ${instance.instance_id}`,
    );
  }
  const attachedTo = eni.Attachment?.InstanceId;
  if (attachedTo !== undefined && attachedTo !== guest.ec2Id) {
    throw new DriverError(
      'InterfaceAttachFailed',
      `Failed to attach network adapter device to ${instance.instance_id}: the port is in use.`,
    );
  }
  if (attachedTo === undefined) {
    const used = new Set((guest.raw.NetworkInterfaces ?? []).map((n) => n.Attachment?.DeviceIndex));
    let index = 1;
    while (used.has(index)) index += 1;
    const eniId = eni.NetworkInterfaceId;
    await attempt('attach_interface', context, () =>
      ec2.call('AttachNetworkInterface', () =>
        ec2.client.send(
          new AttachNetworkInterfaceCommand({
            NetworkInterfaceId: eniId,
            InstanceId: guest.ec2Id,
            DeviceIndex: index,
          }),
        ),
      ),
    );
  }
  return portOf(
    {
      NetworkInterfaceId: eni.NetworkInterfaceId,
      ...(eni.SubnetId ? { SubnetId: eni.SubnetId } : {}),
      ...(eni.MacAddress ? { MacAddress: eni.MacAddress } : {}),
      ...(eni.PrivateIpAddress ? { PrivateIpAddress: eni.PrivateIpAddress } : {}),
    },
    {
      ...configuredNetworkBySubnet(ec2),
      ...(request.network_id && eni.SubnetId ? { [eni.SubnetId]: request.network_id } : {}),
    },
  );
}

/**
 * DetachNetworkInterface of a secondary interface; the primary (device 0) cannot leave its
 * instance. An ENI the driver created is then deleted when EC2 has finished detaching it
 * (best effort: a still-detaching ENI is left, tagged, for the operator).
 */
export async function detachInterface(
  ec2: Ec2Context,
  instance: Instance,
  guest: Guest,
  portId: string,
): Promise<void> {
  const attached = (guest.raw.NetworkInterfaces ?? []).find((n) => n.NetworkInterfaceId === portId);
  const failed = (why: string) =>
    new DriverError(
      'InterfaceDetachFailed',
      `Failed to detach network adapter device from ${instance.instance_id}: ${why}`,
    );
  if (attached === undefined) throw failed(`port ${portId} is not attached`);
  if ((attached.Attachment?.DeviceIndex ?? 0) === 0)
    throw failed('the primary interface cannot be detached on EC2');
  const attachmentId = attached.Attachment?.AttachmentId;
  if (attachmentId === undefined) throw failed(`port ${portId} has no attachment`);
  try {
    await ec2.call('DetachNetworkInterface', () =>
      ec2.client.send(new DetachNetworkInterfaceCommand({ AttachmentId: attachmentId })),
    );
  } catch (error) {
    if (ec2ErrorCode(error) !== 'InvalidAttachmentID.NotFound') {
      throw translateEc2Error(error, {
        operation: 'detach_interface',
        instanceId: instance.instance_id,
      });
    }
  }
  const [eni] = await describeEnis(ec2, [{ Name: 'network-interface-id', Values: [portId] }]);
  if (
    eni &&
    tagValue(eni.TagSet, TAG.deployment) === ec2.deployment &&
    eni.Status === 'available'
  ) {
    await ec2
      .call('DeleteNetworkInterface', () =>
        ec2.client.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: portId })),
      )
      .catch((error: unknown) => {
        ec2.logger?.warn('detached interface not deleted', {
          port_id: portId,
          code: ec2ErrorCode(error),
        });
      });
  }
}
