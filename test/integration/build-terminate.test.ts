// build_and_run_instance and terminate_instance end to end: SQS (fauxqs) → the real function
// handlers → DynamoDB Local → EventBridge (moto) → rule → SQS target.

import { beforeAll, expect, it } from 'vitest';
import { notificationSchemaFor } from '../../lib/notifications/schemas.ts';
import { TaskState, VmState, PowerState } from '../../lib/compute/states.ts';
import { describeWithMoto } from '../support/emulators.ts';
import {
  type ReceivedEvent,
  type TestStack,
  buildCommand,
  startTestStack,
} from '../support/stack.ts';

const CONTRACT_PAYLOAD_FIELDS = [
  'tenant_id',
  'user_id',
  'instance_id',
  'display_name',
  'reservation_id',
  'hostname',
  'instance_type',
  'instance_type_id',
  'instance_flavor_id',
  'architecture',
  'memory_mb',
  'disk_gb',
  'vcpus',
  'root_gb',
  'ephemeral_gb',
  'host',
  'node',
  'availability_zone',
  'cell_name',
  'created_at',
  'launched_at',
  'terminated_at',
  'deleted_at',
  'image_ref_url',
  'image_meta',
  'os_type',
  'kernel_id',
  'ramdisk_id',
  'state',
  'state_description',
  'progress',
  'access_ip_v4',
  'access_ip_v6',
  'metadata',
];

function eventsOf(events: ReceivedEvent[], instanceId: string) {
  return events.filter((e) => e.resources.includes(instanceId));
}

