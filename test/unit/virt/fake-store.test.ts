import { describe, expect, it } from 'vitest';
import { InMemoryFakeHypervisorStore } from '../../../lib/virt/fake/store.ts';
import { describeFakeHypervisorStore, guest } from './fake-store-contract.ts';

describeFakeHypervisorStore('InMemoryFakeHypervisorStore', () => new InMemoryFakeHypervisorStore());

describe('InMemoryFakeHypervisorStore isolation', () => {
  it('hands out copies, so a caller cannot change a guest without a conditional write', async () => {
    const store = new InMemoryFakeHypervisorStore();
    const g = guest();
    await store.create(g);
    g.powerState = 4;
    const read = await store.get(g.node, g.instanceId);
    expect(read?.powerState).toBe(1);
    read!.volumes['/dev/vdb'] = 'sneaky';
    expect((await store.get(g.node, g.instanceId))?.volumes).toEqual({});
  });
});
