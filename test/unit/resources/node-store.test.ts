// The resource tracker's contract on the in-memory twin (the DynamoDB run is in
// test/integration/resources-contract.test.ts).

import { InMemoryNodeStore } from '../../../lib/resources/memory-node-store.ts';
import { InMemoryStateStore } from '../../../lib/store/memory-state-store.ts';
import { InMemoryMigrationStore } from '../../../lib/store/migration-store.ts';
import { describeResourceTracker } from './contract.ts';

describeResourceTracker('resource tracker on the in-memory twin', () => {
  const store = new InMemoryStateStore();
  return {
    store,
    nodes: new InMemoryNodeStore({ instances: store }),
    migrations: new InMemoryMigrationStore(),
  };
});