describeWithMoto('build and terminate through SQS and EventBridge', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack({
      label: 'e2e',
      eventbridge: true,
      options: { notify_on_state_change: 'vm_and_task_state' },
    });
  });

  it('builds an instance to ACTIVE / RUNNING and publishes Nova’s events in order', async () => {
    const replyTo = await stack.createReplyQueue();
    const command = buildCommand({
      reply_to: replyTo,
      args: {
        flavor: 'm1.small',
        image_ref: 'ami-0abc',
        display_name: 'web-1',
        networks: [{ network_id: 'net-a' }],
      },
    });
    await stack.send('build_and_run_instance', command);
    await stack.drain('build_and_run_instance');

    const [reply] = await stack.receiveAll(replyTo);
    const outcome = JSON.parse(reply!.Body!);
    expect(outcome).toMatchObject({
      command_id: command.command_id,
      status: 'succeeded',
      operation: 'build_and_run_instance',
    });
    const instance = await stack.store.getInstance(outcome.instance_id);
    expect(instance).toMatchObject({
      vm_state: VmState.ACTIVE,
      task_state: null,
      task_owner: null,
      power_state: PowerState.RUNNING,
      display_name: 'web-1',
      host: stack.config.host,
    });
    expect(instance?.launched_at).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    expect(instance?.node).toMatch(/^fake-node-/);
    expect(instance?.ports).toHaveLength(1);

    const events = eventsOf(await stack.receiveEvents(), outcome.instance_id);
    const sequence = events.map((e) =>
      e['detail-type'] === 'compute.instance.update'
        ? `update:${e.detail.payload.old_task_state ?? '-'}>${e.detail.payload.new_task_state ?? '-'}`
        : e['detail-type'],
    );
    expect(sequence).toEqual([
      'update:scheduling>scheduling',
      'update:scheduling>-',
      'compute.instance.create.start',
      // Nova substitutes the current value for a null old task_state (_compute_states_payload).
      'update:networking>networking',
      'update:networking>block_device_mapping',
      'update:block_device_mapping>spawning',
      'update:spawning>-',
      'compute.instance.create.end',
    ]);
    for (const e of events) {
      expect(e.source).toBe(stack.config.event_source);
      expect(e.detail.event_type).toBe(e['detail-type']);
      expect(e.detail.command_id).toBe(command.command_id);
      for (const field of CONTRACT_PAYLOAD_FIELDS)
        expect(e.detail.payload, `${e['detail-type']}.${field}`).toHaveProperty(field);
      expect(notificationSchemaFor(e['detail-type']).safeParse(e.detail).success).toBe(true);
    }
    const end = events.at(-1)!;
    expect(end.detail.payload).toMatchObject({
      message: 'Success',
      state: 'active',
      state_description: '',
    });
    expect((end.detail.payload.fixed_ips as unknown[]).length).toBe(1);
    expect(events[2]!.detail.payload.image_name).toBe('ami-0abc');
    expect(new Set(events.map((e) => e.detail.message_id)).size).toBe(events.length);
  });

  it('terminates to DELETED with deleted_at and the delete and shutdown events', async () => {
    const build = buildCommand();
    await stack.send('build_and_run_instance', build);
    await stack.drain('build_and_run_instance');
    const instanceId = (await stack.store.findActionByCommand(build.command_id as string))!
      .instance_id!;
    await stack.receiveEvents(); // drop the build's events

    const terminate = {
      ...buildCommand(),
      operation: 'terminate_instance',
      instance_id: instanceId,
      args: {},
    };
    await stack.send('terminate_instance', terminate);
    await stack.drain('terminate_instance');

    const instance = await stack.store.getInstance(instanceId);
    expect(instance).toMatchObject({
      vm_state: VmState.DELETED,
      task_state: null,
      power_state: PowerState.NOSTATE,
      deleted: true,
    });
    expect(instance?.deleted_at).not.toBeNull();
    expect(instance?.terminated_at).not.toBeNull();
    const types = eventsOf(await stack.receiveEvents(), instanceId).map((e) =>
      e['detail-type'] === 'compute.instance.update'
        ? `update:${e.detail.payload.new_task_state ?? '-'}`
        : e['detail-type'],
    );
    expect(types).toEqual([
      'update:deleting',
      'compute.instance.delete.start',
      'compute.instance.shutdown.start',
      'compute.instance.shutdown.end',
      'update:-',
      'compute.instance.delete.end',
    ]);
    const actions = await stack.store.listActions(instanceId);
    expect(actions.map((a) => [a.operation, a.status])).toEqual([
      ['build_and_run_instance', 'succeeded'],
      ['terminate_instance', 'succeeded'],
    ]);
    expect(actions[1]!.events.map((e) => [e.event, e.result])).toEqual([
      ['compute_terminate_instance', 'Success'],
    ]);
  });

  it('gives the same command_id one effect, delivered at once and later', async () => {
    const command = buildCommand();
    await stack.send('build_and_run_instance', command);
    await stack.send('build_and_run_instance', command);
    await stack.drain('build_and_run_instance');
    await stack.send('build_and_run_instance', command);
    await stack.drain('build_and_run_instance');

    const action = await stack.store.findActionByCommand(command.command_id as string);
    const instanceId = action!.instance_id!;
    expect((await stack.store.getInstance(instanceId))?.vm_state).toBe(VmState.ACTIVE);
    const ends = eventsOf(await stack.receiveEvents(), instanceId).filter(
      (e) => e['detail-type'] === 'compute.instance.create.end',
    );
    expect(ends).toHaveLength(1);
    expect(await stack.store.listActions(instanceId)).toHaveLength(1);
  });

  it('lets concurrent terminates end in one DELETED record with one delete.end', async () => {
    const build = buildCommand();
    await stack.send('build_and_run_instance', build);
    await stack.drain('build_and_run_instance');
    const instanceId = (await stack.store.findActionByCommand(build.command_id as string))!
      .instance_id!;
    await stack.receiveEvents();

    const t1 = {
      ...buildCommand(),
      operation: 'terminate_instance',
      instance_id: instanceId,
      args: {},
    };
    const t2 = {
      ...buildCommand(),
      operation: 'terminate_instance',
      instance_id: instanceId,
      args: {},
    };
    await Promise.all([stack.send('terminate_instance', t1), stack.send('terminate_instance', t2)]);
    // Two function instances, each with one message, racing.
    await Promise.all([stack.drain('terminate_instance'), stack.drain('terminate_instance')]);

    expect((await stack.store.getInstance(instanceId))?.vm_state).toBe(VmState.DELETED);
    const ends = eventsOf(await stack.receiveEvents(), instanceId).filter(
      (e) => e['detail-type'] === 'compute.instance.delete.end',
    );
    expect(ends).toHaveLength(1);
    const statuses = [
      (await stack.store.findActionByCommand(t1.command_id as string))?.status,
      (await stack.store.findActionByCommand(t2.command_id as string))?.status,
    ].sort();
    expect(statuses).toEqual(['rejected', 'succeeded']);
  });

  it('lets a terminate racing a build end DELETED, with no guest left behind', async () => {
    const build = buildCommand();
    const instanceId = (await import('../../lib/commands/parse.ts')).instanceIdForCommand(
      build.command_id as string,
    );
    await stack.send('build_and_run_instance', build);
    // Run the build up to its first step so the terminate finds a BUILDING instance.
    const buildRun = stack.drain('build_and_run_instance');
    let instance = null;
    for (let i = 0; i < 200 && !instance; i++) instance = await stack.store.getInstance(instanceId);
    const terminate = {
      ...buildCommand(),
      operation: 'terminate_instance',
      instance_id: instanceId,
      args: {},
    };
    await stack.send('terminate_instance', terminate);
    await Promise.all([buildRun, stack.drain('terminate_instance')]);
    await stack.drain('build_and_run_instance');
    await stack.drain('terminate_instance');

    const final = await stack.store.getInstance(instanceId);
    const terminateAction = await stack.store.findActionByCommand(terminate.command_id as string);
    const buildAction = await stack.store.findActionByCommand(build.command_id as string);
    expect(buildAction?.status).not.toBe('running');
    if (terminateAction?.status === 'succeeded') {
      expect(final).toMatchObject({ vm_state: VmState.DELETED, task_state: null });
    } else {
      // The terminate was checked before the build created the record: it found nothing.
      expect(terminateAction?.outcome?.error?.code).toBe(404);
      expect(final?.vm_state).toBe(VmState.ACTIVE);
    }
    expect(final?.task_state).not.toBe(TaskState.DELETING);
    const { DynamoDbFakeHypervisorStore } = await import('../../lib/virt/fake/dynamodb-store.ts');
    const guests = new DynamoDbFakeHypervisorStore({
      client: stack.doc,
      tableName: stack.config.tables.fakeHypervisor,
    });
    const left = [
      ...(await guests.listByNode('fake-node-1')),
      ...(await guests.listByNode('fake-node-2')),
    ].filter((g) => g.instanceId === instanceId);
    expect(left).toHaveLength(final?.vm_state === VmState.DELETED ? 0 : 1);
  });
});
