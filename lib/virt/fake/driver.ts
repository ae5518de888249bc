// Nova's FakeDriver (nova/virt/fake.py, reference §8.4), made honest and serverless:
// - guests live in a FakeHypervisorStore (DynamoDB in Lambda), one record per node and guest;
// - power states really change (Nova's fake leaves pause/suspend/rescue as no-ops, which hides
//   manager bugs that a real hypervisor would expose);
// - in asynchronous mode (`fake_async`) the long operations answer `pending` and report their
//   end as a lifecycle event, like EC2 does, so the event-completion path runs locally too;
// - every mutating call is idempotent: a retried command finds the work done and says so.

import type { Config, FakeNode } from '../../config.ts';
import type { BlockDeviceMapping, Instance, InstancePort } from '../../compute/instance.ts';
import {
  LifecycleTransition,
  POWER_STATE_NAMES,
  PowerState,
  TaskState,
} from '../../compute/states.ts';
import { InstanceNotFoundError } from '../../errors.ts';
import { uuidv5 } from '../../notifications/message-id.ts';
import { BaseComputeDriver, nodeUuid } from '../base-driver.ts';
import type {
  BlockStats,
  CleanupOptions,
  CompletionResult,
  ConsoleInfo,
  DestroyOptions,
  DriverCapabilities,
  DriverContext,
  DriverResult,
  FinishMigrationRequest,
  HostPowerAction,
  HostVolumeUsageRequest,
  InstanceDiagnostics,
  InstanceInfo,
  InterfaceAttachRequest,
  InventorySettings,
  LiveMigrateData,
  LiveMigrationCheckRequest,
  MigrateDiskRequest,
  MigrateDiskResult,
  MigrationInfo,
  NodeInventory,
  NodeResources,
  PowerOffOptions,
  RebootType,
  RescueRequest,
  ShareMapping,
  SpawnRequest,
  SpawnResult,
  SwapVolumeRequest,
  UpdateTaskState,
  VolumeAttachRequest,
  VolumeConnectionInfo,
  VolumeConnector,
  VolumeDetachRequest,
  VolumeUsage,
} from '../driver.ts';
import { NO_CAPABILITIES } from '../driver.ts';
import { DriverError } from '../errors.ts';
import type { LifecycleEvent, LifecycleEventSink } from '../events.ts';
import { FaultPlan } from './faults.ts';
import { allocateSpawnPorts, fakePort } from './network.ts';
import type { FakeGuest, FakeHypervisorStore, FakeInterface } from './store.ts';

/** Nova's FakeDriver capabilities, with supports_migrate_to_same_host false (§8.4). */
export const FAKE_CAPABILITIES: Readonly<DriverCapabilities> = Object.freeze({
  ...NO_CAPABILITIES,
  has_imagecache: true,
  supports_evacuate: true,
  supports_migrate_to_same_host: false,
  supports_attach_interface: true,
  supports_device_tagging: true,
  supports_tagged_attach_interface: true,
  supports_tagged_attach_volume: true,
  supports_extend_volume: true,
  supports_multiattach: true,
  supports_trusted_certs: true,
  supports_pcpus: false,
  supports_accelerators: true,
  supports_remote_managed_ports: true,
  supports_address_space_passthrough: true,
  supports_address_space_emulated: true,
  supports_stateless_firmware: true,
  supports_virtio_fs: true,
  supports_mem_backing_file: true,
  supports_image_type_raw: true,
  supports_image_type_vhd: false,
});

/** Nova's fake console log. */
export const FAKE_CONSOLE_OUTPUT = 'FAKE CONSOLE OUTPUT\nANOTHER\nLAST LINE';
export const FAKE_HOST_IP = '192.168.0.1';
export const FAKE_HYPERVISOR_TYPE = 'fake';
/** convert_version_to_int('1.0'). */
export const FAKE_HYPERVISOR_VERSION = 1000;
export const DEFAULT_PENDING_DEADLINE_SECONDS = 300;

/** Nova's fake cpu_info, key order included (it is an OrderedDict there). */
const FAKE_CPU_INFO = JSON.stringify({
  arch: 'x86_64',
  model: 'Nehalem',
  vendor: 'Intel',
  features: ['pge', 'clflush'],
  topology: { cores: 1, threads: 1, sockets: 4 },
});

const FAKE_HOST_CPU_STATS: Readonly<Record<string, number>> = {
  kernel: 5664160000000,
  idle: 1592705190000000,
  user: 26728850000000,
  iowait: 6121490000000,
  frequency: 800,
};

/** How often a conditional update is retried after losing a race before giving up. */
const MAX_WRITE_ATTEMPTS = 5;

const CONSOLE_NAMESPACE = uuidv5(
  'consoles.fake.virt.stratus.compute',
  '6ba7b810-9dad-11d1-80b4-00c04fd430c8',
);

export interface FakeDriverOptions {
  nodes: readonly FakeNode[];
  store: FakeHypervisorStore;
  sink: LifecycleEventSink;
  /** `fake_async`: long operations answer `pending` and emit a lifecycle event. */
  async: boolean;
  now?: () => Date;
  faults?: FaultPlan;
  /** The compute service name (config `host`), reported by get_volume_connector. */
  host?: string;
  /** The deadline a pending answer carries. */
  deadlineSeconds?: number;
}

/** The guest's lifecycle transition for a power state reached by an out-of-band change. */
function transitionInto(before: PowerState, after: PowerState): LifecycleTransition | null {
  switch (after) {
    case PowerState.RUNNING:
      return before === PowerState.PAUSED || before === PowerState.SUSPENDED
        ? LifecycleTransition.RESUMED
        : LifecycleTransition.STARTED;
    case PowerState.PAUSED:
      return LifecycleTransition.PAUSED;
    case PowerState.SUSPENDED:
      return LifecycleTransition.SUSPENDED;
    case PowerState.SHUTDOWN:
    case PowerState.CRASHED:
      return LifecycleTransition.STOPPED;
    default:
      return null;
  }
}

