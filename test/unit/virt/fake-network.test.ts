import { describe, expect, it } from 'vitest';
import { DriverError } from '../../../lib/virt/errors.ts';
import { allocateSpawnPorts, fakeIpv4, fakeMac, fakePort } from '../../../lib/virt/fake/network.ts';

describe('fake network allocation', () => {
  it('is deterministic per instance and request position', () => {
    const a = allocateSpawnPorts('instance-1', [{ network_id: 'n1' }, { network_id: 'n1' }]);
    const again = allocateSpawnPorts('instance-1', [{ network_id: 'n1' }, { network_id: 'n1' }]);
    const other = allocateSpawnPorts('instance-2', [{ network_id: 'n1' }]);
    expect(again).toEqual(a);
    expect(a[0]?.port_id).not.toBe(a[1]?.port_id);
    expect(a[0]?.port_id).not.toBe(other[0]?.port_id);
    expect(a[0]?.mac).not.toBe(a[1]?.mac);
  });

  it('uses OpenStack’s base MAC and a usable 10/8 host address', () => {
    for (let i = 0; i < 200; i += 1) {
      expect(fakeMac(`port-${i}`)).toMatch(/^fa:16:3e:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$/);
      const last = Number(fakeIpv4(`port-${i}`).split('.')[3]);
      expect(last).toBeGreaterThanOrEqual(2);
      expect(last).toBeLessThanOrEqual(254);
    }
  });

  it('honours a requested fixed_ip and port_id', () => {
    const port = fakePort({ network_id: 'n', fixed_ip: '2001:db8::7', port_id: 'my-port' }, ['x']);
    expect(port.port_id).toBe('my-port');
    expect(port.fixed_ips).toEqual([
      {
        address: '2001:db8::7',
        version: 6,
        label: 'n',
        vif_mac: port.mac,
        type: 'fixed',
        floating_ips: [],
        meta: {},
      },
    ]);
  });

  it('rejects an address that is not an IP', () => {
    expect(() => fakePort({ network_id: 'n', fixed_ip: '10.0.0.999' }, ['x'])).toThrow(DriverError);
  });
});
