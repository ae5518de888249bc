// One driver contract, two drivers: the same scenarios run against the fake driver (in its
// asynchronous mode, completing from its own events) and against the EC2 driver on moto_server.
// moto moves instances between states at once and sends no state-change events, so for EC2 a
// pending answer is completed the way production completes it: the state EC2 now shows is fed
// to the driver's onStateChange (which also takes the next step of an emulation, e.g. the start
// of a HARD reboot). The scenarios assert only what the contract promises (power state after
// completion, listings, idempotent retries, typed errors), never how a driver gets there.
//
// The second half runs the EC2 driver among instances it does not own (untagged, and tagged for
// another deployment, one even claiming the same Stratus instance id) and checks that nothing
// lists, finds or touches them.
import {
  CreateVolumeCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeSubnetsCommand,
  DescribeVolumesCommand,
  EC2Client,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type Instance as Ec2Instance,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Instance } from '../../../lib/compute/instance.ts';
import { PowerState, TaskState } from '../../../lib/compute/states.ts';
import type {
  ComputeDriver,
  DriverResult,
  VolumeConnectionInfo,
} from '../../../lib/virt/driver.ts';
import { Ec2Driver } from '../../../lib/virt/ec2/driver.ts';
import { defaultEc2Settings } from '../../../lib/virt/ec2/settings.ts';
import { TAG } from '../../../lib/virt/ec2/tags.ts';
import { DriverError } from '../../../lib/virt/errors.ts';
import { InMemoryLifecycleSink } from '../../../lib/virt/events.ts';
import {
  awsTestClientConfig,
  describeWithMoto,
  motoEndpoint,
  uniquePrefix,
} from '../../support/emulators.ts';
import { ctx, fakeSetup, makeInstance, spawnRequest } from '../../unit/virt/fixtures.ts';

/** What the scenarios need from a driver under test. */
interface Subject {
  driver: ComputeDriver;
  node: string;
  networkId: string;
  instance(): Instance;
  /** Completes a pending answer as the platform's events would. */
  settle(instance: Instance, result: DriverResult): Promise<void>;
  newVolume(instance: Instance): Promise<VolumeConnectionInfo>;
  volumeAttached(instance: Instance, volumeId: string): Promise<boolean>;
  mountpoint: string;
}

let command = 0;
const nextCtx = () => ctx(`contract-${(command += 1)}`);

