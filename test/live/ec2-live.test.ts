// The EC2 driver against a real AWS account: launch, observe, stop, terminate one small
// instance. It costs money (a t3.micro for a few minutes) and needs EC2 permissions, so it runs
// only when asked: STRATUS_LIVE_AWS=1 plus credentials the SDK can find (env keys, a profile,
// SSO, a role). Region: STRATUS_LIVE_REGION, else AWS_REGION. Everything it launches carries a
// unique `stratus:deployment` tag and is terminated at the end, even when a step fails.
//
//   STRATUS_LIVE_AWS=1 AWS_PROFILE=sandbox STRATUS_LIVE_REGION=eu-west-1 \
//     npx vitest run --project live
import {
  DescribeImagesCommand,
  DescribeInstancesCommand,
  EC2Client,
  TerminateInstancesCommand,
  waitUntilInstanceRunning,
  waitUntilInstanceStopped,
  waitUntilInstanceTerminated,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PowerState } from '../../lib/compute/states.ts';
import { Ec2Driver } from '../../lib/virt/ec2/driver.ts';
import { defaultEc2Settings } from '../../lib/virt/ec2/settings.ts';
import { TAG } from '../../lib/virt/ec2/tags.ts';
import { InMemoryLifecycleSink } from '../../lib/virt/events.ts';
import { ctx, makeInstance, spawnRequest } from '../unit/virt/fixtures.ts';

const CREDENTIAL_HINTS = [
  'AWS_ACCESS_KEY_ID',
  'AWS_PROFILE',
  'AWS_WEB_IDENTITY_TOKEN_FILE',
  'AWS_CONTAINER_CREDENTIALS_FULL_URI',
  'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
];
const enabled = process.env.STRATUS_LIVE_AWS === '1';
const hasCredentials = CREDENTIAL_HINTS.some((name) => Boolean(process.env[name]));
const run = enabled && hasCredentials;

if (!run) {
  console.warn(
    '!!! SKIPPED "EC2 driver against real AWS": live tests did NOT run. ' +
      (enabled
        ? 'STRATUS_LIVE_AWS=1 is set but no AWS credentials were found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY).'
        : 'Enable them with STRATUS_LIVE_AWS=1 and AWS credentials, e.g. ' +
          'STRATUS_LIVE_AWS=1 AWS_PROFILE=sandbox npx vitest run --project live (launches one t3.micro for a few minutes).'),
  );
}

const region = process.env.STRATUS_LIVE_REGION ?? process.env.AWS_REGION ?? 'us-east-1';
const deployment = `stratus-live-${Date.now().toString(36)}`;
const WAIT = { maxWaitTime: 600, minDelay: 5, maxDelay: 15 };

(run ? describe : describe.skip)('EC2 driver against real AWS', () => {
  let client: EC2Client;
  let driver: Ec2Driver;
  let ami: string;
  let zone: string;

  beforeAll(async () => {
    client = new EC2Client({ region, retryMode: 'adaptive', maxAttempts: 8 });
    const images = await client.send(
      new DescribeImagesCommand({
        Owners: ['amazon'],
        Filters: [
          { Name: 'name', Values: ['al2023-ami-2023*-x86_64'] },
          { Name: 'state', Values: ['available'] },
        ],
      }),
    );
    const newest = [...(images.Images ?? [])].sort((a, b) =>
      (b.CreationDate ?? '').localeCompare(a.CreationDate ?? ''),
    )[0];
    if (!newest?.ImageId) throw new Error(`no Amazon Linux 2023 AMI found in ${region}`);
    ami = newest.ImageId;
    zone = process.env.STRATUS_LIVE_ZONE ?? `${region}a`;
    driver = new Ec2Driver({
      client,
      deployment,
      sink: new InMemoryLifecycleSink(),
      settings: defaultEc2Settings({
        region,
        instance_types: { 'live.micro': 't3.micro' },
        pools: [{ node: `ec2:${zone}`, availability_zone: zone, vcpus: 4 }],
      }),
    });
  }, 120_000);

  afterAll(async () => {
    if (!client) return;
    // Whatever this run launched goes, whether or not the test got that far.
    const out = await client.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: `tag:${TAG.deployment}`, Values: [deployment] },
          { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
        ],
      }),
    );
    const ids = (out.Reservations ?? []).flatMap((r) =>
      (r.Instances ?? []).flatMap((i) => (i.InstanceId ? [i.InstanceId] : [])),
    );
    if (ids.length > 0) await client.send(new TerminateInstancesCommand({ InstanceIds: ids }));
    client.destroy();
  }, 120_000);

  it('launches, reports, stops and terminates one instance', async () => {
    const vm = makeInstance({
      node: `ec2:${zone}`,
      image_ref: ami,
      availability_zone: zone,
      security_groups: [],
      created_at: new Date().toISOString(),
      flavor: {
        name: 'live.micro',
        flavorid: 'live',
        id: 99,
        vcpus: 2,
        memory_mb: 1024,
        root_gb: 0,
        ephemeral_gb: 0,
      },
    });
    const spawned = await driver.spawn(ctx('live-spawn'), vm, spawnRequest({ imageRef: ami }));
    expect(spawned).toMatchObject({ status: 'pending', expect: 'started' });
    const info = await driver.getInfo(ctx(), vm);
    const instanceId = info.internalId!;
    expect(await driver.findByEc2InstanceId(instanceId)).toEqual({
      instanceId: vm.instance_id,
      node: `ec2:${zone}`,
    });

    await waitUntilInstanceRunning({ client, ...WAIT }, { InstanceIds: [instanceId] });
    expect(await driver.onStateChange(instanceId, 'running')).toMatchObject({
      transition: 'started',
    });
    expect((await driver.getInfo(ctx(), vm)).state).toBe(PowerState.RUNNING);
    expect(await driver.listInstanceUuids(ctx())).toEqual([vm.instance_id]);

    expect(
      await driver.powerOff(ctx('live-stop'), vm, { timeout: 0, retryInterval: 0 }),
    ).toMatchObject({ status: 'pending', expect: 'stopped' });
    await waitUntilInstanceStopped({ client, ...WAIT }, { InstanceIds: [instanceId] });
    expect((await driver.getInfo(ctx(), vm)).state).toBe(PowerState.SHUTDOWN);

    expect(await driver.destroy(ctx('live-destroy'), vm)).toMatchObject({ status: 'pending' });
    await waitUntilInstanceTerminated({ client, ...WAIT }, { InstanceIds: [instanceId] });
    expect(await driver.onStateChange(instanceId, 'terminated')).toMatchObject({
      transition: 'stopped',
    });
    await expect(driver.getInfo(ctx(), vm)).rejects.toMatchObject({ code: 'InstanceNotFound' });
  }, 1_800_000);
});
