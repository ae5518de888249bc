// The EC2 driver under EC2's failures (reference §5), with aws-sdk-client-mock standing in for
// EC2: every fault an emulator cannot produce on demand, each with the outcome the reference
// prescribes. Only client.send is mocked, so the SDK's own retries do not run here: what is
// tested is the driver's classification and its own bounded retries.
import {
  DescribeHostsCommand,
  DescribeImagesCommand,
  DescribeInstanceTypesCommand,
  DescribeInstancesCommand,
  EC2Client,
  type Instance as Ec2Instance,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  type RunInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Instance } from '../../../lib/compute/instance.ts';
import { isRetryable } from '../../../lib/compute/operations/common.ts';
import { PowerState } from '../../../lib/compute/states.ts';
import { ErrorCode } from '../../../lib/errors.ts';
import { isComputeResourcesUnavailable } from '../../../lib/resources/errors.ts';
import { Ec2Driver, clientToken, notFoundDelays } from '../../../lib/virt/ec2/driver.ts';
import { Ec2CapacityError, Ec2QuotaExceededError } from '../../../lib/virt/ec2/errors.ts';
import { defaultEc2Settings } from '../../../lib/virt/ec2/settings.ts';
import { TAG } from '../../../lib/virt/ec2/tags.ts';
import { DriverError, NotSupportedError } from '../../../lib/virt/errors.ts';
import { ctx, makeInstance, spawnRequest } from './fixtures.ts';

const POOL = 'ec2:us-east-1a';
const DEPLOYMENT = 'stratus-test';
const AMI = 'ami-0123456789abcdef0';

const ec2 = mockClient(EC2Client);
let sleeps: number[];
let logged: { message: string; fields: unknown }[];
let now: Date;

function ec2Error(code: string, message = code, status = 400): Error {
  return Object.assign(new Error(message), {
    name: code,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status },
  });
}

function driver(settings: Parameters<typeof defaultEc2Settings>[0] = {}): Ec2Driver {
  return new Ec2Driver({
    client: new EC2Client({ region: 'us-east-1' }),
    deployment: DEPLOYMENT,
    settings: defaultEc2Settings({
      pools: [{ node: POOL, availability_zone: 'us-east-1a', vcpus: 64 }],
      ...settings,
    }),
    clock: () => now,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    logger: {
      info: (message, fields) => logged.push({ message, fields }),
      warn: (message, fields) => logged.push({ message, fields }),
    },
  });
}

function vm(overrides: Partial<Instance> = {}): Instance {
  return makeInstance({
    node: POOL,
    image_ref: AMI,
    security_groups: [],
    flavor: {
      name: 'm1.small',
      flavorid: '2',
      id: 2,
      vcpus: 1,
      memory_mb: 2048,
      root_gb: 0,
      ephemeral_gb: 0,
    },
    ...overrides,
  });
}

function ec2Instance(
  instance: Instance,
  state: string,
  extra: Partial<Ec2Instance> = {},
  tags: { Key: string; Value: string }[] = [],
): Ec2Instance {
  return {
    InstanceId: 'i-0aaaabbbbccccdddd',
    InstanceType: 't3.small',
    State: { Name: state as never },
    Tags: [
      { Key: TAG.deployment, Value: DEPLOYMENT },
      { Key: TAG.instanceId, Value: instance.instance_id },
      { Key: TAG.node, Value: POOL },
      { Key: TAG.commandId, Value: 'cmd-launch' },
      ...tags,
    ],
    ...extra,
  };
}

const describing = (...instances: Ec2Instance[]) => ({
  Reservations: instances.length === 0 ? [] : [{ Instances: instances }],
});

beforeEach(() => {
  ec2.reset();
  sleeps = [];
  logged = [];
  now = new Date('2026-03-01T12:00:00.000Z');
  ec2.on(DescribeInstancesCommand).resolves(describing());
  ec2.on(DescribeImagesCommand).resolves({ Images: [] });
});

