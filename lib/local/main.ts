// `npm start`: the control plane on one machine (lib/local/plane.ts), its endpoints printed as a
// table and written to .stratus/endpoints.json, notifications printed as they happen, and
// Ctrl-C stopping it cleanly: the event sources finish their batches in flight, then the
// emulators stop, and the queued commands stay on disk for the next start.

import { stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { formatEventLine } from '../cli/format.ts';
import type { Endpoints } from '../client/endpoints.ts';
import { JavaMissingError, PortBusyError } from './emulators.ts';
import { readNotificationLog } from './notification-log.ts';
import {
  DEFAULT_DATA_DIR,
  DEFAULT_DYNAMODB_PORT,
  DEFAULT_SQS_PORT,
  DataDirInUseError,
  type LocalPlane,
  startLocalPlane,
} from './plane.ts';

function usage(): string {
  return [
    'usage: npm start [-- [--memory] [--data-dir DIR] [--sqs-port N] [--dynamodb-port N]]',
    '',
    `  --memory          keep nothing on disk (default: data under ${DEFAULT_DATA_DIR}/)`,
    `  --data-dir DIR    where endpoints.json, the notification log and the data live`,
    `  --sqs-port N      SQS emulator port (default ${DEFAULT_SQS_PORT}, env STRATUS_LOCAL_SQS_PORT; 0 = any free port)`,
    `  --dynamodb-port N DynamoDB Local port (default ${DEFAULT_DYNAMODB_PORT}, env STRATUS_LOCAL_DYNAMODB_PORT; 0 = any free port)`,
    '',
    'Configuration options are read from STRATUS_<OPTION> (see the README), e.g.',
    '  STRATUS_NOTIFY_ON_STATE_CHANGE=vm_and_task_state npm start',
    'AWS_ENDPOINT_URL_EVENTBRIDGE=<url> also publishes every notification there with PutEvents.',
  ].join('\n');
}

/** Thrown for a bad command line: printed with the usage. */
class UsageError extends Error {}

function portOption(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`${flag}: expected a port number 0-65535, got "${value}"`);
  }
  return port;
}

function printTable(e: Endpoints, dataDir: string, memory: boolean): void {
  const rows: [string, string][] = [
    ['DynamoDB', e.dynamodb.endpoint ?? ''],
    ['SQS', e.sqs.endpoint ?? ''],
    ['EventBridge', e.eventbridge.endpoint ?? '(none: notifications only in the log)'],
    ['bus', e.eventbridge.bus],
    ['notifications', e.notifications_log ?? ''],
    ['data', memory ? '(memory only)' : dataDir],
    ...Object.entries(e.sqs.queues).map(([op, url]) => [`queue ${op}`, url] as [string, string]),
    ...(e.sqs.lifecycle ? [['queue lifecycle events', e.sqs.lifecycle] as [string, string]] : []),
    ...(e.sqs.audit ? [['queue usage audit shards', e.sqs.audit] as [string, string]] : []),
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log('\nStratus control plane is up\n');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
  console.log(
    `\nEndpoints written to ${dataDir}/endpoints.json. Try: npx stratus --help. Ctrl-C stops.\n`,
  );
}

/** Prints notifications from the local log as they are appended (not those of earlier runs). */
async function followNotifications(path: string): Promise<{ stop(): Promise<void> }> {
  let offset = (await stat(path).catch(() => ({ size: 0 }))).size;
  let reading: Promise<void> = Promise.resolve();
  const read = async () => {
    const next = await readNotificationLog(path, offset);
    offset = next.offset;
    for (const event of next.events) console.log(formatEventLine(event));
  };
  const timer = setInterval(() => {
    reading = reading.then(read).catch(() => undefined);
  }, 300);
  return {
    async stop() {
      clearInterval(timer);
      await reading;
      await read().catch(() => undefined);
    },
  };
}

/** The one line a user needs for the failures they can fix themselves. */
function explain(e: unknown, flags: { sqs: string; dynamodb: string }): string {
  if (e instanceof PortBusyError) {
    const dynamo = /dynamo/i.test(e.service);
    return (
      `port ${e.port} for ${dynamo ? 'DynamoDB Local' : 'the SQS emulator'} is busy: is another ` +
      `\`npm start\` running? Stop it, or choose another port: ` +
      `npm start -- ${dynamo ? flags.dynamodb : flags.sqs} <port> (0 picks a free one)`
    );
  }
  if (e instanceof DataDirInUseError) {
    return `${e.message}: stop it first, or give this one its own --data-dir (or --memory)`;
  }
  if (e instanceof JavaMissingError || e instanceof UsageError) return e.message;
  return (e as Error).message;
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  let plane: LocalPlane | undefined;
  const flags = { sqs: '--sqs-port', dynamodb: '--dynamodb-port' };
  try {
    let values;
    try {
      ({ values } = parseArgs({
        args: argv,
        options: {
          memory: { type: 'boolean', default: false },
          'data-dir': { type: 'string', default: DEFAULT_DATA_DIR },
          'sqs-port': { type: 'string' },
          'dynamodb-port': { type: 'string' },
          help: { type: 'boolean', short: 'h', default: false },
        },
      }));
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (values.help) {
      console.log(usage());
      return 0;
    }
    const sqsPort = portOption(
      flags.sqs,
      values['sqs-port'] ?? process.env.STRATUS_LOCAL_SQS_PORT,
      DEFAULT_SQS_PORT,
    );
    const dynamodbPort = portOption(
      flags.dynamodb,
      values['dynamodb-port'] ?? process.env.STRATUS_LOCAL_DYNAMODB_PORT,
      DEFAULT_DYNAMODB_PORT,
    );
    plane = await startLocalPlane({
      dataDir: values['data-dir'],
      memory: values.memory,
      sqsPort,
      dynamodbPort,
      onError: (e) => console.error(`  error  ${(e as Error).message}`),
    });
    printTable(plane.endpoints, values['data-dir'], values.memory);
    const follower = await followNotifications(plane.endpoints.notifications_log ?? '');

    await new Promise<void>((done) => {
      const shutdown = () => {
        console.log('\nStopping: finishing the batches in flight (Ctrl-C again to force) …');
        done();
      };
      process.once('SIGINT', shutdown);
      process.once('SIGTERM', shutdown);
    });
    await plane.stop();
    await follower.stop();
    console.log(
      values.memory
        ? 'Stopped.'
        : `Stopped. Queued commands and state are kept in ${values['data-dir']}/ for the next start.`,
    );
    return 0;
  } catch (e) {
    await plane?.stop().catch(() => undefined);
    console.error(`stratus: ${explain(e, flags)}`);
    if (e instanceof UsageError) console.error(usage());
    return 1;
  }
}

if (import.meta.main) {
  // Exit explicitly: everything has been stopped, and a stray handle must not keep us alive.
  process.exit(await main());
}
