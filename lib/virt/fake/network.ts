// The fake's network allocation: ports, MACs and addresses derived from the instance and the
// request, so a retried spawn gets byte-for-byte the same network info and tests can predict it.
// Addresses come from a hash into 10.0.0.0/8: unique enough for a fake, not an IPAM.

import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { FixedIp, InstancePort } from '../../compute/instance.ts';
import { uuidv5 } from '../../notifications/message-id.ts';
import { DriverError } from '../errors.ts';

/** uuid5(DNS, 'ports.fake.virt.stratus.compute'): the namespace of the fake's port ids. */
const PORT_NAMESPACE = uuidv5(
  'ports.fake.virt.stratus.compute',
  '6ba7b810-9dad-11d1-80b4-00c04fd430c8',
);

/** OpenStack's default base MAC (Neutron `base_mac`). */
const MAC_PREFIX = 'fa:16:3e';

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

export function fakePortId(parts: readonly string[]): string {
  return uuidv5(JSON.stringify(parts), PORT_NAMESPACE);
}

export function fakeMac(portId: string): string {
  const bytes = digest(`mac:${portId}`);
  const tail = [bytes[0]!, bytes[1]!, bytes[2]!].map((b) => b.toString(16).padStart(2, '0'));
  return [MAC_PREFIX, ...tail].join(':');
}

/** 10.x.y.z with z in 2..254: never the network, the gateway (.1) or the broadcast address. */
export function fakeIpv4(portId: string): string {
  const bytes = digest(`ip:${portId}`);
  return `10.${bytes[0]!}.${bytes[1]!}.${2 + (bytes[2]! % 253)}`;
}

export interface PortRequest {
  network_id: string;
  fixed_ip?: string;
  port_id?: string;
}

/** Builds one port; `identity` names it when the request gives no port_id. */
export function fakePort(request: PortRequest, identity: readonly string[]): InstancePort {
  const portId = request.port_id ?? fakePortId([...identity, request.network_id]);
  let address = fakeIpv4(portId);
  let version: 4 | 6 = 4;
  if (request.fixed_ip !== undefined) {
    const family = isIP(request.fixed_ip);
    if (family === 0) {
      throw new DriverError(
        'FixedIpInvalid',
        `Fixed IP ${request.fixed_ip} is not a valid ip address.`,
      );
    }
    address = request.fixed_ip;
    version = family === 6 ? 6 : 4;
  }
  const mac = fakeMac(portId);
  const fixedIp: FixedIp = {
    address,
    version,
    label: request.network_id,
    vif_mac: mac,
    type: 'fixed',
    floating_ips: [],
    meta: {},
  };
  return { port_id: portId, network_id: request.network_id, mac, fixed_ips: [fixedIp] };
}

/** spawn's network info: one port per requested network, in request order. */
export function allocateSpawnPorts(
  instanceId: string,
  requests: readonly PortRequest[],
): InstancePort[] {
  return requests.map((request, index) => fakePort(request, [instanceId, 'spawn', String(index)]));
}