function contractSuite(name: string, make: () => Promise<Subject>): void {
  describe(`${name}: ComputeDriver contract`, () => {
    let s: Subject;
    beforeAll(async () => {
      s = await make();
    });

    async function spawned(): Promise<Instance> {
      const vm = s.instance();
      const result = await s.driver.spawn(
        nextCtx(),
        vm,
        spawnRequest({ imageRef: vm.image_ref, requestedNetworks: [{ network_id: s.networkId }] }),
      );
      await s.settle(vm, result);
      return vm;
    }

    const power = async (vm: Instance) => (await s.driver.getInfo(nextCtx(), vm)).state;

    it('spawn: the guest runs, is listed and exists; a retried spawn changes nothing', async () => {
      const vm = s.instance();
      const c = nextCtx();
      const request = spawnRequest({
        imageRef: vm.image_ref,
        requestedNetworks: [{ network_id: s.networkId }],
      });
      const first = await s.driver.spawn(c, vm, request);
      expect(first.ports).toHaveLength(1);
      expect(first.ports[0]?.network_id).toBe(s.networkId);
      await s.settle(vm, first);
      expect(await power(vm)).toBe(PowerState.RUNNING);
      expect(await s.driver.listInstanceUuids(nextCtx())).toContain(vm.instance_id);
      expect(await s.driver.listInstances(nextCtx())).toContain(vm.instance_id);
      expect(await s.driver.instanceExists(nextCtx(), vm)).toBe(true);

      const again = await s.driver.spawn(c, vm, request);
      expect(again).toMatchObject({ status: 'done', powerState: PowerState.RUNNING });
      expect(
        (await s.driver.listInstanceUuids(nextCtx())).filter((id) => id === vm.instance_id),
      ).toHaveLength(1);
    });

    it('get_info of a guest the driver never created is InstanceNotFound', async () => {
      await expect(s.driver.getInfo(nextCtx(), s.instance())).rejects.toMatchObject({
        code: 'InstanceNotFound',
      });
    });

    it('power off, then power on', async () => {
      const vm = await spawned();
      await s.settle(vm, await s.driver.powerOff(nextCtx(), vm, { timeout: 0, retryInterval: 0 }));
      expect(await power(vm)).toBe(PowerState.SHUTDOWN);
      // Powering off what is off is done at once.
      expect(await s.driver.powerOff(nextCtx(), vm)).toMatchObject({
        status: 'done',
        powerState: PowerState.SHUTDOWN,
      });
      await s.settle(vm, await s.driver.powerOn(nextCtx(), vm));
      expect(await power(vm)).toBe(PowerState.RUNNING);
    });

    it('soft and hard reboot end RUNNING', async () => {
      const vm = await spawned();
      await s.settle(vm, await s.driver.reboot(nextCtx(), vm, 'SOFT'));
      expect(await power(vm)).toBe(PowerState.RUNNING);
      await s.settle(vm, await s.driver.reboot(nextCtx(), vm, 'HARD'));
      expect(await power(vm)).toBe(PowerState.RUNNING);
    });

    it('snapshot walks the image task states and completes', async () => {
      const vm = await spawned();
      const states: (string | null | undefined)[][] = [];
      const result = await s.driver.snapshot(nextCtx(), vm, 'image-snap-1', async (t, e) => {
        states.push([t, e]);
      });
      expect(result).toEqual({ status: 'done' });
      expect(states).toEqual([
        [TaskState.IMAGE_PENDING_UPLOAD, undefined],
        [TaskState.IMAGE_UPLOADING, TaskState.IMAGE_PENDING_UPLOAD],
      ]);
    });

    it('attach and detach a volume (both idempotent)', async () => {
      const vm = await spawned();
      const connectionInfo = await s.newVolume(vm);
      const attach = { connectionInfo, mountpoint: s.mountpoint };
      await s.driver.attachVolume(nextCtx(), vm, attach);
      await s.driver.attachVolume(nextCtx(), vm, attach);
      expect(await s.volumeAttached(vm, connectionInfo.volume_id)).toBe(true);
      await s.driver.detachVolume(nextCtx(), vm, attach);
      await s.driver.detachVolume(nextCtx(), vm, attach);
      expect(await s.volumeAttached(vm, connectionInfo.volume_id)).toBe(false);
    });

    it('attach and detach an interface; detaching an unknown port fails', async () => {
      const vm = await spawned();
      const c = nextCtx();
      const port = await s.driver.attachInterface(c, vm, { network_id: s.networkId });
      expect(port.network_id).toBe(s.networkId);
      expect(port.port_id).not.toBe('');
      // The same command again gets the same port back.
      expect((await s.driver.attachInterface(c, vm, { network_id: s.networkId })).port_id).toBe(
        port.port_id,
      );
      await s.driver.detachInterface(nextCtx(), vm, port.port_id);
      await expect(s.driver.detachInterface(nextCtx(), vm, port.port_id)).rejects.toSatisfy(
        (e: unknown) => e instanceof DriverError && e.novaException === 'InterfaceDetachFailed',
      );
    });

    it('get_available_resource counts the node guests; an unknown node is null', async () => {
      const before = await s.driver.getAvailableResource(nextCtx(), s.node);
      const vm = await spawned();
      const after = await s.driver.getAvailableResource(nextCtx(), s.node);
      expect(after?.vcpus).toBeGreaterThan(0);
      expect(after?.hypervisor_hostname).toBe(s.node);
      expect((after?.vcpus_used ?? 0) - (before?.vcpus_used ?? 0)).toBe(vm.flavor.vcpus);
      expect((after?.memory_mb_used ?? 0) - (before?.memory_mb_used ?? 0)).toBe(
        vm.flavor.memory_mb,
      );
      expect(await s.driver.getAvailableNodes(nextCtx())).toContain(s.node);
      expect(await s.driver.getAvailableResource(nextCtx(), 'no-such-node')).toBeNull();
    });

    it('destroy: the guest is gone, unlisted, and destroying again is done', async () => {
      const vm = await spawned();
      await s.settle(vm, await s.driver.destroy(nextCtx(), vm));
      await expect(s.driver.getInfo(nextCtx(), vm)).rejects.toMatchObject({
        code: 'InstanceNotFound',
      });
      expect(await s.driver.listInstanceUuids(nextCtx())).not.toContain(vm.instance_id);
      expect(await s.driver.instanceExists(nextCtx(), vm)).toBe(false);
      expect(await s.driver.destroy(nextCtx(), vm)).toEqual({
        status: 'done',
        powerState: PowerState.NOSTATE,
      });
    });
  });
}

