// The fake driver's asynchronous mode: spawn and destroy finish later, and the driver's lifecycle
// events (through the lifecycle queue and the real lifecycle-events function) complete the
// pending task through the same code path as a synchronous finish. Late or duplicated events
// change nothing.

import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { instanceIdForCommand } from '../../lib/commands/parse.ts';
import { lifecycleEnvelope } from '../../lib/compute/lifecycle-transport.ts';
import { PowerState, TaskState, VmState } from '../../lib/compute/states.ts';
import { type TestStack, buildCommand, startTestStack } from '../support/stack.ts';

describe('completion from lifecycle events (fake driver, asynchronous mode)', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack({ label: 'async', options: { fake_async: 'true' } });
  });

  it('leaves a build pending on SPAWNING until its STARTED event, then finishes it once', async () => {
    const replyTo = await stack.createReplyQueue();
    const command = buildCommand({ reply_to: replyTo });
    const instanceId = instanceIdForCommand(command.command_id);
    await stack.send('build_and_run_instance', command);
    await stack.drain('build_and_run_instance');

    expect(await stack.store.getInstance(instanceId)).toMatchObject({
      vm_state: VmState.BUILDING,
      task_state: TaskState.SPAWNING,
    });
    const pending = await stack.store.findActionByCommand(command.command_id);
    expect(pending).toMatchObject({ status: 'running', progress: { pending_expect: 'started' } });
    expect(await stack.receiveAll(replyTo)).toHaveLength(0);

    // The driver's event is on the lifecycle queue: keep a copy to deliver again later.
    const [eventMessage] = await stack.receiveAll(stack.topology.lifecycle.url);
    expect(eventMessage).toBeDefined();
    const body = eventMessage!.Body!;
    await stack.sqs.send(
      new SendMessageCommand({ QueueUrl: stack.topology.lifecycle.url, MessageBody: body }),
    );
    await stack.sqs.send(
      new SendMessageCommand({ QueueUrl: stack.topology.lifecycle.url, MessageBody: body }),
    );
    await stack.drain('lifecycle');

    const instance = await stack.store.getInstance(instanceId);
    expect(instance).toMatchObject({
      vm_state: VmState.ACTIVE,
      task_state: null,
      power_state: PowerState.RUNNING,
    });
    const done = await stack.store.findActionByCommand(command.command_id);
    expect(done).toMatchObject({ status: 'succeeded', reply_sent: true });
    expect(await stack.store.pendingNotifications(done!.subject, command.command_id)).toEqual([]);
    const events = (await stack.receiveEvents()).filter((e) => e.resources.includes(instanceId));
    expect(events.map((e) => e['detail-type'])).toEqual([
      'compute.instance.create.start',
      'compute.instance.create.end',
    ]);
    const replies = await stack.receiveAll(replyTo);
    expect(replies).toHaveLength(1);
    expect(JSON.parse(replies[0]!.Body!)).toMatchObject({
      status: 'succeeded',
      command_id: command.command_id,
    });

    // A late duplicate changes nothing.
    await stack.sqs.send(
      new SendMessageCommand({ QueueUrl: stack.topology.lifecycle.url, MessageBody: body }),
    );
    await stack.drain('lifecycle');
    expect((await stack.store.getInstance(instanceId))?.version).toBe(instance!.version);
  });

  it('ignores an event for a transition the task is not waiting on', async () => {
    const command = buildCommand();
    const instanceId = instanceIdForCommand(command.command_id);
    await stack.send('build_and_run_instance', command);
    await stack.drain('build_and_run_instance');
    await stack.receiveAll(stack.topology.lifecycle.url); // hold the real STARTED event back
    const before = await stack.store.getInstance(instanceId);

    const wrong = lifecycleEnvelope({
      instanceId,
      transition: 'stopped',
      node: before!.node!,
      occurredAt: new Date().toISOString(),
      source: 'fake',
      sequence: 1,
    });
    await stack.sqs.send(
      new SendMessageCommand({
        QueueUrl: stack.topology.lifecycle.url,
        MessageBody: JSON.stringify(wrong),
      }),
    );
    await stack.sqs.send(
      new SendMessageCommand({ QueueUrl: stack.topology.lifecycle.url, MessageBody: 'not json' }),
    );
    await stack.drain('lifecycle');
    expect(await stack.store.getInstance(instanceId)).toMatchObject({
      task_state: TaskState.SPAWNING,
      version: before!.version,
    });
    expect(await stack.receiveAll(stack.topology.lifecycle.dlqUrl)).toHaveLength(0);
  });

  it('ignores the awaited transition when the event is older than the wait', async () => {
    const command = buildCommand();
    const instanceId = instanceIdForCommand(command.command_id);
    await stack.send('build_and_run_instance', command);
    await stack.drain('build_and_run_instance');
    await stack.receiveAll(stack.topology.lifecycle.url); // hold the real STARTED event back
    const before = await stack.store.getInstance(instanceId);
    const stale = lifecycleEnvelope({
      instanceId,
      transition: 'started',
      node: before!.node!,
      occurredAt: '2020-01-01T00:00:00.000Z',
      source: 'fake',
      sequence: 1,
    });
    await stack.sqs.send(
      new SendMessageCommand({
        QueueUrl: stack.topology.lifecycle.url,
        MessageBody: JSON.stringify(stale),
      }),
    );
    await stack.drain('lifecycle');
    expect(await stack.store.getInstance(instanceId)).toMatchObject({
      task_state: TaskState.SPAWNING,
      version: before!.version,
    });
  });

  it('ends a pending build that a terminate pre-empts, and leaves no guest behind', async () => {
    const replyTo = await stack.createReplyQueue();
    const build = buildCommand({ reply_to: replyTo });
    const instanceId = instanceIdForCommand(build.command_id);
    await stack.send('build_and_run_instance', build);
    await stack.drain('build_and_run_instance');
    await stack.receiveAll(stack.topology.lifecycle.url); // the STARTED event never arrives
    expect((await stack.store.getInstance(instanceId))?.task_state).toBe(TaskState.SPAWNING);

    const terminate = {
      ...buildCommand(),
      operation: 'terminate_instance',
      instance_id: instanceId,
      args: {},
    };
    await stack.send('terminate_instance', terminate);
    await stack.drain('terminate_instance');
    await stack.drain('lifecycle');

    expect(await stack.store.getInstance(instanceId)).toMatchObject({
      vm_state: VmState.DELETED,
      task_state: null,
    });
    const buildAction = await stack.store.findActionByCommand(build.command_id);
    expect(buildAction).toMatchObject({
      status: 'failed',
      error_code: 'UnexpectedDeletingTaskState',
    });
    const replies = await stack.receiveAll(replyTo);
    expect(replies.map((r) => JSON.parse(r.Body!).status)).toEqual(['failed']);
    const { DynamoDbFakeHypervisorStore } = await import('../../lib/virt/fake/dynamodb-store.ts');
    const guests = new DynamoDbFakeHypervisorStore({
      client: stack.doc,
      tableName: stack.config.tables.fakeHypervisor,
    });
    const all = [
      ...(await guests.listByNode('fake-node-1')),
      ...(await guests.listByNode('fake-node-2')),
    ];
    expect(all.filter((g) => g.instanceId === instanceId)).toEqual([]);
  });

  it('publishes a completion’s events when the delivery after it failed once', async () => {
    const command = buildCommand();
    const instanceId = instanceIdForCommand(command.command_id);
    await stack.send('build_and_run_instance', command);
    await stack.drain('build_and_run_instance');
    await stack.receiveEvents();
    const { NotificationLog } = await import('../../lib/local/notification-log.ts');
    const spy = vi
      .spyOn(NotificationLog.prototype, 'publish')
      .mockRejectedValueOnce(
        Object.assign(new Error('bus unavailable'), { name: 'NotificationPublishError' }),
      );
    await stack.drain('lifecycle'); // completes the build, then the publish fails
    spy.mockRestore();
    expect((await stack.store.getInstance(instanceId))?.vm_state).toBe(VmState.ACTIVE);
    await new Promise((r) => setTimeout(r, 2100)); // the visibility timeout
    await stack.drain('lifecycle'); // the redelivered event: nothing to complete, but delivers
    const types = (await stack.receiveEvents())
      .filter((e) => e.resources.includes(instanceId))
      .map((e) => e['detail-type']);
    expect(types).toEqual(['compute.instance.create.end']);
  });

  it('completes a terminate from the driver’s event', async () => {
    const build = buildCommand();
    const instanceId = instanceIdForCommand(build.command_id);
    await stack.send('build_and_run_instance', build);
    await stack.drain('build_and_run_instance');
    await stack.drain('lifecycle');
    expect((await stack.store.getInstance(instanceId))?.vm_state).toBe(VmState.ACTIVE);

    const terminate = {
      ...buildCommand(),
      operation: 'terminate_instance',
      instance_id: instanceId,
      args: {},
    };
    await stack.send('terminate_instance', terminate);
    await stack.drain('terminate_instance');
    expect((await stack.store.getInstance(instanceId))?.task_state).toBe(TaskState.DELETING);
    await stack.drain('lifecycle');
    expect(await stack.store.getInstance(instanceId)).toMatchObject({
      vm_state: VmState.DELETED,
      task_state: null,
      deleted: true,
    });
  });
});