describe('capacity', () => {
  it('InsufficientInstanceCapacity at launch is ComputeResourcesUnavailable (reschedulable), not a build abort', async () => {
    ec2.on(RunInstancesCommand).rejects(ec2Error('InsufficientInstanceCapacity'));
    const error = await driver()
      .spawn(ctx(), vm(), spawnRequest({ imageRef: AMI }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Ec2CapacityError);
    expect(isComputeResourcesUnavailable(error)).toBe(true);
    expect((error as Ec2CapacityError).node).toBe(POOL);
    expect((error as Error).message).toMatch(
      /^Insufficient compute resources: EC2 InsufficientInstanceCapacity/,
    );
    expect(isRetryable(error)).toBe(false); // the compute layer moves on; SQS does not retry it
    expect(ec2.commandCalls(RunInstancesCommand)).toHaveLength(1);
  });

  it('InsufficientInstanceCapacity when starting a stopped instance is InstancePowerOnFailure', async () => {
    const instance = vm();
    ec2.on(DescribeInstancesCommand).resolves(describing(ec2Instance(instance, 'stopped')));
    ec2.on(StartInstancesCommand).rejects(ec2Error('InsufficientInstanceCapacity'));
    const error = await driver()
      .powerOn(ctx(), instance)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DriverError);
    expect((error as DriverError).novaException).toBe('InstancePowerOnFailure');
  });

  it('VcpuLimitExceeded is a quota error that lowers the pool node to the reported limit', async () => {
    ec2
      .on(RunInstancesCommand)
      .rejects(
        ec2Error(
          'VcpuLimitExceeded',
          'You have requested more vCPU capacity than your current vCPU limit of 32 allows for the instance bucket that the specified instance type belongs to.',
        ),
      );
    const d = driver();
    expect((await d.getAvailableResource(ctx(), POOL))?.vcpus).toBe(64);
    const error = await d
      .spawn(ctx(), vm(), spawnRequest({ imageRef: AMI }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Ec2QuotaExceededError);
    expect(error).toMatchObject({ vcpuLimit: 32, refreshInventory: true, node: POOL });
    expect(isComputeResourcesUnavailable(error)).toBe(true);
    // The next resource audit sees the node as EC2 does.
    expect((await d.getAvailableResource(ctx(), POOL))?.vcpus).toBe(32);
  });
});

describe('throttling', () => {
  it('a RequestLimitExceeded burst is retried with backoff, then the launch goes through once', async () => {
    ec2
      .on(RunInstancesCommand)
      .rejectsOnce(ec2Error('RequestLimitExceeded'))
      .rejectsOnce(ec2Error('RequestLimitExceeded'))
      .rejectsOnce(ec2Error('RequestLimitExceeded'))
      .resolves({ Instances: [{ InstanceId: 'i-0aaaabbbbccccdddd' }] });
    const result = await driver().spawn(ctx('burst'), vm(), spawnRequest({ imageRef: AMI }));
    expect(result).toMatchObject({ status: 'pending', expect: 'started' });
    const calls = ec2.commandCalls(RunInstancesCommand);
    expect(calls).toHaveLength(4);
    // Every retry is the same launch: the same ClientToken.
    expect(new Set(calls.map((c) => c.args[0].input.ClientToken)).size).toBe(1);
    expect(sleeps).toHaveLength(3);
    expect(sleeps[2]!).toBeGreaterThan(sleeps[0]! / 2);
  });

  it('gives up after its bound and hands the throttling error back for SQS to redeliver', async () => {
    ec2.on(RunInstancesCommand).rejects(ec2Error('RequestLimitExceeded'));
    const error = await driver()
      .spawn(ctx(), vm(), spawnRequest({ imageRef: AMI }))
      .catch((e: unknown) => e);
    expect((error as Error).name).toBe('RequestLimitExceeded');
    expect(isRetryable(error)).toBe(true);
    expect(ec2.commandCalls(RunInstancesCommand)).toHaveLength(5); // 1 + 4 retries
    expect(sleeps).toHaveLength(4);
    expect(sleeps.every((ms) => ms <= 5000)).toBe(true);
  });
});

describe('eventual consistency right after a launch', () => {
  it('findByEc2InstanceId retries InvalidInstanceID.NotFound until the instance is visible', async () => {
    const instance = vm();
    ec2
      .on(DescribeInstancesCommand)
      .rejectsOnce(ec2Error('InvalidInstanceID.NotFound'))
      .rejectsOnce(ec2Error('InvalidInstanceID.NotFound'))
      .resolves(describing(ec2Instance(instance, 'running')));
    expect(await driver().findByEc2InstanceId('i-0aaaabbbbccccdddd')).toEqual({
      instanceId: instance.instance_id,
      node: POOL,
    });
    expect(sleeps).toEqual([500, 1000]);
  });

  it('gives up after the grace period: an unknown instance is not ours', async () => {
    ec2.on(DescribeInstancesCommand).rejects(ec2Error('InvalidInstanceID.NotFound'));
    expect(await driver({ not_found_grace_seconds: 5 }).findByEc2InstanceId('i-0ffff')).toBeNull();
    expect(sleeps).toEqual(notFoundDelays(5000));
    expect(sleeps.reduce((a, b) => a + b, 0)).toBe(5000);
  });

  it('get_info of a just-built instance waits for EC2 to show it; an old one is not found at once', async () => {
    const young = vm({ created_at: new Date(now.getTime() - 2000).toISOString() });
    ec2
      .on(DescribeInstancesCommand)
      .resolvesOnce(describing())
      .resolvesOnce(describing())
      .resolves(describing(ec2Instance(young, 'running')));
    expect((await driver().getInfo(ctx(), young)).state).toBe(PowerState.RUNNING);
    expect(sleeps).toHaveLength(2);

    ec2.on(DescribeInstancesCommand).resolves(describing());
    sleeps = [];
    const old = vm({ created_at: '2020-01-01T00:00:00.000Z' });
    await expect(driver().getInfo(ctx(), old)).rejects.toMatchObject({ code: 'InstanceNotFound' });
    expect(sleeps).toEqual([]);
  });
});

describe('state and feature refusals', () => {
  it('IncorrectInstanceState is InstanceInvalidState (409) naming the operation', async () => {
    const instance = vm();
    ec2.on(DescribeInstancesCommand).resolves(describing(ec2Instance(instance, 'running')));
    ec2
      .on(StopInstancesCommand)
      .rejects(
        ec2Error(
          'IncorrectInstanceState',
          'The instance is not in a state from which it can be stopped.',
        ),
      );
    const error = await driver()
      .powerOff(ctx(), instance)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DriverError);
    expect(error).toMatchObject({
      novaException: 'InstanceInvalidState',
      code: ErrorCode.InstanceInvalidState,
      status: 409,
    });
    expect((error as Error).message).toContain(`Instance ${instance.instance_id}`);
    expect((error as Error).message).toContain('power_off');
  });

  it('stopping a guest terminated outside Stratus succeeds as CRASHED without calling EC2', async () => {
    const instance = vm();
    ec2.on(DescribeInstancesCommand).resolves(describing(ec2Instance(instance, 'terminated')));
    // The power sync's stop of a CRASHED instance settles it, instead of a fault per sync.
    expect(await driver().powerOff(ctx(), instance)).toEqual({
      status: 'done',
      powerState: PowerState.CRASHED,
    });
    expect(ec2.commandCalls(StopInstancesCommand)).toHaveLength(0);
    // One the driver itself terminated is gone, not crashed: power_off says so.
    ec2
      .on(DescribeInstancesCommand)
      .resolves(
        describing(
          ec2Instance(instance, 'terminated', {}, [{ Key: TAG.intent, Value: 'terminate' }]),
        ),
      );
    await expect(driver().powerOff(ctx(), instance)).rejects.toMatchObject({
      name: 'InstanceNotFound',
    });
  });

  it('UnsupportedHibernationConfiguration is a clear not-supported (501), not a cold stop', async () => {
    const instance = vm();
    ec2
      .on(DescribeInstancesCommand)
      .resolves(
        describing(ec2Instance(instance, 'running', { HibernationOptions: { Configured: true } })),
      );
    ec2.on(StopInstancesCommand).rejects(ec2Error('UnsupportedHibernationConfiguration'));
    const error = await driver()
      .suspend(ctx(), instance)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotSupportedError);
    expect(error).toMatchObject({ status: 501, method: 'suspend' });
    expect((error as Error).message).toMatch(/cannot hibernate/);
    // Only the hibernating stop was sent: no plain StopInstances fallback.
    expect(ec2.commandCalls(StopInstancesCommand).map((c) => c.args[0].input.Hibernate)).toEqual([
      true,
    ]);
  });

  it('suspend of an instance launched without hibernation is refused before any stop', async () => {
    const instance = vm();
    ec2.on(DescribeInstancesCommand).resolves(describing(ec2Instance(instance, 'running')));
    await expect(driver().suspend(ctx(), instance)).rejects.toBeInstanceOf(NotSupportedError);
    expect(ec2.commandCalls(StopInstancesCommand)).toHaveLength(0);
  });

  it('a hibernated instance reads SUSPENDED and its resume answers pending RESUMED', async () => {
    const instance = vm();
    ec2.on(DescribeInstancesCommand).resolves(
      describing(
        ec2Instance(instance, 'stopped', {
          StateReason: { Code: 'Client.UserInitiatedHibernate' },
          HibernationOptions: { Configured: true },
        }),
      ),
    );
    ec2.on(StartInstancesCommand).resolves({});
    const d = driver();
    expect((await d.getInfo(ctx(), instance)).state).toBe(PowerState.SUSPENDED);
    expect(await d.resume(ctx(), instance)).toMatchObject({ status: 'pending', expect: 'resumed' });
  });
});

