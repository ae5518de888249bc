// A finished command's reply is sent once, however many deliverers race to send it (its own
// run and the lifecycle event that finished it), and a failed send leaves it for the next one.
import { describe, expect, it } from 'vitest';
import { InMemoryReplySender } from '../../../lib/commands/reply.ts';
import { type ComputeDeps, deliverCommitted } from '../../../lib/compute/runtime.ts';
import { InMemoryPublisher } from '../../../lib/notifications/publisher.ts';
import { InMemoryStateStore } from '../../../lib/store/memory-state-store.ts';
import type { ActionRecord, Outcome } from '../../../lib/store/state-store.ts';

const OUTCOME: Outcome = {
  command_id: 'cmd-1',
  request_id: 'req-1',
  operation: 'build_and_run_instance',
  instance_id: 'i-1',
  status: 'succeeded',
};

async function finishedCommand() {
  const store = new InMemoryStateStore();
  const action: ActionRecord = {
    subject: { kind: 'instance', id: 'i-1' },
    command_id: 'cmd-1',
    operation: 'build_and_run_instance',
    instance_id: 'i-1',
    request_id: 'req-1',
    user_id: 'u',
    project_id: 'p',
    status: 'succeeded',
    error_code: null,
    outcome: OUTCOME,
    start_time: '2026-11-22T06:00:00.000Z',
    finish_time: '2026-11-22T06:00:01.000Z',
    events: [],
    reply_to: 'https://sqs.us-east-1.amazonaws.com/123456789012/replies',
    reply_sent: false,
    progress: {},
  };
  await store.startAction(action);
  const replies = new InMemoryReplySender();
  const deps = {
    store,
    replies,
    publisher: new InMemoryPublisher(),
    clock: () => new Date('2026-11-22T06:00:02.000Z'),
  } as unknown as ComputeDeps;
  return { deps, replies, subject: action.subject };
}

describe('reply delivery', () => {
  it('sends one reply when two deliverers race', async () => {
    const { deps, replies, subject } = await finishedCommand();
    await Promise.all([
      deliverCommitted(deps, subject, 'cmd-1'),
      deliverCommitted(deps, subject, 'cmd-1'),
    ]);
    await deliverCommitted(deps, subject, 'cmd-1');
    expect(replies.sent.map((r) => r.outcome)).toEqual([OUTCOME]);
  });

  it('leaves a reply whose send failed to the next deliverer', async () => {
    const { deps, replies, subject } = await finishedCommand();
    const send = replies.send.bind(replies);
    let fail = true;
    replies.send = async (url, outcome) => {
      if (fail) throw new Error('SQS unavailable');
      return send(url, outcome);
    };
    await expect(deliverCommitted(deps, subject, 'cmd-1')).rejects.toThrow('SQS unavailable');
    fail = false;
    await deliverCommitted(deps, subject, 'cmd-1');
    expect(replies.sent).toHaveLength(1);
  });
});
