// What the resource tracker needs. ComputeDeps satisfies it as it is; the stores it adds
// (`nodes`, `nodeState`, `migrations`) are optional, so until the composition root provides
// them each is created once per table on the state table, as migrationStoreOf does.

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Logger } from '../compute/runtime.ts';
import type { Config } from '../config.ts';
import { type MigrationStore, migrationStoreOf } from '../store/migration-store.ts';
import { DynamoDbNodeStateStore, type NodeStateStore } from '../store/node-state-store.ts';
import type { StateStore } from '../store/state-store.ts';
import type { ComputeDriver, DriverContext } from '../virt/driver.ts';
import { DynamoDbNodeStore } from './dynamodb-node-store.ts';
import type { NodeStore } from './node-store.ts';

export type ResourceConfig = Pick<
  Config,
  | 'cpu_allocation_ratio'
  | 'ram_allocation_ratio'
  | 'disk_allocation_ratio'
  | 'reserved_host_cpus'
  | 'reserved_host_memory_mb'
  | 'reserved_host_disk_mb'
  | 'tables'
> & {
  /** Nova's [filter_scheduler] ram_weight_multiplier: > 0 spreads, < 0 packs (default 1.0). */
  ram_weight_multiplier?: number;
};

export interface ResourceDeps {
  config: ResourceConfig;
  driver: Pick<ComputeDriver, 'name' | 'getAvailableNodes' | 'getAvailableResource'>;
  store: Pick<StateStore, 'getInstance'>;
  clock: () => Date;
  logger: Logger;
  nodes?: NodeStore;
  nodeState?: NodeStateStore;
  migrations?: MigrationStore;
}

const lazyNodeStores = new Map<string, NodeStore>();
const lazyNodeStateStores = new Map<string, NodeStateStore>();

function documentClient(): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(new DynamoDBClient({}), {
    marshallOptions: { removeUndefinedValues: true },
  });
}

export function nodeStoreOf(deps: Pick<ResourceDeps, 'config' | 'nodes'>): NodeStore {
  if (deps.nodes) return deps.nodes;
  const table = deps.config.tables.state;
  let store = lazyNodeStores.get(table);
  if (!store) {
    store = new DynamoDbNodeStore(documentClient(), table);
    lazyNodeStores.set(table, store);
  }
  return store;
}

/** The operators' enabled / maintenance flags (lib/store/node-state-store.ts). */
export function nodeStateOf(deps: Pick<ResourceDeps, 'config' | 'nodeState'>): NodeStateStore {
  if (deps.nodeState) return deps.nodeState;
  const table = deps.config.tables.state;
  let store = lazyNodeStateStores.get(table);
  if (!store) {
    store = new DynamoDbNodeStateStore(documentClient(), table);
    lazyNodeStateStores.set(table, store);
  }
  return store;
}

export function migrationsOf(deps: Pick<ResourceDeps, 'config' | 'migrations'>): MigrationStore {
  return migrationStoreOf(deps);
}

/** The driver context of tracker work that no command started (the periodic audit). */
export function trackerContext(what: string, now: Date): DriverContext {
  return { commandId: `resource-tracker:${what}`, requestId: `req-${what}-${now.getTime()}` };
}