/** Disk device names for the volumes of a block device mapping. */
function volumesFromBdm(bdms: readonly BlockDeviceMapping[]): Record<string, string> {
  const volumes: Record<string, string> = {};
  const taken = new Set(bdms.flatMap((bdm) => (bdm.device_name === null ? [] : [bdm.device_name])));
  let letter = 'b'.charCodeAt(0);
  const nextFree = (): string => {
    let name = `/dev/vd${String.fromCharCode(letter)}`;
    while (taken.has(name)) name = `/dev/vd${String.fromCharCode(++letter)}`;
    taken.add(name);
    return name;
  };
  for (const bdm of bdms) {
    let name = bdm.device_name;
    if (name === null)
      name = bdm.boot_index === 0 && !taken.has('/dev/vda') ? '/dev/vda' : nextFree();
    taken.add(name);
    volumes[name] = bdm.volume_id;
  }
  return volumes;
}

function interfacesFrom(ports: readonly InstancePort[], attachedBy: string): FakeInterface[] {
  return ports.map((port) => ({ ...structuredClone(port), tag: null, attachedBy }));
}

function portOf(iface: FakeInterface): InstancePort {
  const { tag: _tag, attachedBy: _by, ...port } = iface;
  return port;
}

function invalidState(instanceId: string, state: PowerState, method: string): DriverError {
  return new DriverError(
    'InstanceInvalidState',
    `Instance ${instanceId} in power_state ${POWER_STATE_NAMES[state]}. Cannot ${method} while the instance is in this state.`,
  );
}

function notRunning(instanceId: string): DriverError {
  return new DriverError('InstanceNotRunning', `Instance ${instanceId} is not running.`);
}

export class FakeDriver extends BaseComputeDriver {
  readonly nodes: readonly FakeNode[];
  readonly faults: FaultPlan;
  readonly asyncMode: boolean;
  private readonly store: FakeHypervisorStore;
  private readonly deadlineSeconds: number;
  private host: string;

  constructor(options: FakeDriverOptions) {
    super({ name: 'fake', sink: options.sink, ...(options.now ? { now: options.now } : {}) });
    this.nodes = options.nodes.map((node) => ({ ...node }));
    this.store = options.store;
    this.asyncMode = options.async;
    this.faults = options.faults ?? new FaultPlan();
    this.host = options.host ?? 'stratus';
    this.deadlineSeconds = options.deadlineSeconds ?? DEFAULT_PENDING_DEADLINE_SECONDS;
  }

  override get capabilities(): Readonly<DriverCapabilities> {
    return FAKE_CAPABILITIES;
  }

  // ── plumbing ─────────────────────────────────────────────────────────────────────────────

  /** Runs the fault plan for `method`: an armed fault fails the call before anything changes. */
  private enter(method: string): void {
    this.faults.check(method);
  }

  private managedNode(node: string | null): FakeNode | undefined {
    return this.nodes.find((candidate) => candidate.node === node);
  }

  /** The node a new guest goes to; it must be one of this driver's nodes. */
  private targetNode(node: string | null, instanceId: string): string {
    if (node === null || this.managedNode(node) === undefined) {
      throw new DriverError(
        'ComputeResourcesUnavailable',
        `Insufficient compute resources: node ${node ?? '(none)'} of instance ${instanceId} is not a node of the fake driver.`,
      );
    }
    return node;
  }

  /** A later sequence than `previous`, from the clock so a re-created guest sorts after. */
  private nextSequence(previous = 0): number {
    return Math.max(previous + 1, this.now().getTime() * 1000);
  }

  private async findGuest(instance: Instance): Promise<FakeGuest | null> {
    return instance.node === null ? null : this.store.get(instance.node, instance.instance_id);
  }

  private async requireGuest(instance: Instance): Promise<FakeGuest> {
    const guest = await this.findGuest(instance);
    if (guest === null) throw new InstanceNotFoundError(instance.instance_id);
    return guest;
  }

  private newGuest(
    ctx: DriverContext,
    instance: Instance,
    node: string,
    fields: Pick<FakeGuest, 'powerState' | 'ports' | 'volumes'>,
  ): FakeGuest {
    const now = this.now().toISOString();
    const { flavor } = instance;
    return {
      instanceId: instance.instance_id,
      node,
      powerState: fields.powerState,
      flavor: {
        vcpus: flavor.vcpus,
        memory_mb: flavor.memory_mb,
        disk_gb: flavor.root_gb + flavor.ephemeral_gb,
      },
      ports: structuredClone(fields.ports),
      interfaces: interfacesFrom(fields.ports, ctx.commandId),
      volumes: { ...fields.volumes },
      rescued: false,
      consoleLog: FAKE_CONSOLE_OUTPUT,
      startedAt: fields.powerState === PowerState.RUNNING ? now : null,
      createdBy: ctx.commandId,
      updatedAt: now,
      sequence: this.nextSequence(),
    };
  }