// ── the fake driver ────────────────────────────────────────────────────────────────────────

contractSuite('fake driver (async)', async () => {
  const setup = fakeSetup({ async: true });
  return {
    driver: setup.driver,
    node: 'fake-node-1',
    networkId: 'net-a',
    mountpoint: '/dev/vdb',
    instance: () => makeInstance({ node: 'fake-node-1' }),
    // The fake reports its own events; the guest is already in its final state.
    settle: async () => {},
    newVolume: async () => ({
      volume_id: `vol-${Math.random().toString(16).slice(2)}`,
      driver_volume_type: 'fake',
      data: {},
    }),
    volumeAttached: async (vm, volumeId) =>
      Object.values((await setup.store.get('fake-node-1', vm.instance_id))?.volumes ?? {}).includes(
        volumeId,
      ),
  };
});

// ── the EC2 driver on moto ─────────────────────────────────────────────────────────────────

const ZONE = 'us-east-1a';
const POOL = 'ec2:us-east-1a';

interface MotoWorld {
  client: EC2Client;
  ami: string;
  subnet: string;
  deployment: string;
  driver: Ec2Driver;
}

async function motoWorld(): Promise<MotoWorld> {
  const client = new EC2Client(awsTestClientConfig(motoEndpoint()));
  const images = await client.send(new DescribeImagesCommand({ Owners: ['amazon'] }));
  const ami = images.Images?.find(
    (i) => i.RootDeviceName && /^ami-[0-9a-f]+$/.test(i.ImageId ?? ''),
  )?.ImageId;
  const subnets = await client.send(
    new DescribeSubnetsCommand({ Filters: [{ Name: 'availability-zone', Values: [ZONE] }] }),
  );
  const subnet = subnets.Subnets?.[0]?.SubnetId;
  if (!ami || !subnet) throw new Error('moto has no AMI or subnet to launch with');
  const deployment = uniquePrefix('ec2');
  const driver = new Ec2Driver({
    client,
    deployment,
    sink: new InMemoryLifecycleSink(),
    settings: defaultEc2Settings({
      subnets: { 'net-a': subnet },
      images: { 'image-1': ami },
      pools: [{ node: POOL, availability_zone: ZONE, vcpus: 64 }],
      not_found_grace_seconds: 0,
    }),
  });
  return { client, ami, subnet, deployment, driver };
}

async function ec2InstancesOf(client: EC2Client, filters: { Name: string; Values: string[] }[]) {
  const out = await client.send(new DescribeInstancesCommand({ Filters: filters }));
  return out.Reservations?.flatMap((r) => r.Instances ?? []) ?? [];
}

async function describeOne(client: EC2Client, ec2Id: string): Promise<Ec2Instance | undefined> {
  const out = await client.send(new DescribeInstancesCommand({ InstanceIds: [ec2Id] }));
  return out.Reservations?.[0]?.Instances?.[0];
}

