// `stratus events [--follow]`: the notifications of the local control plane, from its log. A
// deployed stack publishes them on its EventBridge bus only: there the command says how to
// subscribe instead.

import { resolve } from 'node:path';
import type { Endpoints } from '../client/endpoints.ts';
import { type LoggedNotification, readNotificationLog } from '../local/notification-log.ts';
import { DEFAULT_EVENT_SOURCE } from '../topology.ts';
import { CliError } from './errors.ts';
import { formatEventLine } from './format.ts';
import { type CliRuntime, sleep } from './runtime.ts';

export interface EventsOptions {
  follow: boolean;
  json: boolean;
  instance?: string;
  command?: string;
  type?: string;
}

export function deployedEventsHelp(bus: string): CliError {
  return new CliError(
    `this target publishes notifications to its EventBridge bus ${bus} only; the CLI cannot read them back`,
    [
      'subscribe with a rule and a target, e.g. an SQS queue you own:',
      `  aws events put-rule --event-bus-name ${bus} --name my-billing \\`,
      `    --event-pattern '{"source":["${DEFAULT_EVENT_SOURCE}"]}'`,
      `  aws events put-targets --event-bus-name ${bus} --rule my-billing \\`,
      "    --targets 'Id=queue,Arn=arn:aws:sqs:<region>:<account>:<your-queue>'",
      '(the queue policy must allow events.amazonaws.com to SendMessage)',
    ].join('\n'),
  );
}

/** The log to read: the target's, or the default one when no plane runs (to read history). */
export function eventsLogOf(endpoints: Endpoints | null, cwd: string): string {
  if (endpoints === null) return resolve(cwd, '.stratus/notifications.jsonl');
  if (!endpoints.notifications_log) throw deployedEventsHelp(endpoints.eventbridge.bus);
  return endpoints.notifications_log;
}

function matches(e: LoggedNotification, o: EventsOptions): boolean {
  if (o.instance && !e.resources.includes(o.instance)) return false;
  if (o.command && e.detail.command_id !== o.command) return false;
  if (o.type && !e['detail-type'].includes(o.type)) return false;
  return true;
}

export async function showEvents(log: string, rt: CliRuntime, o: EventsOptions): Promise<number> {
  let offset = 0;
  let shown = 0;
  const print = (events: LoggedNotification[]) => {
    for (const e of events.filter((x) => matches(x, o))) {
      rt.io.out(o.json ? JSON.stringify(e) : formatEventLine(e));
      shown++;
    }
  };
  const first = await readNotificationLog(log, offset);
  offset = first.offset;
  print(first.events);
  if (!o.follow) {
    if (shown === 0 && !o.json) rt.io.out('no events');
    return 0;
  }
  while (!rt.signal?.aborted) {
    await sleep(rt.pollIntervalMs ?? 300, rt.signal);
    const next = await readNotificationLog(log, offset);
    offset = next.offset;
    print(next.events);
  }
  return 0;
}
