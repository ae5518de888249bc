import * as z from 'zod/mini';
import '../validation.ts';
import type { InstanceFlavor } from './instance.ts';

const count = (...checks: Parameters<ReturnType<typeof z.int>['check']>) =>
  z.int().check(...checks);
const text = z.string().check(z.minLength(1), z.maxLength(255));

export const FlavorSchema = z.strictObject({
  name: text,
  flavorid: text,
  id: count(z.gte(0)),
  vcpus: count(z.positive()),
  memory_mb: count(z.positive()),
  root_gb: count(z.gte(0)),
  ephemeral_gb: z._default(count(z.gte(0)), 0),
});

export type Flavor = InstanceFlavor;

/** Nova's classic catalog (CONTRACT §4): the default a deployment may replace or extend. */
export const DEFAULT_FLAVORS: readonly Flavor[] = [
  { name: 'm1.tiny', flavorid: '1', id: 1, vcpus: 1, memory_mb: 512, root_gb: 1, ephemeral_gb: 0 },
  {
    name: 'm1.small',
    flavorid: '2',
    id: 2,
    vcpus: 1,
    memory_mb: 2048,
    root_gb: 20,
    ephemeral_gb: 0,
  },
  {
    name: 'm1.medium',
    flavorid: '3',
    id: 3,
    vcpus: 2,
    memory_mb: 4096,
    root_gb: 40,
    ephemeral_gb: 0,
  },
  {
    name: 'm1.large',
    flavorid: '4',
    id: 4,
    vcpus: 4,
    memory_mb: 8192,
    root_gb: 80,
    ephemeral_gb: 0,
  },
  {
    name: 'm1.xlarge',
    flavorid: '5',
    id: 5,
    vcpus: 8,
    memory_mb: 16384,
    root_gb: 160,
    ephemeral_gb: 0,
  },
];

export class FlavorCatalog {
  private readonly flavors: readonly Flavor[];

  constructor(flavors: readonly Flavor[] = DEFAULT_FLAVORS) {
    this.flavors = flavors;
  }

  /** Looks a flavor up by name or by public id, as Nova's API accepts either. */
  find(nameOrId: string): Flavor | undefined {
    return (
      this.flavors.find((f) => f.name === nameOrId) ??
      this.flavors.find((f) => f.flavorid === nameOrId)
    );
  }

  list(): readonly Flavor[] {
    return this.flavors;
  }
}
