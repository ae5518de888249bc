// The driver's nodes: the pools of ec2.pools (settings.ts), and, with ec2.dedicated_hosts, each
// of this deployment's Dedicated Hosts. A node name resolves to a NodeRef, which says where an
// instance of that node is placed.

import { DescribeHostsCommand, type Host } from '@aws-sdk/client-ec2';
import type { Ec2Context } from './calls.ts';
import type { Ec2Pool } from './settings.ts';
import { TAG, ownedBy, tagValue } from './tags.ts';

/** Node name of a Dedicated Host that has no `stratus:node` tag (not stable across recovery). */
export const HOST_NODE_PREFIX = 'ec2-host:';

/** A Dedicated Host node. */
export interface HostNode {
  node: string;
  hostId: string;
  availabilityZone: string;
  state: string;
  family: string | null;
  instanceType: string | null;
  totalVcpus: number;
}

export type NodeRef = { kind: 'pool'; pool: Ec2Pool } | { kind: 'host'; host: HostNode };

export function poolOf(ec2: Ec2Context, node: string | null): Ec2Pool | undefined {
  return ec2.settings.pools.find((p) => p.node === node);
}

/** The availability zone a node places its instances in. */
export function zoneOf(ref: NodeRef): string {
  return ref.kind === 'pool' ? ref.pool.availability_zone : ref.host.availabilityZone;
}

/**
 * This deployment's Dedicated Hosts. DescribeHosts is read whole and filtered here by the
 * deployment tag: an account has few hosts, and not every EC2 endpoint (moto) filters hosts
 * by tag.
 */
export async function hostNodes(ec2: Ec2Context): Promise<HostNode[]> {
  if (!ec2.settings.dedicated_hosts) return [];
  const hosts: Host[] = [];
  let token: string | undefined;
  do {
    const page = await ec2.call('DescribeHosts', () =>
      ec2.client.send(new DescribeHostsCommand({ ...(token ? { NextToken: token } : {}) })),
    );
    hosts.push(...(page.Hosts ?? []).filter((h) => ownedBy(h.Tags, ec2.deployment)));
    token = page.NextToken;
  } while (token);
  return hosts.flatMap((host) => {
    if (host.HostId === undefined) return [];
    const props = host.HostProperties;
    const instanceType = props?.InstanceType ?? null;
    return [
      {
        // The node's identity is the tag (kept by host recovery), not the h-… id.
        node: tagValue(host.Tags, TAG.node) ?? `${HOST_NODE_PREFIX}${host.HostId}`,
        hostId: host.HostId,
        availabilityZone: host.AvailabilityZone ?? '',
        state: host.State ?? 'available',
        family: props?.InstanceFamily ?? instanceType?.split('.')[0] ?? null,
        instanceType,
        totalVcpus: props?.TotalVCpus ?? (props?.Cores ?? 0) * 2,
      },
    ];
  });
}

export async function nodeRef(ec2: Ec2Context, node: string | null): Promise<NodeRef | null> {
  const pool = poolOf(ec2, node);
  if (pool !== undefined) return { kind: 'pool', pool };
  if (node === null) return null;
  const host = (await hostNodes(ec2)).find((h) => h.node === node);
  return host === undefined ? null : { kind: 'host', host };
}

/** The pools, then the hosts that take new instances. */
export async function availableNodes(ec2: Ec2Context): Promise<string[]> {
  const hosts = await hostNodes(ec2);
  return [
    ...ec2.settings.pools.map((p) => p.node),
    // Hosts in assessment, failed or released take no new instances.
    ...hosts.filter((h) => h.state === 'available').map((h) => h.node),
  ];
}

/** A host node is deleted once its host is released (or no host carries its name). */
export async function isNodeDeleted(ec2: Ec2Context, nodename: string): Promise<boolean> {
  if (poolOf(ec2, nodename) !== undefined || !ec2.settings.dedicated_hosts) return false;
  const host = (await hostNodes(ec2)).find((h) => h.node === nodename);
  return host === undefined || host.state.startsWith('released');
}
