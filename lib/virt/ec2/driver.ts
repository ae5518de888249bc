// The EC2 driver: Nova's ComputeDriver contract on Amazon EC2 (reference ec2-driver.md §1, the
// mapping table in docs/ec2-driver.md). Three kinds of methods:
//
// - supported: one EC2 call each (RunInstances, Stop/Start/Reboot/TerminateInstances,
//   CreateImage, Attach/DetachVolume, network interfaces, GetConsoleOutput, DescribeInstances…);
// - emulated: built from other EC2 calls, with the semantic difference said where it is done
//   (HARD reboot = stop + start, suspend = hibernate, resize in place = stop / modify / start,
//   soft delete = stop, diagnostics from DescribeInstances);
// - not supported: the base class's NotSupportedError (501), never a silent success.
//
// Nothing waits. Launch, stop, start and hibernate return `pending`; EC2's state-change event
// (EventBridge → lifecycle queue → onStateChange) or the sweeper's getInfo at the deadline
// completes the task. Multi-step emulations leave an intent tag (tags.ts) that the next event
// acts on.
//
// Every instance the driver creates is tagged with the deployment and the Stratus instance id at
// creation, every Describe filters on the deployment: instances of other deployments, and
// instances nobody gave to Stratus, are never listed, found, stopped or terminated.
//
// Secrets (admin password, user data, injected files) go to RunInstances' UserData only: they
// are not logged, not tagged, and are removed from any error message.

import type { EC2Client } from '@aws-sdk/client-ec2';
import type { BlockDeviceMapping, Instance, InstancePort } from '../../compute/instance.ts';
import { InstanceNotFoundError } from '../../errors.ts';
import { BaseComputeDriver, nodeUuid } from '../base-driver.ts';
import type {
  CompletionResult,
  DestroyOptions,
  DriverCapabilities,
  DriverContext,
  DriverResult,
  FinishMigrationRequest,
  InstanceDiagnostics,
  InstanceInfo,
  InterfaceAttachRequest,
  InventorySettings,
  MigrateDiskRequest,
  MigrateDiskResult,
  MigrationInfo,
  NodeInventory,
  PowerOffOptions,
  RebootType,
  SpawnRequest,
  SpawnResult,
  UpdateTaskState,
  VolumeAttachRequest,
  VolumeConnector,
  VolumeDetachRequest,
} from '../driver.ts';
import { NO_CAPABILITIES } from '../driver.ts';
import type { LifecycleEvent, LifecycleEventSink } from '../events.ts';
import { type Ec2Context, type Ec2Logger, callWithBackoff } from './calls.ts';
import {
  type CapacitySources,
  type Ec2NodeResources,
  nodeInventory,
  nodeResources,
} from './capacity.ts';
import { consoleOutput, instanceDiagnostics, sendCrashDumpInterrupt } from './diagnostics.ts';
import { requireDestroyed, terminateGuests } from './destroy.ts';
import { EC2_DRIVER_NAME } from './errors.ts';
import {
  EXISTING_STATES,
  describeById,
  findGuest,
  guestOf,
  listedGuests,
  observationOf,
  requireGuest,
} from './guests.ts';
import { snapshotToAmi } from './images.ts';
import type { InstanceTypeCache } from './instance-types.ts';
import { spawnGuest } from './launch.ts';
import { attachInterface, detachInterface } from './network.ts';
import { availableNodes, isNodeDeleted } from './nodes.ts';
import {
  rebootGuest,
  resumeGuest,
  startGuest,
  stateChangeEvent,
  stopGuest,
  suspendGuest,
} from './power.ts';
import { powerStateOf } from './power-state.ts';
import { retype, revertResize, stopForResize } from './resize.ts';
import type { Ec2Settings } from './settings.ts';
import { Ec2Intent } from './tags.ts';
import { attachVolume, detachVolume, freeDeviceName } from './volumes.ts';

