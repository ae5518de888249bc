// The fake hypervisor's memory: one record per guest per node. It sits behind a port so the fake
// driver works inside Lambda (DynamoDB) as well as in unit tests (memory). Every write is
// conditional, so two Lambdas that touch one guest at once cannot corrupt it: a creator learns
// that the guest already exists, an updater that someone else changed it first.

import type { InstancePort } from '../../compute/instance.ts';
import type { PowerState } from '../../compute/states.ts';

/** A hot-plugged or boot-time interface, with the command that attached it (for replays). */
export interface FakeInterface extends InstancePort {
  tag: string | null;
  attachedBy: string;
}

export interface FakeGuest {
  instanceId: string;
  node: string;
  powerState: PowerState;
  flavor: { vcpus: number; memory_mb: number; disk_gb: number };
  /** The ports allocated at spawn: spawn's network info, replayed on a duplicate spawn. */
  ports: InstancePort[];
  /** Every interface currently plugged: spawn's ports plus hot-plugged ones. */
  interfaces: FakeInterface[];
  /** mountpoint → volume id. */
  volumes: Record<string, string>;
  rescued: boolean;
  consoleLog: string;
  /** ISO time the guest last started running; null while it is not running. */
  startedAt: string | null;
  /** The command that created the guest. */
  createdBy: string;
  updatedAt: string;
  /**
   * Increases with every write: the optimistic-concurrency token and the lifecycle events'
   * `sequence`. Derived from the clock on create, so a re-created guest continues above the
   * destroyed one.
   */
  sequence: number;
}

export type CreateResult = { created: true } | { created: false; existing: FakeGuest };

export interface FakeHypervisorStore {
  get(node: string, instanceId: string): Promise<FakeGuest | null>;
  listByNode(node: string): Promise<FakeGuest[]>;
  /** Creates the guest unless one with its key exists; then returns the existing one. */
  create(guest: FakeGuest): Promise<CreateResult>;
  /**
   * Replaces the guest if its stored sequence is still `expectedSequence`. Returns false when
   * the guest changed or vanished meanwhile: re-read and decide again.
   */
  replace(guest: FakeGuest, expectedSequence: number): Promise<boolean>;
  /** Deletes the guest and returns what was deleted, or null when there was nothing. */
  delete(node: string, instanceId: string): Promise<FakeGuest | null>;
}

/** The same contract in memory, for unit tests and a single-process local run. */
export class InMemoryFakeHypervisorStore implements FakeHypervisorStore {
  private readonly guests = new Map<string, FakeGuest>();

  private static key(node: string, instanceId: string): string {
    return `${node}\u0000${instanceId}`;
  }

  async get(node: string, instanceId: string): Promise<FakeGuest | null> {
    const guest = this.guests.get(InMemoryFakeHypervisorStore.key(node, instanceId));
    return guest === undefined ? null : structuredClone(guest);
  }

  async listByNode(node: string): Promise<FakeGuest[]> {
    return [...this.guests.values()]
      .filter((guest) => guest.node === node)
      .sort((a, b) => a.instanceId.localeCompare(b.instanceId))
      .map((guest) => structuredClone(guest));
  }

  async create(guest: FakeGuest): Promise<CreateResult> {
    const key = InMemoryFakeHypervisorStore.key(guest.node, guest.instanceId);
    const existing = this.guests.get(key);
    if (existing !== undefined) return { created: false, existing: structuredClone(existing) };
    this.guests.set(key, structuredClone(guest));
    return { created: true };
  }

  async replace(guest: FakeGuest, expectedSequence: number): Promise<boolean> {
    const key = InMemoryFakeHypervisorStore.key(guest.node, guest.instanceId);
    const existing = this.guests.get(key);
    if (existing === undefined || existing.sequence !== expectedSequence) return false;
    this.guests.set(key, structuredClone(guest));
    return true;
  }

  async delete(node: string, instanceId: string): Promise<FakeGuest | null> {
    const key = InMemoryFakeHypervisorStore.key(node, instanceId);
    const existing = this.guests.get(key);
    if (existing === undefined) return null;
    this.guests.delete(key);
    return existing;
  }
}