describe('secrets', () => {
  const password = 'S3cret-Adm1n-Pa55';
  const file = Buffer.from('ssh-key-material-do-not-leak').toString('base64');
  const ownUserData = Buffer.from('#!/bin/sh\necho private-bootstrap-token-42\n').toString(
    'base64',
  );

  it('reach RunInstances only as base64 UserData (cloud-init multipart), never tags or logs', async () => {
    ec2
      .on(RunInstancesCommand)
      .rejectsOnce(ec2Error('RequestLimitExceeded')) // something gets logged
      .resolves({ Instances: [{ InstanceId: 'i-0aaaabbbbccccdddd' }] });
    await driver().spawn(
      ctx(),
      vm(),
      spawnRequest({
        imageRef: AMI,
        adminPassword: password,
        userData: ownUserData,
        injectedFiles: [{ path: '/root/.ssh/authorized_keys', contents: file }],
      }),
    );
    const input = ec2.commandCalls(RunInstancesCommand)[0]!.args[0]
      .input as RunInstancesCommandInput;
    const decoded = Buffer.from(input.UserData!, 'base64').toString('utf8');
    expect(decoded).toContain('Content-Type: multipart/mixed');
    expect(decoded).toContain('#cloud-config');
    expect(decoded).toContain(password);
    expect(decoded).toContain(file); // the file stays base64 (write_files encoding b64)
    expect(decoded).toContain('echo private-bootstrap-token-42');
    expect(decoded).toContain('Content-Type: text/x-shellscript');
    const everythingElse = JSON.stringify({ ...input, UserData: undefined, logged });
    for (const secret of [password, file, ownUserData, 'private-bootstrap-token-42']) {
      expect(everythingElse).not.toContain(secret);
    }
    expect(logged.length).toBeGreaterThan(0);
  });

  it('user data alone is passed through unchanged', async () => {
    ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0aaaabbbbccccdddd' }] });
    await driver().spawn(ctx(), vm(), spawnRequest({ imageRef: AMI, userData: ownUserData }));
    expect(ec2.commandCalls(RunInstancesCommand)[0]!.args[0].input.UserData).toBe(ownUserData);
  });

  it('are removed from error messages, even when EC2 echoes them', async () => {
    ec2
      .on(RunInstancesCommand)
      .rejects(ec2Error('InvalidParameterValue', `Invalid value '${password}' in user data`));
    const error = await driver()
      .spawn(ctx(), vm(), spawnRequest({ imageRef: AMI, adminPassword: password }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DriverError);
    expect((error as DriverError).novaException).toBe('BuildAbortException');
    expect((error as Error).message).not.toContain(password);
    expect((error as Error).message).toContain('[redacted]');
  });
});

describe('launch request', () => {
  it('ClientToken comes from the command id and fits EC2 (64 chars), TagSpecifications tag on create', async () => {
    ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0aaaabbbbccccdddd' }] });
    const instance = vm();
    await driver().spawn(ctx('cmd-42'), instance, spawnRequest({ imageRef: AMI }));
    const input = ec2.commandCalls(RunInstancesCommand)[0]!.args[0].input;
    expect(input.ClientToken).toBe(clientToken('cmd-42', instance.instance_id, POOL));
    expect(input.ClientToken).toHaveLength(64);
    expect(clientToken('cmd-43', instance.instance_id, POOL)).not.toBe(input.ClientToken);
    expect(input.TagSpecifications?.map((t) => t.ResourceType)).toEqual([
      'instance',
      'volume',
      'network-interface',
    ]);
    expect(input.InstanceType).toBe('t3.small');
    expect(input.Placement).toEqual({ AvailabilityZone: 'us-east-1a' });
    expect(input.InstanceInitiatedShutdownBehavior).toBe('stop');
  });

  it('launches on a Dedicated Host node with Tenancy host, its current host id and Affinity', async () => {
    ec2.on(DescribeInstanceTypesCommand).resolves({
      InstanceTypes: [
        {
          InstanceType: 'm5.metal',
          VCpuInfo: { DefaultVCpus: 96 },
          MemoryInfo: { SizeInMiB: 393216 },
        },
      ],
    });
    ec2.on(DescribeHostsCommand).resolves({
      Hosts: [
        {
          HostId: 'h-0replacement0000',
          AvailabilityZone: 'us-east-1b',
          State: 'available',
          HostProperties: { InstanceFamily: 'm5', TotalVCpus: 96 },
          Tags: [
            { Key: TAG.deployment, Value: DEPLOYMENT },
            { Key: TAG.node, Value: 'dh-1' },
          ],
        },
        {
          HostId: 'h-0foreign00000000',
          State: 'available',
          HostProperties: { InstanceFamily: 'c5', TotalVCpus: 72 },
          Tags: [{ Key: TAG.deployment, Value: 'someone-else' }],
        },
      ],
    });
    ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0aaaabbbbccccdddd' }] });
    const d = driver({ dedicated_hosts: true, pools: [] });
    expect(await d.getAvailableNodes(ctx())).toEqual(['dh-1']);
    const resources = await d.getAvailableResource(ctx(), 'dh-1');
    expect(resources).toMatchObject({
      vcpus: 96,
      memory_mb: 393216,
      instance_type_family: 'm5',
      availability_zone: 'us-east-1b',
    });
    await d.spawn(
      ctx(),
      vm({ node: 'dh-1', flavor: { ...vm().flavor, name: 'm5.large' } }),
      spawnRequest({ imageRef: AMI }),
    );
    expect(ec2.commandCalls(RunInstancesCommand)[0]!.args[0].input.Placement).toEqual({
      AvailabilityZone: 'us-east-1b',
      Tenancy: 'host',
      HostId: 'h-0replacement0000',
      Affinity: 'host',
    });
  });
});