// The driver's public surface, whichever module implements it.
export type { Ec2Logger } from './calls.ts';
export { EC2_HYPERVISOR_TYPE, EC2_HYPERVISOR_VERSION } from './capacity.ts';
export { notFoundDelays, observationOf } from './guests.ts';
export { clientToken } from './launch.ts';
export { HOST_NODE_PREFIX } from './nodes.ts';

/**
 * What EC2 can honestly claim (reference §1, capabilities): resize happens in place (same
 * node), secondary interfaces attach, images are AMIs. No image cache, no evacuate (EC2 recovers
 * hosts itself), no device tagging, no multi-attach or extend (EBS is Cinder's business).
 */
export const EC2_CAPABILITIES: Readonly<DriverCapabilities> = Object.freeze({
  ...NO_CAPABILITIES,
  supports_migrate_to_same_host: true,
  supports_attach_interface: true,
  supports_image_type_ami: true,
});

export interface Ec2DriverOptions {
  client: EC2Client;
  settings: Ec2Settings;
  /** The deployment name (config `prefix`): the value of every `stratus:deployment` tag. */
  deployment: string;
  sink?: LifecycleEventSink;
  clock?: () => Date;
  /** Waits between retries (tests pass a recorder). */
  sleep?: (ms: number) => Promise<void>;
  logger?: Ec2Logger;
  /** Reads an EC2 Service Quotas value (vCPUs) for pools with `vcpus: "quota"`. */
  quotaReader?: (quotaCode: string) => Promise<number>;
  /** Throttled calls retried by the driver after the SDK's own attempts (default 4). */
  throttleRetries?: number;
}

/**
 * The coordinator: each Nova method finds what it needs (usually the guest) and hands it to
 * the module that does the work; the plain one-call mappings are written here.
 */
export class Ec2Driver extends BaseComputeDriver {
  readonly deployment: string;
  readonly settings: Ec2Settings;
  /** The client, deployment, settings and clock every module's calls go through. */
  private readonly ec2: Ec2Context;
  /** vCPU limits EC2 reported in VcpuLimitExceeded, per pool node (lowers its inventory). */
  private readonly observedVcpuLimits = new Map<string, number>();
  private readonly instanceTypes: InstanceTypeCache = new Map();
  private readonly capacitySources: CapacitySources;

