// `stratus <operation> …`: validate with the functions' schemas, send through ComputeClient,
// and with `--wait` follow the command — instance state changes, its notifications, retries —
// until its outcome is stored and every notification it caused is published (its outbox is
// empty, so the `.end` event is out). Exit code 0 succeeded, 1 failed/rejected.

import { stat } from 'node:fs/promises';
import { CommandValidationError, buildCommandBody } from '../client/command-body.ts';
import { ComputeClient, QueueNotFoundError, type SentCommand } from '../client/compute-client.ts';
import type { Instance } from '../compute/instance.ts';
import { POWER_STATE_NAMES } from '../compute/states.ts';
import { readNotificationLog } from '../local/notification-log.ts';
import type { ActionRecord, ActionSubject } from '../store/state-store.ts';
import type { Operation } from '../topology.ts';
import { CliError, UsageError } from './errors.ts';
import { formatEventLine } from './format.ts';
import type { OperationRequest } from './operations.ts';
import { type CliRuntime, sleep } from './runtime.ts';
import type { Target } from './target.ts';

/** Validates before anything else, so a bad command fails fast even with no plane running. */
export function validateRequest(request: OperationRequest): string {
  try {
    return buildCommandBody(request.operation, request.input, request.context).body.command_id;
  } catch (e) {
    if (e instanceof CommandValidationError) {
      throw new UsageError(
        `invalid ${request.operation} command:\n${e.issues.map((i) => `  ${i.field}: ${i.message}`).join('\n')}`,
        `stratus ${request.operation.replaceAll('_', '-')} --help lists its arguments`,
      );
    }
    throw e;
  }
}

async function logSize(path: string | null | undefined): Promise<number> {
  if (!path) return 0;
  return (await stat(path).catch(() => ({ size: 0 }))).size;
}

export async function sendOperation(
  request: OperationRequest,
  target: Target,
  rt: CliRuntime,
  json: boolean,
): Promise<number> {
  const commandId = validateRequest(request);
  const client = new ComputeClient({
    queues: target.endpoints.sqs.queues,
    sqs: target.sqs,
    context: request.context,
  });
  const logOffset = await logSize(target.endpoints.notifications_log);
  let sent: SentCommand<Operation>;
  try {
    sent = await client.send(request.operation, { ...request.input, commandId } as never);
  } catch (e) {
    if (e instanceof QueueNotFoundError) {
      const available = Object.keys(target.endpoints.sqs.queues).join(', ') || 'none';
      throw new CliError(
        `${request.operation} has no queue in ${target.source}: this control plane does not implement it yet`,
        `operations with a queue: ${available}`,
      );
    }
    throw e;
  }
  const summary = {
    command_id: sent.commandId,
    operation: sent.operation,
    instance_id: sent.instanceId,
    ...(sent.body.node ? { node: sent.body.node } : {}),
    message_id: sent.messageId,
    queue_url: sent.queueUrl,
  };
  if (!request.wait) {
    if (json) rt.io.out(JSON.stringify(summary, null, 2));
    else {
      rt.io.out(
        `sent ${sent.operation}  command ${sent.commandId}` +
          (sent.instanceId ? `  instance ${sent.instanceId}` : '') +
          (sent.body.node ? `  node ${sent.body.node}` : ''),
      );
    }
    return 0;
  }
  if (!json) {
    rt.io.out(
      `sent ${sent.operation}  command ${sent.commandId}` +
        (sent.instanceId ? `  instance ${sent.instanceId}` : ''),
    );
  }
  return waitForOutcome(target, sent, rt, {
    json,
    timeoutSeconds: request.timeoutSeconds,
    logOffset,
  });
}

function stateOf(i: Instance): string {
  return `${i.vm_state}/${i.task_state ?? '-'}  power ${POWER_STATE_NAMES[i.power_state] ?? i.power_state}`;
}

async function findAction(
  target: Target,
  subjects: readonly ActionSubject[],
  commandId: string,
): Promise<ActionRecord | null> {
  for (const subject of subjects) {
    const action = await target.store.getAction(subject, commandId);
    if (action) return action;
  }
  return null;
}

export async function waitForOutcome(
  target: Target,
  sent: Pick<SentCommand, 'commandId' | 'instanceId' | 'operation'> & { body: { node?: string } },
  rt: CliRuntime,
  o: { json: boolean; timeoutSeconds: number; logOffset: number },
): Promise<number> {
  const started = Date.now();
  const deadline = started + o.timeoutSeconds * 1000;
  const subjects: ActionSubject[] = [
    ...(sent.instanceId ? [{ kind: 'instance' as const, id: sent.instanceId }] : []),
    ...(sent.body.node ? [{ kind: 'node' as const, id: sent.body.node }] : []),
    { kind: 'command', id: sent.commandId },
  ];
  const log = target.endpoints.notifications_log ?? null;
  let offset = o.logOffset;
  let lastState = '';
  let lastError = '';
  const say = (line: string) => {
    if (!o.json) rt.io.out(line);
  };
  const showEvents = async () => {
    if (!log) return;
    const next = await readNotificationLog(log, offset);
    offset = next.offset;
    for (const e of next.events) {
      if (e.detail.command_id === sent.commandId) say(formatEventLine(e));
    }
  };

  for (;;) {
    if (rt.signal?.aborted) {
      say(`stopped waiting; the command goes on: stratus action ${sent.commandId}`);
      return 130;
    }
    // Events first: they were published after the state changes they announce.
    await showEvents();
    const action = await findAction(target, subjects, sent.commandId);
    if (sent.instanceId) {
      const instance = await target.store.getInstance(sent.instanceId);
      const state = instance ? stateOf(instance) : '';
      if (instance && state !== lastState) say(`  state  ${state}`);
      lastState = state;
    }
    const error = action?.progress?.last_error;
    if (typeof error === 'string' && error !== lastError) {
      say(`  retry  ${error} (receive ${action?.progress?.receive_count ?? '?'})`);
      lastError = error;
    }
    // Finished, and every notification it caused is published (the `.end` event is out).
    if (
      action &&
      action.status !== 'running' &&
      (await target.store.pendingNotifications(action.subject, action.command_id)).length === 0
    ) {
      await showEvents();
      return finish(action, rt, o.json, (Date.now() - started) / 1000);
    }
    if (Date.now() > deadline) {
      throw new CliError(
        `timed out after ${o.timeoutSeconds} s waiting for ${sent.operation} ${sent.commandId}` +
          (!action
            ? ' (not picked up yet)'
            : action.status === 'running'
              ? ' (still running)'
              : ` (${action.status}, but its notifications are not all published yet)`),
        `it may still finish: stratus action ${sent.commandId}`,
      );
    }
    await sleep(rt.pollIntervalMs ?? 250, rt.signal);
  }
}

function finish(action: ActionRecord, rt: CliRuntime, json: boolean, seconds: number): number {
  const outcome = action.outcome;
  if (json) {
    rt.io.out(
      JSON.stringify(outcome ?? { command_id: action.command_id, status: action.status }, null, 2),
    );
  } else {
    const subject = action.instance_id ? `  instance ${action.instance_id}` : '';
    const error = outcome?.error ? `  ${outcome.error.code} ${outcome.error.message}` : '';
    rt.io.out(`${action.status}  ${action.operation}${subject}${error}  (${seconds.toFixed(1)} s)`);
    const result = outcome?.result as { output?: unknown } | undefined;
    if (result !== undefined) {
      rt.io.out(
        typeof result.output === 'string' ? result.output : JSON.stringify(result, null, 2),
      );
    }
  }
  return action.status === 'succeeded' ? 0 : 1;
}