  /**
   * Applies `change` to the stored guest with a conditional write, re-reading and re-applying
   * when another writer got there first. `change` returns null when there is nothing to do.
   */
  private async mutateAt(
    node: string | null,
    instanceId: string,
    change: (guest: FakeGuest) => FakeGuest | null,
  ): Promise<{ guest: FakeGuest; changed: boolean }> {
    for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt += 1) {
      const current = node === null ? null : await this.store.get(node, instanceId);
      if (current === null) throw new InstanceNotFoundError(instanceId);
      const next = change(structuredClone(current));
      if (next === null) return { guest: current, changed: false };
      next.sequence = this.nextSequence(current.sequence);
      next.updatedAt = this.now().toISOString();
      if (await this.store.replace(next, current.sequence)) return { guest: next, changed: true };
    }
    throw new DriverError(
      'HypervisorUnavailable',
      `Guest ${instanceId} on ${node ?? '(none)'} kept changing under concurrent updates.`,
    );
  }

  private mutate(
    instance: Instance,
    change: (guest: FakeGuest) => FakeGuest | null,
  ): Promise<{ guest: FakeGuest; changed: boolean }> {
    return this.mutateAt(instance.node, instance.instance_id, change);
  }

  private lifecycleEvent(
    guest: Pick<FakeGuest, 'instanceId' | 'node'>,
    transition: LifecycleTransition,
    sequence: number,
  ): LifecycleEvent {
    return {
      instanceId: guest.instanceId,
      transition,
      node: guest.node,
      occurredAt: this.now().toISOString(),
      source: 'fake',
      sequence,
    };
  }

  /**
   * The answer of a power operation. In asynchronous mode a change that happened is reported
   * `pending` and its event emitted; nothing changed (a replay, or the guest was already there)
   * means nothing to wait for, so the answer is `done` in both modes.
   */
  private async settle(
    guest: FakeGuest,
    transition: LifecycleTransition,
    changed: boolean,
    mayPend: boolean,
  ): Promise<DriverResult> {
    if (!(this.asyncMode && mayPend && changed)) {
      return { status: 'done', powerState: guest.powerState };
    }
    await this.emitEvent(this.lifecycleEvent(guest, transition, guest.sequence));
    return { status: 'pending', expect: transition, deadlineSeconds: this.deadlineSeconds };
  }

  private setPower(guest: FakeGuest, powerState: PowerState, restarted = false): FakeGuest | null {
    if (guest.powerState === powerState && !restarted) return null;
    guest.powerState = powerState;
    guest.startedAt = powerState === PowerState.RUNNING ? this.now().toISOString() : null;
    return guest;
  }

  // ── Service / host lifecycle ─────────────────────────────────────────────────────────────
  override async initHost(_ctx: DriverContext, host: string): Promise<void> {
    this.enter('initHost');
    this.host = host;
  }

  override async getAvailableNodes(_ctx: DriverContext, _refresh?: boolean): Promise<string[]> {
    this.enter('getAvailableNodes');
    return this.nodes.map((node) => node.node);
  }

  /** Every node, each with its own stable uuid (Nova's fake does the same). */
  override async getNodenamesByUuid(
    ctx: DriverContext,
    refresh = false,
  ): Promise<Record<string, string>> {
    this.enter('getNodenamesByUuid');
    const nodes = await this.getAvailableNodes(ctx, refresh);
    return Object.fromEntries(nodes.map((node) => [nodeUuid(node), node]));
  }

  override async getHostIpAddr(_ctx: DriverContext): Promise<string> {
    this.enter('getHostIpAddr');
    return FAKE_HOST_IP;
  }

  override async hostPowerAction(_ctx: DriverContext, action: HostPowerAction): Promise<string> {
    this.enter('hostPowerAction');
    return action;
  }

  private requireManagedNode(host: string): void {
    if (this.managedNode(host) === undefined) {
      throw new DriverError('ComputeHostNotFound', `Compute host ${host} could not be found.`);
    }
  }

  override async hostMaintenanceMode(
    _ctx: DriverContext,
    host: string,
    mode: boolean,
  ): Promise<'on_maintenance' | 'off_maintenance'> {
    this.enter('hostMaintenanceMode');
    this.requireManagedNode(host);
    return mode ? 'on_maintenance' : 'off_maintenance';
  }

  override async setHostEnabled(
    _ctx: DriverContext,
    host: string,
    enabled: boolean,
  ): Promise<'enabled' | 'disabled'> {
    this.enter('setHostEnabled');
    this.requireManagedNode(host);
    return enabled ? 'enabled' : 'disabled';
  }

  override async getHostCpuStats(_ctx: DriverContext): Promise<Record<string, number>> {
    this.enter('getHostCpuStats');
    return { ...FAKE_HOST_CPU_STATS };
  }

  // ── Instance lifecycle ───────────────────────────────────────────────────────────────────
  override async spawn(
    ctx: DriverContext,
    instance: Instance,
    request: SpawnRequest,
  ): Promise<SpawnResult> {
    this.enter('spawn');
    const node = this.targetNode(instance.node, instance.instance_id);
    // Secrets in `request` (admin password, user data, file contents) are not kept anywhere.
    const guest = this.newGuest(ctx, instance, node, {
      powerState: request.powerOn ? PowerState.RUNNING : PowerState.SHUTDOWN,
      ports: allocateSpawnPorts(instance.instance_id, request.requestedNetworks),
      volumes: volumesFromBdm(request.blockDeviceMapping),
    });
    const outcome = await this.store.create(guest);
    if (!outcome.created) {
      // The guest is there already (a retried command, or a racing one): that is success.
      const { existing } = outcome;
      return { status: 'done', powerState: existing.powerState, ports: existing.ports };
    }
    const transition = request.powerOn ? LifecycleTransition.STARTED : LifecycleTransition.STOPPED;
    const result = await this.settle(guest, transition, true, true);
    return { ...result, ports: guest.ports };
  }

  override async destroy(
    _ctx: DriverContext,
    instance: Instance,
    _options?: DestroyOptions,
  ): Promise<DriverResult> {
    this.enter('destroy');
    const deleted =
      instance.node === null ? null : await this.store.delete(instance.node, instance.instance_id);
    // An unknown guest is already destroyed: done, so a retried terminate succeeds.
    if (deleted === null || !this.asyncMode)
      return { status: 'done', powerState: PowerState.NOSTATE };
    // nova/virt/event.py has no "deleted" transition; libvirt reports a destroyed domain as
    // STOPPED, and so does the fake.
    const sequence = this.nextSequence(deleted.sequence);
    await this.emitEvent(this.lifecycleEvent(deleted, LifecycleTransition.STOPPED, sequence));
    return {
      status: 'pending',
      expect: LifecycleTransition.STOPPED,
      deadlineSeconds: this.deadlineSeconds,
    };
  }

  override async cleanup(
    _ctx: DriverContext,
    instance: Instance,
    _options?: CleanupOptions,
  ): Promise<void> {
    this.enter('cleanup');
    if ((await this.findGuest(instance)) !== null) {
      throw new DriverError(
        'InstanceExists',
        `Instance ${instance.instance_id} has not been destroyed.`,
      );
    }
  }

  override async softDelete(_ctx: DriverContext, instance: Instance): Promise<DriverResult> {
    this.enter('softDelete');
    const { guest, changed } = await this.mutate(instance, (g) =>
      this.setPower(g, PowerState.SHUTDOWN),
    );
    return this.settle(guest, LifecycleTransition.STOPPED, changed, false);
  }

  override async restore(_ctx: DriverContext, instance: Instance): Promise<DriverResult> {
    this.enter('restore');
    const { guest, changed } = await this.mutate(instance, (g) =>
      this.setPower(g, PowerState.RUNNING),
    );
    return this.settle(guest, LifecycleTransition.STARTED, changed, false);
  }

  /** Walks the image task states as libvirt does; the upload itself is instant. */
  override async snapshot(
    _ctx: DriverContext,
    instance: Instance,
    _imageId: string,
    updateTaskState: UpdateTaskState,
  ): Promise<CompletionResult> {
    this.enter('snapshot');
    if ((await this.findGuest(instance)) === null) throw notRunning(instance.instance_id);
    await updateTaskState(TaskState.IMAGE_PENDING_UPLOAD);
    await updateTaskState(TaskState.IMAGE_UPLOADING, TaskState.IMAGE_PENDING_UPLOAD);
    return { status: 'done' };
  }

  /** Accepts the password for a running guest and forgets it at once. */
  override async setAdminPassword(
    _ctx: DriverContext,
    instance: Instance,
    _newPassword: string,
  ): Promise<void> {
    this.enter('setAdminPassword');
    const guest = await this.requireGuest(instance);
    if (guest.powerState !== PowerState.RUNNING) throw notRunning(instance.instance_id);
  }

  override async triggerCrashDump(_ctx: DriverContext, instance: Instance): Promise<void> {
    this.enter('triggerCrashDump');
    const guest = await this.requireGuest(instance);
    if (guest.powerState !== PowerState.RUNNING) throw notRunning(instance.instance_id);
  }

  override async quiesce(
    _ctx: DriverContext,
    instance: Instance,
    _imageMeta: Record<string, string>,
  ): Promise<void> {
    this.enter('quiesce');
    await this.requireGuest(instance);
  }

  override async unquiesce(
    _ctx: DriverContext,
    instance: Instance,
    _imageMeta: Record<string, string>,
  ): Promise<void> {
    this.enter('unquiesce');
    await this.requireGuest(instance);
  }

  // ── Inventory of guests ──────────────────────────────────────────────────────────────────
  override async getInfo(
    _ctx: DriverContext,
    instance: Instance,
    _useCache?: boolean,
  ): Promise<InstanceInfo> {
    this.enter('getInfo');
    const guest = await this.requireGuest(instance);
    return { state: guest.powerState, internalId: `fake:${guest.node}:${guest.instanceId}` };
  }

  private async allGuests(): Promise<FakeGuest[]> {
    const perNode = await Promise.all(this.nodes.map((node) => this.store.listByNode(node.node)));
    return perNode.flat();
  }

  override async listInstances(_ctx: DriverContext): Promise<string[]> {
    this.enter('listInstances');
    return (await this.allGuests()).map((guest) => guest.instanceId);
  }

  override async listInstanceUuids(_ctx: DriverContext): Promise<string[]> {
    this.enter('listInstanceUuids');
    return (await this.allGuests()).map((guest) => guest.instanceId);
  }

  /** One read of the guest instead of Nova's default scan of every guest. */
  override async instanceExists(_ctx: DriverContext, instance: Instance): Promise<boolean> {
    this.enter('instanceExists');
    return (await this.findGuest(instance)) !== null;
  }

  // ── Power ────────────────────────────────────────────────────────────────────────────────
  /** Any reboot ends RUNNING; a HARD reboot of a guest the hypervisor lost re-creates it. */
  override async reboot(
    ctx: DriverContext,
    instance: Instance,
    rebootType: RebootType,
  ): Promise<DriverResult> {
    this.enter('reboot');
    if (rebootType === 'HARD' && (await this.findGuest(instance)) === null) {
      const node = this.targetNode(instance.node, instance.instance_id);
      const guest = this.newGuest(ctx, instance, node, {
        powerState: PowerState.RUNNING,
        ports: instance.ports,
        volumes: volumesFromBdm(instance.block_device_mapping),
      });
      const outcome = await this.store.create(guest);
      if (outcome.created) return this.settle(guest, LifecycleTransition.STARTED, true, true);
    }
    const { guest } = await this.mutate(instance, (g) =>
      this.setPower(g, PowerState.RUNNING, true),
    );
    return this.settle(guest, LifecycleTransition.STARTED, true, true);
  }

  override async powerOff(
    _ctx: DriverContext,
    instance: Instance,
    _options?: PowerOffOptions,
  ): Promise<DriverResult> {
    this.enter('powerOff');
    const { guest, changed } = await this.mutate(instance, (g) =>
      this.setPower(g, PowerState.SHUTDOWN),
    );
    return this.settle(guest, LifecycleTransition.STOPPED, changed, true);
  }

  override async powerOn(_ctx: DriverContext, instance: Instance): Promise<DriverResult> {
    this.enter('powerOn');
    const { guest, changed } = await this.mutate(instance, (g) =>
      this.setPower(g, PowerState.RUNNING),
    );
    return this.settle(guest, LifecycleTransition.STARTED, changed, true);
  }

  override async pause(_ctx: DriverContext, instance: Instance): Promise<DriverResult> {
    this.enter('pause');
    const { guest, changed } = await this.mutate(instance, (g) => {
      if (g.powerState === PowerState.PAUSED) return null;
      if (g.powerState !== PowerState.RUNNING) throw notRunning(g.instanceId);
      g.powerState = PowerState.PAUSED;
      return g;
    });
    return this.settle(guest, LifecycleTransition.PAUSED, changed, false);
  }

  override async unpause(_ctx: DriverContext, instance: Instance): Promise<DriverResult> {
    this.enter('unpause');
    const { guest, changed } = await this.mutate(instance, (g) => {
      if (g.powerState === PowerState.RUNNING) return null;
      if (g.powerState !== PowerState.PAUSED)
        throw invalidState(g.instanceId, g.powerState, 'unpause');
      g.powerState = PowerState.RUNNING;
      return g;
    });
    return this.settle(guest, LifecycleTransition.RESUMED, changed, false);
  }

  override async suspend(_ctx: DriverContext, instance: Instance): Promise<DriverResult> {
    this.enter('suspend');
    const { guest, changed } = await this.mutate(instance, (g) => {
      if (g.powerState === PowerState.SUSPENDED) return null;
      if (g.powerState !== PowerState.RUNNING && g.powerState !== PowerState.PAUSED) {
        throw notRunning(g.instanceId);
      }
      g.powerState = PowerState.SUSPENDED;
      return g;
    });
    return this.settle(guest, LifecycleTransition.SUSPENDED, changed, true);
  }

  override async resume(_ctx: DriverContext, instance: Instance): Promise<DriverResult> {
    this.enter('resume');
    const { guest, changed } = await this.mutate(instance, (g) => {
      if (g.powerState === PowerState.RUNNING) return null;
      if (g.powerState !== PowerState.SUSPENDED)
        throw invalidState(g.instanceId, g.powerState, 'resume');
      g.powerState = PowerState.RUNNING;
      return g;
    });
    return this.settle(guest, LifecycleTransition.RESUMED, changed, true);
  }

  /** Nova's fake leaves guests as they were when the host comes back. */
  override async resumeStateOnHostBoot(
    _ctx: DriverContext,
    instance: Instance,
  ): Promise<DriverResult> {
    this.enter('resumeStateOnHostBoot');
    const guest = await this.requireGuest(instance);
    return { status: 'done', powerState: guest.powerState };
  }

  /** The guest runs from the rescue image; the rescue password is not kept. */
  override async rescue(
    _ctx: DriverContext,
    instance: Instance,
    _request: RescueRequest,
  ): Promise<DriverResult> {
    this.enter('rescue');
    const { guest, changed } = await this.mutate(instance, (g) => {
      if (g.rescued) return null;
      g.rescued = true;
      return this.setPower(g, PowerState.RUNNING, true);
    });
    return this.settle(guest, LifecycleTransition.STARTED, changed, false);
  }

  override async unrescue(_ctx: DriverContext, instance: Instance): Promise<DriverResult> {
    this.enter('unrescue');
    const { guest, changed } = await this.mutate(instance, (g) => {
      if (!g.rescued) return null;
      g.rescued = false;
      return this.setPower(g, PowerState.RUNNING, true);
    });
    return this.settle(guest, LifecycleTransition.STARTED, changed, false);
  }

  override async pollRebootingInstances(
    _ctx: DriverContext,
    _timeoutSeconds: number,
    _instances: Instance[],
  ): Promise<void> {
    this.enter('pollRebootingInstances');
  }

  // ── Cold migration / resize ──────────────────────────────────────────────────────────────
  override async migrateDiskAndPowerOff(
    _ctx: DriverContext,
    instance: Instance,
    _request: MigrateDiskRequest,
  ): Promise<MigrateDiskResult> {
    this.enter('migrateDiskAndPowerOff');
    const { guest } = await this.mutate(instance, (g) => this.setPower(g, PowerState.SHUTDOWN));
    return { status: 'done', powerState: guest.powerState, diskInfo: '[]' };
  }

  /** The guest appears on the destination node with the instance's (new) flavor. */
  override async finishMigration(
    ctx: DriverContext,
    migration: MigrationInfo,
    instance: Instance,
    request: FinishMigrationRequest,
  ): Promise<DriverResult> {
    this.enter('finishMigration');
    if (migration.source_node === migration.dest_node) {
      throw new DriverError(
        'UnableToMigrateToSelf',
        `Unable to migrate instance (${instance.instance_id}) to current host (${migration.dest_node}).`,
      );
    }
    const node = this.targetNode(migration.dest_node, instance.instance_id);
    const source = await this.store.get(migration.source_node, instance.instance_id);
    const guest = this.newGuest(ctx, instance, node, {
      powerState: request.powerOn ? PowerState.RUNNING : PowerState.SHUTDOWN,
      ports: instance.ports,
      volumes: source?.volumes ?? volumesFromBdm(request.blockDeviceMapping),
    });
    const outcome = await this.store.create(guest);
    const stored = outcome.created ? guest : outcome.existing;
    return { status: 'done', powerState: stored.powerState };
  }

  override async confirmMigration(
    _ctx: DriverContext,
    migration: MigrationInfo,
    instance: Instance,
  ): Promise<void> {
    this.enter('confirmMigration');
    if (migration.source_node !== migration.dest_node) {
      await this.store.delete(migration.source_node, instance.instance_id);
    }
  }

  /** The source guest comes back with the (restored) flavor of the instance. */
  override async finishRevertMigration(
    ctx: DriverContext,
    instance: Instance,
    migration: MigrationInfo,
    options: { powerOn: boolean },
  ): Promise<DriverResult> {
    this.enter('finishRevertMigration');
    const powerState = options.powerOn ? PowerState.RUNNING : PowerState.SHUTDOWN;
    const node = this.targetNode(migration.source_node, instance.instance_id);
    if ((await this.store.get(node, instance.instance_id)) === null) {
      const guest = this.newGuest(ctx, instance, node, {
        powerState,
        ports: instance.ports,
        volumes: volumesFromBdm(instance.block_device_mapping),
      });
      const outcome = await this.store.create(guest);
      if (outcome.created) return { status: 'done', powerState };
    }
    const { guest } = await this.mutateAt(node, instance.instance_id, (g) => {
      const flavor = {
        vcpus: instance.flavor.vcpus,
        memory_mb: instance.flavor.memory_mb,
        disk_gb: instance.flavor.root_gb + instance.flavor.ephemeral_gb,
      };
      const samePower = g.powerState === powerState;
      const sameFlavor = JSON.stringify(g.flavor) === JSON.stringify(flavor);
      if (samePower && sameFlavor) return null;
      g.flavor = flavor;
      return samePower ? g : (this.setPower(g, powerState) ?? g);
    });
    return { status: 'done', powerState: guest.powerState };
  }

  // ── Live migration ───────────────────────────────────────────────────────────────────────
  override async checkCanLiveMigrateDestination(
    ctx: DriverContext,
    instance: Instance,
    request: LiveMigrationCheckRequest,
  ): Promise<LiveMigrateData> {
    this.enter('checkCanLiveMigrateDestination');
    if (instance.node === null || request.destNode === instance.node) {
      throw new DriverError(
        'UnableToMigrateToSelf',
        `Unable to migrate instance (${instance.instance_id}) to current host (${request.destNode}).`,
      );
    }
    const resources = await this.getAvailableResource(ctx, request.destNode);
    if (resources === null) {
      throw new DriverError(
        'MigrationPreCheckError',
        `Migration pre-check error: ${request.destNode} is not a node of the fake driver.`,
      );
    }
    return {
      source_node: instance.node,
      dest_node: request.destNode,
      block_migration: request.blockMigration,
      disk_over_commit: request.diskOverCommit,
      is_shared_block_storage: true,
      is_shared_instance_path: true,
      disk_available_mb: (resources.local_gb - resources.local_gb_used) * 1024,
      driver_data: { filename: 'fake' },
    };
  }

  override async cleanupLiveMigrationDestinationCheck(
    _ctx: DriverContext,
    _destCheckData: LiveMigrateData,
  ): Promise<void> {
    this.enter('cleanupLiveMigrationDestinationCheck');
  }

  override async checkCanLiveMigrateSource(
    _ctx: DriverContext,
    instance: Instance,
    destCheckData: LiveMigrateData,
  ): Promise<LiveMigrateData> {
    this.enter('checkCanLiveMigrateSource');
    await this.requireGuest(instance);
    return destCheckData;
  }

  override async preLiveMigration(
    _ctx: DriverContext,
    _instance: Instance,
    migrateData: LiveMigrateData,
  ): Promise<LiveMigrateData> {
    this.enter('preLiveMigration');
    return migrateData;
  }

  /** Moves the guest record to the destination node, power state and devices included. */
  override async liveMigration(
    _ctx: DriverContext,
    instance: Instance,
    migrateData: LiveMigrateData,
  ): Promise<CompletionResult> {
    this.enter('liveMigration');
    const dest = this.targetNode(migrateData.dest_node, instance.instance_id);
    const source = await this.store.get(migrateData.source_node, instance.instance_id);
    if (source === null) {
      // Already moved by an earlier attempt of this command: done; otherwise the guest is gone.
      if ((await this.store.get(dest, instance.instance_id)) !== null) return { status: 'done' };
      throw new InstanceNotFoundError(instance.instance_id);
    }
    const moved: FakeGuest = {
      ...structuredClone(source),
      node: dest,
      sequence: this.nextSequence(source.sequence),
      updatedAt: this.now().toISOString(),
    };
    await this.store.create(moved);
    await this.store.delete(migrateData.source_node, instance.instance_id);
    return { status: 'done' };
  }

  override async liveMigrationForceComplete(
    _ctx: DriverContext,
    _instance: Instance,
  ): Promise<void> {
    this.enter('liveMigrationForceComplete');
  }

  override async liveMigrationAbort(_ctx: DriverContext, _instance: Instance): Promise<void> {
    this.enter('liveMigrationAbort');
  }

  /** Removes a destination copy, but never the last copy of the guest. */
  override async rollbackLiveMigrationAtDestination(
    _ctx: DriverContext,
    instance: Instance,
    migrateData: LiveMigrateData,
    _options: { destroyDisks: boolean },
  ): Promise<void> {
    this.enter('rollbackLiveMigrationAtDestination');
    const source = await this.store.get(migrateData.source_node, instance.instance_id);
    if (source !== null && migrateData.dest_node !== migrateData.source_node) {
      await this.store.delete(migrateData.dest_node, instance.instance_id);
    }
  }

  /** Nova's manager calls it after every live migration; the fake has nothing left on the source. */
  override async postLiveMigrationAtSource(
    _ctx: DriverContext,
    _instance: Instance,
    _networkInfo: InstancePort[],
  ): Promise<void> {
    this.enter('postLiveMigrationAtSource');
  }

  /** Makes sure the destination knows the guest (Nova's fake spawns it there). */
  override async postLiveMigrationAtDestination(
    ctx: DriverContext,
    instance: Instance,
    migrateData: LiveMigrateData,
  ): Promise<void> {
    this.enter('postLiveMigrationAtDestination');
    const dest = this.targetNode(migrateData.dest_node, instance.instance_id);
    if ((await this.store.get(dest, instance.instance_id)) !== null) return;
    await this.store.create(
      this.newGuest(ctx, instance, dest, {
        powerState: PowerState.RUNNING,
        ports: instance.ports,
        volumes: volumesFromBdm(instance.block_device_mapping),
      }),
    );
  }

  override async getInstanceDiskInfo(
    _ctx: DriverContext,
    _instance: Instance,
  ): Promise<string | null> {
    this.enter('getInstanceDiskInfo');
    return null;
  }

  // ── Volumes, block devices, shares ───────────────────────────────────────────────────────
  override async attachVolume(
    _ctx: DriverContext,
    instance: Instance,
    request: VolumeAttachRequest,
  ): Promise<void> {
    this.enter('attachVolume');
    const volumeId = request.connectionInfo.volume_id;
    await this.mutate(instance, (g) => {
      const current = g.volumes[request.mountpoint];
      if (current === volumeId) return null;
      if (current !== undefined) {
        throw new DriverError(
          'DevicePathInUse',
          `The supplied device path (${request.mountpoint}) is in use.`,
        );
      }
      g.volumes[request.mountpoint] = volumeId;
      return g;
    });
  }

  /** Detaching what is not attached succeeds, as in Nova's fake (and EC2's idempotent detach). */
  override async detachVolume(
    _ctx: DriverContext,
    instance: Instance,
    request: VolumeDetachRequest,
  ): Promise<void> {
    this.enter('detachVolume');
    await this.mutate(instance, (g) => {
      if (g.volumes[request.mountpoint] !== request.connectionInfo.volume_id) return null;
      delete g.volumes[request.mountpoint];
      return g;
    });
  }

  override async swapVolume(
    _ctx: DriverContext,
    instance: Instance,
    request: SwapVolumeRequest,
  ): Promise<void> {
    this.enter('swapVolume');
    const newVolumeId = request.newConnectionInfo.volume_id;
    await this.mutate(instance, (g) => {
      if (g.volumes[request.mountpoint] === newVolumeId) return null;
      g.volumes[request.mountpoint] = newVolumeId;
      return g;
    });
  }

  override async extendVolume(
    _ctx: DriverContext,
    instance: Instance,
    connectionInfo: VolumeConnectionInfo,
    _requestedSize: number,
  ): Promise<void> {
    this.enter('extendVolume');
    const guest = await this.requireGuest(instance);
    if (!Object.values(guest.volumes).includes(connectionInfo.volume_id)) {
      throw new DriverError(
        'VolumeNotFound',
        `Volume ${connectionInfo.volume_id} could not be found.`,
      );
    }
  }

  override async getVolumeConnector(
    _ctx: DriverContext,
    _instance: Instance,
  ): Promise<VolumeConnector> {
    this.enter('getVolumeConnector');
    return { ip: FAKE_HOST_IP, initiator: 'fake', host: this.host };
  }

  override async getAllVolumeUsage(
    _ctx: DriverContext,
    hostBdms: HostVolumeUsageRequest[],
  ): Promise<VolumeUsage[]> {
    this.enter('getAllVolumeUsage');
    return hostBdms.flatMap(({ instance, instanceBdms }) =>
      instanceBdms.map((bdm) => ({
        volume: bdm.volume_id,
        instance: instance.instance_id,
        rd_bytes: 0,
        rd_req: 0,
        wr_bytes: 0,
        wr_req: 0,
      })),
    );
  }

  override async blockStats(
    _ctx: DriverContext,
    instance: Instance,
    _diskId: string,
  ): Promise<BlockStats | null> {
    this.enter('blockStats');
    await this.requireGuest(instance);
    return [0, 0, 0, 0, null];
  }

  override async mountShare(
    _ctx: DriverContext,
    instance: Instance,
    _share: ShareMapping,
  ): Promise<void> {
    this.enter('mountShare');
    await this.requireGuest(instance);
  }

  override async umountShare(
    _ctx: DriverContext,
    instance: Instance,
    _share: ShareMapping,
  ): Promise<void> {
    this.enter('umountShare');
    await this.requireGuest(instance);
  }

  // ── Network ──────────────────────────────────────────────────────────────────────────────
  /**
   * Attaching a port that is already plugged fails (InterfaceAttachFailed), as in Nova's fake,
   * except when the same command plugged it: that is a retry, and it gets the same port back.
   */
  override async attachInterface(
    ctx: DriverContext,
    instance: Instance,
    request: InterfaceAttachRequest,
  ): Promise<InstancePort> {
    this.enter('attachInterface');
    const attachFailed = () =>
      new DriverError(
        'InterfaceAttachFailed',
        `Failed to attach network adapter device to ${instance.instance_id}`,
      );
    const networkId =
      request.network_id ?? (request.port_id === undefined ? undefined : 'fake-network');
    if (networkId === undefined) throw attachFailed();
    const port = fakePort(
      {
        network_id: networkId,
        ...(request.fixed_ip === undefined ? {} : { fixed_ip: request.fixed_ip }),
        ...(request.port_id === undefined ? {} : { port_id: request.port_id }),
      },
      [instance.instance_id, 'attach', ctx.commandId],
    );
    let attached: InstancePort = port;
    await this.mutate(instance, (g) => {
      const existing = g.interfaces.find((iface) => iface.port_id === port.port_id);
      if (existing !== undefined) {
        if (existing.attachedBy !== ctx.commandId) throw attachFailed();
        attached = portOf(existing);
        return null;
      }
      g.interfaces.push({ ...port, tag: request.tag ?? null, attachedBy: ctx.commandId });
      return g;
    });
    return attached;
  }

  override async detachInterface(
    _ctx: DriverContext,
    instance: Instance,
    portId: string,
  ): Promise<void> {
    this.enter('detachInterface');
    await this.mutate(instance, (g) => {
      const index = g.interfaces.findIndex((iface) => iface.port_id === portId);
      if (index < 0) {
        throw new DriverError(
          'InterfaceDetachFailed',
          `Failed to detach network adapter device from ${instance.instance_id}`,
        );
      }
      g.interfaces.splice(index, 1);
      return g;
    });
  }

  override async plugVifs(
    _ctx: DriverContext,
    _instance: Instance,
    _networkInfo: InstancePort[],
  ): Promise<void> {
    this.enter('plugVifs');
  }

  override async unplugVifs(
    _ctx: DriverContext,
    _instance: Instance,
    _networkInfo: InstancePort[],
  ): Promise<void> {
    this.enter('unplugVifs');
  }

  // ── Consoles ─────────────────────────────────────────────────────────────────────────────
  override async getConsoleOutput(_ctx: DriverContext, instance: Instance): Promise<string> {
    this.enter('getConsoleOutput');
    return (await this.requireGuest(instance)).consoleLog;
  }

  private async console(
    instance: Instance,
    kind: string,
    host: string,
    extra: Partial<ConsoleInfo> = {},
  ): Promise<ConsoleInfo> {
    await this.requireGuest(instance);
    return {
      host,
      port: 6969,
      internal_access_path: uuidv5(`${kind}:${instance.instance_id}`, CONSOLE_NAMESPACE),
      ...extra,
    };
  }

  override async getVncConsole(_ctx: DriverContext, instance: Instance): Promise<ConsoleInfo> {
    this.enter('getVncConsole');
    return this.console(instance, 'vnc', 'fakevncconsole.com');
  }

  override async getSpiceConsole(_ctx: DriverContext, instance: Instance): Promise<ConsoleInfo> {
    this.enter('getSpiceConsole');
    return this.console(instance, 'spice', 'fakespiceconsole.com', { tls_port: 6970 });
  }

  override async getSerialConsole(_ctx: DriverContext, instance: Instance): Promise<ConsoleInfo> {
    this.enter('getSerialConsole');
    return this.console(instance, 'serial', 'fakeserialconsole.com');
  }

  override async getMksConsole(_ctx: DriverContext, instance: Instance): Promise<ConsoleInfo> {
    this.enter('getMksConsole');
    return this.console(instance, 'mks', 'fakemksconsole.com');
  }

  // ── Diagnostics ──────────────────────────────────────────────────────────────────────────
  /** The disks a guest shows: the root disk, then its volumes in device order. */
  private static diskNames(guest: FakeGuest): string[] {
    const volumeDisks = Object.keys(guest.volumes)
      .map((mountpoint) => mountpoint.replace(/^\/dev\//, ''))
      .filter((name) => name !== 'vda')
      .sort();
    return ['vda', ...volumeDisks];
  }

  /** Nova's fake figures, one entry per vCPU, disk and interface the guest really has. */
  override async getDiagnostics(
    _ctx: DriverContext,
    instance: Instance,
  ): Promise<Record<string, number | null>> {
    this.enter('getDiagnostics');
    const guest = await this.requireGuest(instance);
    const diagnostics: Record<string, number | null> = {};
    for (let cpu = 0; cpu < guest.flavor.vcpus; cpu += 1)
      diagnostics[`cpu${cpu}_time`] = 17300000000;
    diagnostics['memory'] = guest.flavor.memory_mb * 1024;
    for (const disk of FakeDriver.diskNames(guest)) {
      Object.assign(diagnostics, {
        [`${disk}_errors`]: -1,
        [`${disk}_read`]: 262144,
        [`${disk}_read_req`]: 112,
        [`${disk}_write`]: 5778432,
        [`${disk}_write_req`]: 488,
      });
    }
    guest.interfaces.forEach((_iface, index) => {
      const nic = `vnet${index}`;
      Object.assign(diagnostics, {
        [`${nic}_rx`]: 2070139,
        [`${nic}_rx_drop`]: 0,
        [`${nic}_rx_errors`]: 0,
        [`${nic}_rx_packets`]: 26701,
        [`${nic}_tx`]: 140208,
        [`${nic}_tx_drop`]: 0,
        [`${nic}_tx_errors`]: 0,
        [`${nic}_tx_packets`]: 662,
      });
    });
    return diagnostics;
  }

  override async getInstanceDiagnostics(
    _ctx: DriverContext,
    instance: Instance,
  ): Promise<InstanceDiagnostics> {
    this.enter('getInstanceDiagnostics');
    const guest = await this.requireGuest(instance);
    const disks = FakeDriver.diskNames(guest);
    const uptime =
      guest.startedAt === null
        ? 0
        : Math.max(0, Math.floor((this.now().getTime() - Date.parse(guest.startedAt)) / 1000));
    return {
      state: POWER_STATE_NAMES[guest.powerState],
      driver: 'fake',
      hypervisor: FAKE_HYPERVISOR_TYPE,
      hypervisor_os: 'fake',
      uptime,
      config_drive: false,
      num_cpus: guest.flavor.vcpus,
      num_nics: guest.interfaces.length,
      num_disks: disks.length,
      cpu_details: Array.from({ length: guest.flavor.vcpus }, (_unused, id) => ({
        id,
        time: 17300000000,
        utilisation: 15,
      })),
      nic_details: guest.interfaces.map((iface) => ({
        mac_address: iface.mac,
        rx_octets: 2070139,
        rx_errors: 0,
        rx_drop: 0,
        rx_packets: 26701,
        rx_rate: null,
        tx_octets: 140208,
        tx_errors: 0,
        tx_drop: 0,
        tx_packets: 662,
        tx_rate: null,
      })),
      disk_details: disks.map(() => ({
        read_bytes: 262144,
        read_requests: 112,
        write_bytes: 5778432,
        write_requests: 488,
        errors_count: 0,
      })),
      memory_details: { maximum: guest.flavor.memory_mb, used: 0 },
    };
  }

  // ── Resources ────────────────────────────────────────────────────────────────────────────
  /** The node's capacity from config, and its usage summed from the guests on it. */
  override async getAvailableResource(
    _ctx: DriverContext,
    nodename: string,
  ): Promise<NodeResources | null> {
    this.enter('getAvailableResource');
    const node = this.managedNode(nodename);
    if (node === undefined) return null;
    const guests = await this.store.listByNode(nodename);
    const sum = (pick: (guest: FakeGuest) => number) =>
      guests.reduce((total, guest) => total + pick(guest), 0);
    return {
      vcpus: node.vcpus,
      memory_mb: node.memory_mb,
      local_gb: node.local_gb,
      vcpus_used: sum((guest) => guest.flavor.vcpus),
      memory_mb_used: sum((guest) => guest.flavor.memory_mb),
      local_gb_used: sum((guest) => guest.flavor.disk_gb),
      cpu_info: FAKE_CPU_INFO,
      numa_topology: null,
      hypervisor_type: FAKE_HYPERVISOR_TYPE,
      hypervisor_version: FAKE_HYPERVISOR_VERSION,
      hypervisor_hostname: nodename,
      availability_zone: node.availability_zone,
      supported_instances: [['x86_64', 'fake', 'hvm']],
    };
  }

  override async updateProviderTree(
    _ctx: DriverContext,
    nodename: string,
    settings: InventorySettings,
  ): Promise<NodeInventory | null> {
    this.enter('updateProviderTree');
    const node = this.managedNode(nodename);
    if (node === undefined) return null;
    const record = (total: number, reserved: number, allocationRatio: number) => ({
      total,
      reserved,
      min_unit: 1,
      max_unit: total,
      step_size: 1,
      allocation_ratio: allocationRatio,
    });
    return {
      VCPU: record(node.vcpus, settings.reserved_host_cpus, settings.cpu_allocation_ratio),
      MEMORY_MB: record(
        node.memory_mb,
        settings.reserved_host_memory_mb,
        settings.ram_allocation_ratio,
      ),
      DISK_GB: record(
        node.local_gb,
        Math.ceil(settings.reserved_host_disk_mb / 1024),
        settings.disk_allocation_ratio,
      ),
    };
  }

  // ── Test and operator hooks (not part of the ComputeDriver contract) ────────────────────

  /**
   * Changes a guest's power state behind the manager's back (the guest shut itself down,
   * crashed, ...) and reports it as a hypervisor would, with a lifecycle event in either mode.
   */
  async simulatePowerChange(
    node: string,
    instanceId: string,
    powerState: PowerState,
  ): Promise<void> {
    let before: PowerState = powerState;
    const { guest, changed } = await this.mutateAt(node, instanceId, (g) => {
      before = g.powerState;
      return this.setPower(g, powerState);
    });
    const transition = transitionInto(before, powerState);
    if (changed && transition !== null) {
      await this.emitEvent(this.lifecycleEvent(guest, transition, guest.sequence));
    }
  }

  /** The hypervisor loses a guest (Nova's fake `_test_remove_vm`). */
  async simulateGuestLoss(node: string, instanceId: string): Promise<void> {
    await this.store.delete(node, instanceId);
  }
}

/** A fake driver configured from the deployment options (`fake_nodes`, `fake_async`, `host`). */
export function fakeDriverFromConfig(
  config: Pick<Config, 'fake_nodes' | 'fake_async' | 'host'>,
  deps: { store: FakeHypervisorStore; sink: LifecycleEventSink; now?: () => Date },
): FakeDriver {
  return new FakeDriver({
    nodes: config.fake_nodes,
    async: config.fake_async,
    host: config.host,
    store: deps.store,
    sink: deps.sink,
    ...(deps.now ? { now: deps.now } : {}),
  });
}
