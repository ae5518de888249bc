// driver=ec2 end to end: commands through SQS (fauxqs) → the real function handlers → the EC2
// driver on moto_server → DynamoDB Local. moto moves instances between states at once and
// sends no EventBridge events, so the test delivers EC2's "EC2 Instance State-change
// Notification" to the lifecycle queue itself, as the stack's EventBridge rule would (the
// event JSON is the rule target's message body), and the real lifecycle-events function
// completes the pending tasks. Late, duplicated and reordered events, and events for instances
// this deployment does not own, must change nothing.

import {
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeSubnetsCommand,
  EC2Client,
  type Instance as Ec2Instance,
  RunInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { instanceIdForCommand } from '../../lib/commands/parse.ts';
import { PowerState, TaskState, VmState } from '../../lib/compute/states.ts';
import { TAG } from '../../lib/virt/ec2/tags.ts';
import { awsTestClientConfig, describeWithMoto, motoEndpoint } from '../support/emulators.ts';
import { type TestStack, buildCommand, startTestStack } from '../support/stack.ts';

const ZONE = 'us-east-1a';
const POOL = 'ec2:us-east-1a';

/** The EventBridge event EC2 sends for a state change, as the rule delivers it to SQS. */
function stateChangeEvent(ec2Id: string, state: string, time: Date, id = crypto.randomUUID()) {
  return {
    version: '0',
    id,
    'detail-type': 'EC2 Instance State-change Notification',
    source: 'aws.ec2',
    account: '123456789012',
    // EC2 stamps the change to the second.
    time: time.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region: 'us-east-1',
    resources: [`arn:aws:ec2:us-east-1:123456789012:instance/${ec2Id}`],
    detail: { 'instance-id': ec2Id, state },
  };
}

describeWithMoto('driver=ec2 end to end on moto', () => {
  let stack: TestStack;
  let ec2: EC2Client;
  let clock = Date.now();
  /** A time later than everything so far (and than now): what EC2 stamps on the next change. */
  const later = (seconds = 5) => new Date((clock = Math.max(clock, Date.now()) + seconds * 1000));

  beforeAll(async () => {
    const moto = motoEndpoint();
    ec2 = new EC2Client(awsTestClientConfig(moto));
    const images = await ec2.send(new DescribeImagesCommand({ Owners: ['amazon'] }));
    const ami = images.Images?.find(
      (i) => i.RootDeviceName && /^ami-[0-9a-f]+$/.test(i.ImageId ?? ''),
    )?.ImageId;
    const subnets = await ec2.send(
      new DescribeSubnetsCommand({ Filters: [{ Name: 'availability-zone', Values: [ZONE] }] }),
    );
    const subnet = subnets.Subnets?.[0]?.SubnetId;
    if (!ami || !subnet) throw new Error('moto has no AMI or subnet to launch with');
    // The functions' EC2 client finds moto the way any SDK client finds an endpoint.
    process.env.AWS_ENDPOINT_URL_EC2 = moto;
    stack = await startTestStack({
      label: 'ec2-e2e',
      options: {
        driver: 'ec2',
        notify_on_state_change: 'vm_and_task_state',
        ec2: JSON.stringify({
          subnets: { 'net-a': subnet },
          images: { 'image-web': ami },
          pools: [{ node: POOL, availability_zone: ZONE, vcpus: 64 }],
          not_found_grace_seconds: 0,
        }),
      },
    });
    clock = Date.now();
  });

  afterAll(() => {
    delete process.env.AWS_ENDPOINT_URL_EC2;
    ec2?.destroy();
  });

  async function deliver(...events: object[]): Promise<void> {
    for (const event of events) {
      await stack.sqs.send(
        new SendMessageCommand({
          QueueUrl: stack.topology.lifecycle.url,
          MessageBody: JSON.stringify(event),
        }),
      );
    }
    await stack.drain('lifecycle');
  }

  /** The EC2 instances tagged with this deployment for one Stratus instance. */
  async function guestsOf(instanceId: string): Promise<Ec2Instance[]> {
    const out = await ec2.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: `tag:${TAG.deployment}`, Values: [stack.config.prefix] },
          { Name: `tag:${TAG.instanceId}`, Values: [instanceId] },
        ],
      }),
    );
    return out.Reservations?.flatMap((r) => r.Instances ?? []) ?? [];
  }

  /**
   * The notifications published for an instance since the last call, once each. Publishing is
   * at least once (a twin event may deliver an outbox entry the first one is still delivering);
   * message ids are deterministic, and that is what consumers deduplicate on.
   */
  async function eventTypes(instanceId: string): Promise<string[]> {
    const seen = new Set<string>();
    return (await stack.receiveEvents())
      .filter((e) => e.resources.includes(instanceId))
      .filter((e) => !seen.has(e.detail.message_id) && seen.add(e.detail.message_id))
      .map((e) => e['detail-type'])
      .filter((t) => !t.startsWith('compute.instance.update'));
  }

  it('builds, stops, starts and terminates an instance, each completed by its EC2 event', async () => {
    const replyTo = await stack.createReplyQueue();
    const build = buildCommand({
      reply_to: replyTo,
      args: {
        flavor: 'm1.small',
        image_ref: 'image-web',
        display_name: 'web-1',
        networks: [{ network_id: 'net-a' }],
      },
    });
    const instanceId = instanceIdForCommand(build.command_id);
    await stack.send('build_and_run_instance', build);
    await stack.drain('build_and_run_instance');

    // Launched in EC2 with the deployment's tags, and pending in Stratus until EC2 says so.
    const [guest, ...others] = await guestsOf(instanceId);
    expect(others).toEqual([]);
    const ec2Id = guest!.InstanceId!;
    const tags = Object.fromEntries((guest!.Tags ?? []).map((t) => [t.Key, t.Value]));
    expect(tags).toMatchObject({
      [TAG.deployment]: stack.config.prefix,
      [TAG.instanceId]: instanceId,
      [TAG.node]: POOL,
      Name: 'web-1',
    });
    expect(await stack.store.getInstance(instanceId)).toMatchObject({
      vm_state: VmState.BUILDING,
      task_state: TaskState.SPAWNING,
    });
    expect(await stack.receiveAll(replyTo)).toHaveLength(0);

    // `pending` completes nothing; `running` completes the build, once.
    const running = stateChangeEvent(ec2Id, 'running', later());
    await deliver(stateChangeEvent(ec2Id, 'pending', later(0)), running, running);
    const active = await stack.store.getInstance(instanceId);
    expect(active).toMatchObject({
      vm_state: VmState.ACTIVE,
      task_state: null,
      power_state: PowerState.RUNNING,
      node: POOL,
    });
    expect(active?.launched_at).not.toBeNull();
    expect(await eventTypes(instanceId)).toEqual([
      'compute.instance.create.start',
      'compute.instance.create.end',
    ]);
    const replies = await stack.receiveAll(replyTo);
    expect(replies.map((m) => JSON.parse(m.Body!) as { status: string })).toEqual([
      expect.objectContaining({ status: 'succeeded', command_id: build.command_id }),
    ]);

    // Late and reordered: the build's `pending` and `running` again change nothing.
    await deliver(stateChangeEvent(ec2Id, 'pending', new Date(clock - 10_000)), running);
    expect((await stack.store.getInstance(instanceId))?.version).toBe(active!.version);

    // Stop: EC2 stops the instance; Stratus waits for `stopped`.
    const stop = {
      ...buildCommand(),
      operation: 'stop_instance',
      instance_id: instanceId,
      args: {},
    };
    await stack.send('stop_instance', stop);
    await stack.drain('stop_instance');
    expect((await guestsOf(instanceId))[0]?.State?.Name).toBe('stopped');
    expect((await stack.store.getInstance(instanceId))?.task_state).toBe(TaskState.POWERING_OFF);
    // While the stop waits, the build's `running` delivered again is not the awaited change.
    await deliver(stateChangeEvent(ec2Id, 'stopping', later()), running);
    expect((await stack.store.getInstance(instanceId))?.task_state).toBe(TaskState.POWERING_OFF);
    const stopped = stateChangeEvent(ec2Id, 'stopped', later());
    await deliver(stopped);
    const off = await stack.store.getInstance(instanceId);
    expect(off).toMatchObject({
      vm_state: VmState.STOPPED,
      task_state: null,
      power_state: PowerState.SHUTDOWN,
    });
    expect(await eventTypes(instanceId)).toEqual([
      'compute.instance.power_off.start',
      'compute.instance.power_off.end',
    ]);

    // Start: `running` completes it; the earlier `stopped`, delivered late, changes nothing.
    const start = {
      ...buildCommand(),
      operation: 'start_instance',
      instance_id: instanceId,
      args: {},
    };
    await stack.send('start_instance', start);
    await stack.drain('start_instance');
    expect((await stack.store.getInstance(instanceId))?.task_state).toBe(TaskState.POWERING_ON);
    await deliver(stopped, stateChangeEvent(ec2Id, 'pending', later()));
    expect((await stack.store.getInstance(instanceId))?.task_state).toBe(TaskState.POWERING_ON);
    await deliver(stateChangeEvent(ec2Id, 'running', later()));
    const on = await stack.store.getInstance(instanceId);
    expect(on).toMatchObject({
      vm_state: VmState.ACTIVE,
      task_state: null,
      power_state: PowerState.RUNNING,
    });
    expect(await eventTypes(instanceId)).toEqual([
      'compute.instance.power_on.start',
      'compute.instance.power_on.end',
    ]);
    await deliver(stopped);
    expect((await stack.store.getInstance(instanceId))?.version).toBe(on!.version);

    // Terminate: EC2 terminates the instance; the record is deleted, exactly once.
    const terminate = {
      ...buildCommand(),
      operation: 'terminate_instance',
      instance_id: instanceId,
      args: {},
    };
    await stack.send('terminate_instance', terminate);
    await stack.drain('terminate_instance');
    expect((await stack.store.getInstance(instanceId))?.task_state).toBe(TaskState.DELETING);
    const terminated = stateChangeEvent(ec2Id, 'terminated', later());
    await deliver(stateChangeEvent(ec2Id, 'shutting-down', later(1)), terminated);
    expect((await guestsOf(instanceId))[0]?.State?.Name).toBe('terminated');
    const deleted = await stack.store.getInstance(instanceId);
    expect(deleted).toMatchObject({ vm_state: VmState.DELETED, deleted: true, task_state: null });
    expect(await eventTypes(instanceId)).toEqual([
      'compute.instance.delete.start',
      'compute.instance.shutdown.start',
      'compute.instance.shutdown.end',
      'compute.instance.delete.end',
    ]);
    await deliver(terminated, running);
    expect((await stack.store.getInstance(instanceId))?.version).toBe(deleted!.version);
    expect(await stack.store.listFaults(instanceId)).toEqual([]);
    expect(await stack.receiveAll(stack.topology.lifecycle.dlqUrl)).toHaveLength(0);
  });

  it('records an out-of-band terminate as CRASHED with a fault, once', async () => {
    const build = buildCommand({ args: { flavor: 'm1.small', image_ref: 'image-web' } });
    const instanceId = instanceIdForCommand(build.command_id);
    await stack.send('build_and_run_instance', build);
    await stack.drain('build_and_run_instance');
    const ec2Id = (await guestsOf(instanceId))[0]!.InstanceId!;
    await deliver(stateChangeEvent(ec2Id, 'running', later()));
    expect((await stack.store.getInstance(instanceId))?.vm_state).toBe(VmState.ACTIVE);

    // Someone terminates the instance in the EC2 console.
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [ec2Id] }));
    const terminated = stateChangeEvent(ec2Id, 'terminated', later());
    await deliver(terminated);
    const crashed = await stack.store.getInstance(instanceId);
    expect(crashed).toMatchObject({
      vm_state: VmState.ACTIVE,
      task_state: null,
      power_state: PowerState.CRASHED,
    });
    const faults = await stack.store.listFaults(instanceId);
    expect(faults).toEqual([
      expect.objectContaining({ code: 500, message: expect.stringMatching(/outside Stratus/) }),
    ]);
    await deliver(terminated);
    expect((await stack.store.getInstance(instanceId))?.version).toBe(crashed!.version);
    expect(await stack.store.listFaults(instanceId)).toHaveLength(1);
  });

  it('ignores events for instances this deployment does not own', async () => {
    const build = buildCommand({ args: { flavor: 'm1.small', image_ref: 'image-web' } });
    const instanceId = instanceIdForCommand(build.command_id);
    await stack.send('build_and_run_instance', build);
    await stack.drain('build_and_run_instance');
    const before = await stack.store.getInstance(instanceId);
    expect(before?.task_state).toBe(TaskState.SPAWNING);

    // Untagged, and tagged for another deployment while claiming this Stratus instance id.
    const ami = (await guestsOf(instanceId))[0]!.ImageId!;
    const launch = (tags: { Key: string; Value: string }[]) =>
      ec2.send(
        new RunInstancesCommand({
          ImageId: ami,
          InstanceType: 't3.micro',
          MinCount: 1,
          MaxCount: 1,
          ...(tags.length ? { TagSpecifications: [{ ResourceType: 'instance', Tags: tags }] } : {}),
        }),
      );
    const untagged = (await launch([])).Instances![0]!.InstanceId!;
    const otherDeployment = (
      await launch([
        { Key: TAG.deployment, Value: `${stack.config.prefix}-other` },
        { Key: TAG.instanceId, Value: instanceId },
        { Key: TAG.node, Value: POOL },
      ])
    ).Instances![0]!.InstanceId!;
    await ec2.send(new StopInstancesCommand({ InstanceIds: [otherDeployment] }));

    await deliver(
      stateChangeEvent(untagged, 'running', later()),
      stateChangeEvent(otherDeployment, 'running', later()),
      stateChangeEvent(otherDeployment, 'stopped', later()),
      stateChangeEvent(untagged, 'terminated', later()),
    );
    expect(await stack.store.getInstance(instanceId)).toMatchObject({
      task_state: TaskState.SPAWNING,
      version: before!.version,
    });
    expect(await stack.receiveAll(stack.topology.lifecycle.dlqUrl)).toHaveLength(0);
  });
});