describeWithMoto('EC2 driver on moto_server', () => {
  let world: MotoWorld;
  beforeAll(async () => {
    world = await motoWorld();
  });
  afterAll(() => world?.client.destroy());

  /** This deployment's EC2 instances of one Stratus instance. */
  const ec2Of = (vm: Instance) =>
    ec2InstancesOf(world.client, [
      { Name: `tag:${TAG.deployment}`, Values: [world.deployment] },
      { Name: `tag:${TAG.instanceId}`, Values: [vm.instance_id] },
    ]);

  contractSuite('ec2 driver (moto)', async () => {
    await Promise.resolve();
    return {
      get driver() {
        return world.driver;
      },
      node: POOL,
      networkId: 'net-a',
      mountpoint: '/dev/sdf',
      instance: () =>
        makeInstance({
          node: POOL,
          image_ref: 'image-1',
          availability_zone: ZONE,
          security_groups: [],
        }),
      settle: async (vm, result) => {
        if (result.status !== 'pending') return;
        // Feed the states EC2 shows until the driver has nothing more to do (a HARD reboot's
        // stopped → start → running takes two rounds).
        for (let round = 0; round < 3; round += 1) {
          for (const raw of await ec2Of(vm)) {
            await world.driver.onStateChange(raw.InstanceId!, raw.State!.Name!);
          }
        }
      },
      newVolume: async () => {
        const volume = await world.client.send(
          new CreateVolumeCommand({ AvailabilityZone: ZONE, Size: 1 }),
        );
        return { volume_id: volume.VolumeId!, driver_volume_type: 'aws-ebs', data: {} };
      },
      volumeAttached: async (_vm, volumeId) => {
        const out = await world.client.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
        return (out.Volumes?.[0]?.Attachments ?? []).some((a) => a.State !== 'detached');
      },
    };
  });

  describe('what the driver leaves on EC2', () => {
    it('spawn tags the instance for the deployment, its node and usage; reboot HARD restarts via the intent', async () => {
      const vm = makeInstance({ node: POOL, image_ref: 'image-1', security_groups: [] });
      const result = await world.driver.spawn(
        ctx('launch-tags'),
        vm,
        spawnRequest({ imageRef: 'image-1' }),
      );
      expect(result).toMatchObject({ status: 'pending', expect: 'started' });
      const [raw] = await ec2Of(vm);
      const tags = Object.fromEntries((raw?.Tags ?? []).map((t) => [t.Key, t.Value]));
      expect(tags).toMatchObject({
        [TAG.deployment]: world.deployment,
        [TAG.instanceId]: vm.instance_id,
        [TAG.node]: POOL,
        [TAG.commandId]: 'launch-tags',
        [TAG.usage]: `${vm.flavor.vcpus}/${vm.flavor.memory_mb}/${vm.flavor.root_gb + vm.flavor.ephemeral_gb}`,
      });
      expect(raw?.InstanceType).toBe('t3.small'); // m1.small's documented mapping
      expect(raw?.Placement?.AvailabilityZone).toBe(ZONE);

      expect(await world.driver.reboot(ctx('hard'), vm, 'HARD')).toMatchObject({
        status: 'pending',
        expect: 'started',
      });
      const stopped = await describeOne(world.client, raw!.InstanceId!);
      expect(stopped?.State?.Name).toBe('stopped');
      // The stopped event is a step, not a completion; the driver starts the instance.
      expect(await world.driver.onStateChange(raw!.InstanceId!, 'stopped')).toBeNull();
      const restarted = await describeOne(world.client, raw!.InstanceId!);
      expect(restarted?.State?.Name).toBe('running');
      expect(restarted?.Tags?.some((t) => t.Key === TAG.intent)).toBe(false);
      expect(await world.driver.onStateChange(raw!.InstanceId!, 'running')).toMatchObject({
        instanceId: vm.instance_id,
        transition: 'started',
        node: POOL,
        source: 'ec2',
      });
    });

    it('findByEc2InstanceId maps our instance to its Stratus id and node', async () => {
      const vm = makeInstance({ node: POOL, image_ref: 'image-1', security_groups: [] });
      await world.driver.spawn(ctx('find-me'), vm, spawnRequest({ imageRef: 'image-1' }));
      const [raw] = await ec2Of(vm);
      expect(await world.driver.findByEc2InstanceId(raw!.InstanceId!)).toEqual({
        instanceId: vm.instance_id,
        node: POOL,
      });
    });

    it('destroy of a terminated-by-us guest reports STOPPED on its terminated event', async () => {
      const vm = makeInstance({ node: POOL, image_ref: 'image-1', security_groups: [] });
      await world.driver.spawn(ctx('to-destroy'), vm, spawnRequest({ imageRef: 'image-1' }));
      const [raw] = await ec2Of(vm);
      await world.driver.destroy(ctx('destroy-it'), vm);
      expect(await world.driver.onStateChange(raw!.InstanceId!, 'terminated')).toMatchObject({
        transition: 'stopped',
        instanceId: vm.instance_id,
      });
    });
  });

  describe('instances the deployment does not own', () => {
    let untagged: string;
    let otherDeployment: string;
    let sameIdOtherDeployment: string;
    let vm: Instance;

    const launchForeign = async (tags: { Key: string; Value: string }[]) => {
      const out = await world.client.send(
        new RunInstancesCommand({
          ImageId: world.ami,
          InstanceType: 't3.micro',
          MinCount: 1,
          MaxCount: 1,
          Placement: { AvailabilityZone: ZONE },
          ...(tags.length > 0
            ? { TagSpecifications: [{ ResourceType: 'instance', Tags: tags }] }
            : {}),
        }),
      );
      return out.Instances![0]!.InstanceId!;
    };

    beforeAll(async () => {
      vm = makeInstance({ node: POOL, image_ref: 'image-1', security_groups: [] });
      untagged = await launchForeign([]);
      otherDeployment = await launchForeign([
        { Key: TAG.deployment, Value: `${world.deployment}-other` },
        { Key: TAG.instanceId, Value: 'someone-elses-instance' },
        { Key: TAG.node, Value: POOL },
        { Key: TAG.usage, Value: '64/1000/1' },
      ]);
      // Another deployment's instance that even claims our Stratus instance id.
      sameIdOtherDeployment = await launchForeign([
        { Key: TAG.deployment, Value: `${world.deployment}-other` },
        { Key: TAG.instanceId, Value: vm.instance_id },
        { Key: TAG.node, Value: POOL },
      ]);
    });

    afterAll(async () => {
      await world.client.send(
        new TerminateInstancesCommand({
          InstanceIds: [untagged, otherDeployment, sameIdOtherDeployment],
        }),
      );
    });

    const stateOf = async (ec2Id: string) => (await describeOne(world.client, ec2Id))?.State?.Name;

    it('are not listed, found or counted', async () => {
      const uuids = await world.driver.listInstanceUuids(ctx());
      expect(uuids).not.toContain('someone-elses-instance');
      expect(uuids).not.toContain(vm.instance_id);
      expect(await world.driver.listInstances(ctx())).not.toContain('someone-elses-instance');
      for (const id of [untagged, otherDeployment, sameIdOtherDeployment]) {
        expect(await world.driver.findByEc2InstanceId(id)).toBeNull();
        expect(await world.driver.onStateChange(id, 'running')).toBeNull();
      }
      await expect(world.driver.getInfo(ctx(), vm)).rejects.toMatchObject({
        code: 'InstanceNotFound',
      });
      expect(await world.driver.instanceExists(ctx(), vm)).toBe(false);
      const resources = await world.driver.getAvailableResource(ctx(), POOL);
      // The foreign instance's 64-vCPU usage tag on our node name is not ours to count.
      expect(resources?.vcpus_used ?? 0).toBeLessThan(64);
    });

    it('are not touched by destroy, power or reboot of a Stratus instance with the same id', async () => {
      expect(await world.driver.destroy(ctx('foreign-destroy'), vm)).toEqual({
        status: 'done',
        powerState: PowerState.NOSTATE,
      });
      await expect(world.driver.powerOff(ctx(), vm)).rejects.toMatchObject({
        code: 'InstanceNotFound',
      });
      await expect(world.driver.reboot(ctx(), vm, 'HARD')).rejects.toMatchObject({
        code: 'InstanceNotFound',
      });
      for (const id of [untagged, otherDeployment, sameIdOtherDeployment]) {
        expect(await stateOf(id)).toBe('running');
      }
    });

    it('stay running while the deployment spawns and destroys its own instance of that id', async () => {
      const result = await world.driver.spawn(
        ctx('own-of-same-id'),
        vm,
        spawnRequest({ imageRef: 'image-1' }),
      );
      expect(result.status).toBe('pending');
      const [ours] = await ec2Of(vm);
      expect(ours?.InstanceId).not.toBe(sameIdOtherDeployment);
      await world.driver.destroy(ctx('own-destroy'), vm);
      expect(await stateOf(ours!.InstanceId!)).toBe('terminated');
      for (const id of [untagged, otherDeployment, sameIdOtherDeployment]) {
        expect(await stateOf(id)).toBe('running');
      }
    });
  });
});