  constructor(options: Ec2DriverOptions) {
    super({
      name: EC2_DRIVER_NAME,
      sink: options.sink ?? null,
      ...(options.clock ? { now: options.clock } : {}),
    });
    this.settings = options.settings;
    this.deployment = options.deployment;
    const sleep =
      options.sleep ?? ((ms) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
    const retry = {
      throttleRetries: options.throttleRetries ?? 4,
      sleep,
      logger: options.logger,
    };
    this.ec2 = {
      client: options.client,
      deployment: options.deployment,
      settings: options.settings,
      call: (name, fn) => callWithBackoff(name, fn, retry),
      sleep,
      now: () => this.now(),
      logger: options.logger,
    };
    this.capacitySources = {
      instanceTypes: this.instanceTypes,
      observedVcpuLimits: this.observedVcpuLimits,
      quotaReader: options.quotaReader,
    };
  }

  override get capabilities(): Readonly<DriverCapabilities> {
    return EC2_CAPABILITIES;
  }

  // ── Nodes (nodes.ts) ─────────────────────────────────────────────────────────────────────

  override async initHost(_ctx: DriverContext, _host: string): Promise<void> {
    // Nothing to prepare: EC2 is reached per call, with the function's IAM role.
  }

  override async getAvailableNodes(_ctx: DriverContext, _refresh?: boolean): Promise<string[]> {
    return availableNodes(this.ec2);
  }

  override async getNodenamesByUuid(
    ctx: DriverContext,
    refresh = false,
  ): Promise<Record<string, string>> {
    const nodes = await this.getAvailableNodes(ctx, refresh);
    return Object.fromEntries(nodes.map((node) => [nodeUuid(node), node]));
  }

  override async isNodeDeleted(_ctx: DriverContext, nodename: string): Promise<boolean> {
    return isNodeDeleted(this.ec2, nodename);
  }

  // ── Instance lifecycle ───────────────────────────────────────────────────────────────────

  /** One RunInstances, built by launch.ts; `pending` until EC2's state-change event. */
  override async spawn(
    ctx: DriverContext,
    instance: Instance,
    request: SpawnRequest,
  ): Promise<SpawnResult> {
    return spawnGuest(this.ec2, this.observedVcpuLimits, ctx, instance, request);
  }

  /** Terminates every live guest of the instance (destroy.ts); `pending` until `terminated`. */
  override async destroy(
    ctx: DriverContext,
    instance: Instance,
    _options?: DestroyOptions,
  ): Promise<DriverResult> {
    return terminateGuests(this.ec2, ctx, instance);
  }

  override async cleanup(_ctx: DriverContext, instance: Instance): Promise<void> {
    await requireDestroyed(this.ec2, instance);
  }

  /** Emulated: soft delete stops the instance (EBS kept, compute not billed). */
  override async softDelete(_ctx: DriverContext, instance: Instance): Promise<DriverResult> {
    return stopGuest(this.ec2, instance, 'soft_delete', false);
  }

  /** Emulated: restore starts the soft-deleted (stopped) instance again. */
  override async restore(_ctx: DriverContext, instance: Instance): Promise<DriverResult> {
    return startGuest(this.ec2, instance, 'restore');
  }

  /** CreateImage of the instance (images.ts); the snapshot task ends when it returns. */
  override async snapshot(
    ctx: DriverContext,
    instance: Instance,
    imageId: string,
    updateTaskState: UpdateTaskState,
  ): Promise<CompletionResult> {
    return snapshotToAmi(this.ec2, ctx, instance, imageId, updateTaskState);
  }

  override async triggerCrashDump(_ctx: DriverContext, instance: Instance): Promise<void> {
    await sendCrashDumpInterrupt(this.ec2, instance, await requireGuest(this.ec2, instance));
  }

  // ── Inventory of guests ──────────────────────────────────────────────────────────────────

  /**
   * The power state EC2 shows (power-state.ts). A guest the driver terminated is gone
   * (InstanceNotFound); one EC2 terminated by itself is CRASHED, so power sync notices.
   */
  override async getInfo(
    _ctx: DriverContext,
    instance: Instance,
    _useCache?: boolean,
  ): Promise<InstanceInfo> {
    const guest = await findGuest(this.ec2, instance);
    if (guest === null) throw new InstanceNotFoundError(instance.instance_id);
    const observation = observationOf(guest.raw);
    if (
      (guest.state === 'terminated' || guest.state === 'shutting-down') &&
      guest.intent === Ec2Intent.TERMINATE
    ) {
      throw new InstanceNotFoundError(instance.instance_id);
    }
    return { state: powerStateOf(observation), internalId: guest.ec2Id };
  }

  /** Guests are named by their Stratus instance id, as in the fake driver. */
  override async listInstances(_ctx: DriverContext): Promise<string[]> {
    return [...new Set((await listedGuests(this.ec2)).map((g) => g.instanceId))];
  }

  override async listInstanceUuids(_ctx: DriverContext): Promise<string[]> {
    return [...new Set((await listedGuests(this.ec2)).map((g) => g.instanceId))];
  }

  override async instanceExists(_ctx: DriverContext, instance: Instance): Promise<boolean> {
    const guest = await findGuest(this.ec2, instance);
    return guest !== null && EXISTING_STATES.includes(guest.state);
  }

  override async getNumInstances(ctx: DriverContext): Promise<number> {
    return (await this.listInstanceUuids(ctx)).length;
  }

  /**
   * The Stratus instance an EC2 instance belongs to, and its node; null for an instance
   * without this deployment's tag (another deployment's, or not Stratus's at all). A just
   * launched instance may be unknown to EC2's reads for a while: NotFound is retried for the
   * eventual-consistency grace before the answer is null.
   */
  async findByEc2InstanceId(
    ec2InstanceId: string,
  ): Promise<{ instanceId: string; node: string } | null> {
    const raw = await describeById(this.ec2, ec2InstanceId);
    const guest = raw === null ? null : guestOf(raw);
    return guest === null ? null : { instanceId: guest.instanceId, node: guest.node };
  }

  /**
   * Translates an EC2 state-change notification (detail `instance-id`, `state`, and the event's
   * `time`) into the lifecycle event that completes a pending task, or null when it completes
   * nothing; takes the next step of an intent-driven emulation (power.ts).
   */
  async onStateChange(
    ec2InstanceId: string,
    state: string,
    occurredAt: string = this.now().toISOString(),
  ): Promise<LifecycleEvent | null> {
    return stateChangeEvent(this.ec2, ec2InstanceId, state, occurredAt);
  }

  // ── Power (power.ts) ─────────────────────────────────────────────────────────────────────

  /** SOFT: RebootInstances. HARD (emulated): forced stop, then start on `stopped`. */
  override async reboot(
    ctx: DriverContext,
    instance: Instance,
    rebootType: RebootType,
  ): Promise<DriverResult> {
    return rebootGuest(this.ec2, ctx, instance, rebootType);
  }

  /**
   * StopInstances; `timeout` 0 (Nova's forced power off) stops with Force. A graceful stop is
   * left to EC2 and the guest: EC2 has no "escalate after N seconds" (Ironic's soft→hard), so a
   * guest that ignores ACPI stays `stopping` until the sweeper's deadline.
   */
  override async powerOff(
    _ctx: DriverContext,
    instance: Instance,
    options?: PowerOffOptions,
  ): Promise<DriverResult> {
    return stopGuest(this.ec2, instance, 'power_off', (options?.timeout ?? 0) === 0);
  }

  override async powerOn(_ctx: DriverContext, instance: Instance): Promise<DriverResult> {
    return startGuest(this.ec2, instance, 'power_on');
  }

  /** Emulated by hibernation, for instances launched hibernation-enabled only. */
  override async suspend(_ctx: DriverContext, instance: Instance): Promise<DriverResult> {
    return suspendGuest(this.ec2, instance);
  }

  /** Emulated: starts a hibernated instance (intent `resume`). */
  override async resume(ctx: DriverContext, instance: Instance): Promise<DriverResult> {
    return resumeGuest(this.ec2, ctx, instance);
  }

  /** Nothing to do: EC2 keeps an instance's state across host events by itself. */
  override async resumeStateOnHostBoot(
    _ctx: DriverContext,
    instance: Instance,
  ): Promise<DriverResult> {
    const guest = await requireGuest(this.ec2, instance);
    return { status: 'done', powerState: powerStateOf(observationOf(guest.raw)) };
  }

  // ── Resize in place, emulated (resize.ts) ─────────────────────────────────────────────────

  /** Stops the instance; its type changes in finish_migration (same availability zone only). */
  override async migrateDiskAndPowerOff(
    _ctx: DriverContext,
    instance: Instance,
    request: MigrateDiskRequest,
  ): Promise<MigrateDiskResult> {
    return stopForResize(this.ec2, instance, request);
  }

  /** ModifyInstanceAttribute (the instance is stopped), re-tag the node, start when asked. */
  override async finishMigration(
    _ctx: DriverContext,
    migration: MigrationInfo,
    instance: Instance,
    request: FinishMigrationRequest,
  ): Promise<DriverResult> {
    return retype(
      this.ec2,
      instance,
      { node: migration.dest_node, powerOn: request.powerOn },
      'finish_migration',
    );
  }

  /** Nothing to remove: the resized instance is the same EC2 instance. */
  override async confirmMigration(
    _ctx: DriverContext,
    _migration: MigrationInfo,
    _instance: Instance,
  ): Promise<void> {}

  /** Back to the old type; a running instance is stopped first (two stops on EC2). */
  override async finishRevertMigration(
    _ctx: DriverContext,
    instance: Instance,
    migration: MigrationInfo,
    options: { powerOn: boolean },
  ): Promise<DriverResult> {
    return revertResize(this.ec2, instance, migration.source_node, options.powerOn);
  }

  // ── Volumes (volumes.ts) ─────────────────────────────────────────────────────────────────

  override async getDeviceNameForInstance(
    _ctx: DriverContext,
    instance: Instance,
    bdms: BlockDeviceMapping[],
    _newBdm: BlockDeviceMapping,
  ): Promise<string> {
    return freeDeviceName(instance, await requireGuest(this.ec2, instance), bdms);
  }

  override async attachVolume(
    _ctx: DriverContext,
    instance: Instance,
    request: VolumeAttachRequest,
  ): Promise<void> {
    await attachVolume(this.ec2, instance, await requireGuest(this.ec2, instance), request);
  }

  override async detachVolume(
    _ctx: DriverContext,
    instance: Instance,
    request: VolumeDetachRequest,
  ): Promise<void> {
    await detachVolume(this.ec2, instance, await requireGuest(this.ec2, instance), request);
  }

  /**
   * Emulated: EBS has no host-side connector. The volume service needs only the node; the
   * volume id travels in connection_info (what Omni's Cinder EBS driver did).
   */
  override async getVolumeConnector(
    _ctx: DriverContext,
    instance: Instance,
  ): Promise<VolumeConnector> {
    return { ip: '', initiator: 'aws-ebs', host: instance.node ?? '' };
  }

  // ── Network (network.ts) ─────────────────────────────────────────────────────────────────

  /** A secondary interface: an existing ENI or a new one in the network's subnet. */
  override async attachInterface(
    ctx: DriverContext,
    instance: Instance,
    request: InterfaceAttachRequest,
  ): Promise<InstancePort> {
    const guest = await requireGuest(this.ec2, instance);
    return attachInterface(this.ec2, ctx, instance, guest, request);
  }

  /** Detaches a secondary interface, and deletes it when the driver created it. */
  override async detachInterface(
    _ctx: DriverContext,
    instance: Instance,
    portId: string,
  ): Promise<void> {
    const guest = await requireGuest(this.ec2, instance);
    await detachInterface(this.ec2, instance, guest, portId);
  }

  /** EC2 plugs an ENI when it is attached: there is nothing to plug or unplug separately. */
  override async plugVifs(
    _ctx: DriverContext,
    _instance: Instance,
    _networkInfo: InstancePort[],
  ): Promise<void> {}

  override async unplugVifs(
    _ctx: DriverContext,
    _instance: Instance,
    _networkInfo: InstancePort[],
  ): Promise<void> {}

  // ── Consoles and diagnostics (diagnostics.ts) ────────────────────────────────────────────

  override async getConsoleOutput(_ctx: DriverContext, instance: Instance): Promise<string> {
    return consoleOutput(this.ec2, instance, await requireGuest(this.ec2, instance));
  }

  override async getInstanceDiagnostics(
    _ctx: DriverContext,
    instance: Instance,
  ): Promise<InstanceDiagnostics> {
    const guest = await requireGuest(this.ec2, instance);
    return instanceDiagnostics(this.ec2, this.instanceTypes, guest);
  }

  override async getDiagnostics(
    ctx: DriverContext,
    instance: Instance,
  ): Promise<Record<string, number | null>> {
    const d = await this.getInstanceDiagnostics(ctx, instance);
    const diagnostics: Record<string, number | null> = { memory: d.memory_details.maximum * 1024 };
    d.cpu_details.forEach((cpu) => (diagnostics[`cpu${cpu.id}_time`] = null));
    return diagnostics;
  }

  // ── Resources (capacity.ts) ──────────────────────────────────────────────────────────────

  override async getAvailableResource(
    _ctx: DriverContext,
    nodename: string,
  ): Promise<Ec2NodeResources | null> {
    return nodeResources(this.ec2, this.capacitySources, nodename);
  }

  override async updateProviderTree(
    ctx: DriverContext,
    nodename: string,
    settings: InventorySettings,
  ): Promise<NodeInventory | null> {
    const resources = await this.getAvailableResource(ctx, nodename);
    return resources === null ? null : nodeInventory(resources, settings);
  }
}
