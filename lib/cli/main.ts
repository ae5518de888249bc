// The `stratus` command line (bin/stratus.ts): send any operation, inspect instances, actions,
// faults, nodes and events, and manage DLQs, against the local control plane or a deployment.
// Exit codes: 0 done / succeeded, 1 failed / rejected / unavailable, 2 bad usage or an invalid
// command (nothing sent), 130 interrupted.

import { showAuditLog } from './audit-log.ts';
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { resolve } from 'node:path';
import type { Endpoints } from '../client/endpoints.ts';
import { IMPLEMENTED_OPERATIONS, OPERATIONS, operationSlug } from '../topology.ts';
import { listDlq, redriveDlq } from './dlq.ts';
import { CliError, UsageError } from './errors.ts';
import { eventsLogOf, showEvents } from './events.ts';
import { keyValues, table } from './format.ts';
import {
  listActions,
  listFaults,
  listInstances,
  listNodes,
  showAction,
  showInstance,
} from './inspect.ts';
import {
  allOperationNames,
  operationHelp,
  operationNames,
  parseOperationArgv,
  resolveOperation,
} from './operations.ts';
import { type OptionSpec, type ParsedOptions, parseOptions, suggest } from './options.ts';
import { type CliRuntime, processRuntime } from './runtime.ts';
import { sendOperation, validateRequest } from './send.ts';
import { endpointsFromStackOutputs } from './stack-outputs.ts';
import { type Target, isConnectionRefused, resolveEndpoints, targetOf } from './target.ts';

const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  { key: 'endpoints', flags: ['endpoints'], type: 'string', valueName: 'FILE' },
  { key: 'stack', flags: ['stack'], type: 'string', valueName: 'NAME' },
  { key: 'json', flags: ['json'], type: 'boolean' },
  { key: 'help', flags: ['help'], type: 'boolean' },
];

interface Subcommand {
  usage: string;
  summary: string;
  options?: readonly OptionSpec[];
  /** Positional arguments: [required, optional]. */
  positionals?: [number, number];
  run(ctx: Context): Promise<number>;
}

interface Context {
  rt: CliRuntime;
  options: ParsedOptions;
  args: string[];
  json: boolean;
  target(): Promise<Target>;
}

const flag = (o: ParsedOptions, key: string) => o.values.get(key) === true;
const text = (o: ParsedOptions, key: string) => o.values.get(key) as string | undefined;

const SUBCOMMANDS: Readonly<Record<string, Subcommand>> = {
  instances: {
    usage: 'instances [--all]',
    summary: 'list instances (--all includes deleted ones)',
    options: [{ key: 'all', flags: ['all'], type: 'boolean' }],
    run: async (c) =>
      listInstances(await c.target(), c.rt, { json: c.json, all: flag(c.options, 'all') }),
  },
  show: {
    usage: 'show <instance-id>',
    summary: 'one instance record',
    positionals: [1, 0],
    run: async (c) => showInstance(await c.target(), c.rt, c.args[0]!, c.json),
  },
  actions: {
    usage: 'actions <instance-id>',
    summary: "an instance's actions (one per command)",
    positionals: [1, 0],
    run: async (c) => listActions(await c.target(), c.rt, c.args[0]!, c.json),
  },
  action: {
    usage: 'action <command-id>',
    summary: 'one command: outcome, events, retries',
    positionals: [1, 0],
    run: async (c) => showAction(await c.target(), c.rt, c.args[0]!, c.json),
  },
  faults: {
    usage: 'faults <instance-id>',
    summary: "an instance's faults",
    positionals: [1, 0],
    run: async (c) => listFaults(await c.target(), c.rt, c.args[0]!, c.json),
  },
  nodes: {
    usage: 'nodes',
    summary: 'compute nodes: inventory, usage against limits, claims (the resource tracker)',
    run: async (c) => listNodes(await c.target(), c.rt, c.json),
  },
  events: {
    usage: 'events [--follow] [--instance ID] [--command ID] [--type TEXT]',
    summary: 'notifications of the local control plane (--follow keeps printing)',
    options: [
      { key: 'follow', flags: ['follow', 'f'], type: 'boolean' },
      { key: 'instance', flags: ['instance'], type: 'string', valueName: 'ID' },
      { key: 'command', flags: ['command'], type: 'string', valueName: 'ID' },
      { key: 'type', flags: ['type'], type: 'string', valueName: 'TEXT' },
    ],
    run: async (c) => {
      const explicit = text(c.options, 'endpoints') ?? text(c.options, 'stack');
      let endpoints: Endpoints | null;
      try {
        endpoints = (await c.target()).endpoints;
      } catch (e) {
        // No plane running: the log of the last run can still be read.
        if (explicit !== undefined || !(e instanceof CliError)) throw e;
        endpoints = null;
      }
      const log = eventsLogOf(endpoints, c.rt.cwd);
      return showEvents(log, c.rt, {
        follow: flag(c.options, 'follow'),
        json: c.json,
        ...(text(c.options, 'instance') ? { instance: text(c.options, 'instance') } : {}),
        ...(text(c.options, 'command') ? { command: text(c.options, 'command') } : {}),
        ...(text(c.options, 'type') ? { type: text(c.options, 'type') } : {}),
      });
    },
  },
  dlq: {
    usage: 'dlq list [operation] | dlq redrive <operation> (--all | --message-id ID …)',
    summary: 'list dead-lettered commands; send them back to their queue',
    options: [
      { key: 'all', flags: ['all'], type: 'boolean' },
      { key: 'message-id', flags: ['message-id'], type: 'list', valueName: 'ID' },
    ],
    positionals: [1, 1],
    run: async (c) => {
      const [action, operation] = c.args;
      if (action === 'list') {
        return listDlq(await c.target(), c.rt, {
          json: c.json,
          ...(operation ? { operation } : {}),
        });
      }
      if (action === 'redrive') {
        if (!operation) throw new UsageError('dlq redrive needs an operation (or lifecycle)');
        return redriveDlq(await c.target(), c.rt, {
          operation,
          all: flag(c.options, 'all'),
          messageIds: (c.options.values.get('message-id') as string[] | undefined) ?? [],
          json: c.json,
        });
      }
      throw new UsageError(`unknown dlq action ${action}`, 'use: dlq list | dlq redrive');
    },
  },
  'audit-log': {
    usage: "audit-log ['YYYY-MM-DD HH:MM:SS'] [--period SPEC]",
    summary: 'the usage audit of the last period completed before a time (default now)',
    options: [{ key: 'period', flags: ['period'], type: 'string', valueName: 'SPEC' }],
    positionals: [0, 1],
    run: async (c) =>
      showAuditLog(await c.target(), c.rt, {
        json: c.json,
        ...(c.args[0] ? { before: c.args[0] } : {}),
        ...(text(c.options, 'period') ? { period: text(c.options, 'period') } : {}),
      }),
  },
  endpoints: {
    usage: 'endpoints [--from-stack-outputs FILE|-] [--region REGION]',
    summary: "show the target's endpoints, or make an endpoints file from a stack's outputs",
    options: [
      {
        key: 'from-stack-outputs',
        flags: ['from-stack-outputs'],
        type: 'string',
        valueName: 'FILE',
      },
      { key: 'region', flags: ['region'], type: 'string', valueName: 'REGION' },
    ],
    run: async (c) => {
      const from = text(c.options, 'from-stack-outputs');
      if (from !== undefined) {
        const raw =
          from === '-'
            ? await (c.rt.readStdin ?? (() => Promise.resolve('')))()
            : await readFile(resolve(c.rt.cwd, from), 'utf8');
        let described: unknown;
        try {
          described = JSON.parse(raw);
        } catch {
          throw new CliError(
            `${from}: not JSON (expected aws cloudformation describe-stacks output)`,
          );
        }
        const region = text(c.options, 'region') ?? c.rt.env.AWS_REGION;
        const endpoints = endpointsFromStackOutputs(described, region ? { region } : {});
        c.rt.io.out(JSON.stringify(endpoints, null, 2));
        return 0;
      }
      const t = await c.target();
      if (c.json) {
        c.rt.io.out(JSON.stringify(t.endpoints, null, 2));
        return 0;
      }
      const e = t.endpoints;
      c.rt.io.out(
        keyValues([
          ['source', t.source],
          ['region', e.region],
          ['SQS', e.sqs.endpoint ?? '(AWS)'],
          ['DynamoDB', e.dynamodb.endpoint ?? '(AWS)'],
          ['state table', e.dynamodb.tables?.state ?? '-'],
          ['EventBridge', e.eventbridge.endpoint ?? (t.local ? '(none)' : '(AWS)')],
          ['bus', e.eventbridge.bus],
          ['notifications', e.notifications_log ?? '-'],
          ...Object.entries(e.sqs.queues).map(([op, url]) => [`queue ${op}`, url] as const),
        ]),
      );
      return 0;
    },
  },
  operations: {
    usage: 'operations',
    summary: 'every operation, its short names, and whether it is implemented',
    run: async (c) => {
      const rows = OPERATIONS.map((op) => ({
        operation: op,
        names: operationNames(op),
        implemented: IMPLEMENTED_OPERATIONS.includes(op),
      }));
      if (c.json) c.rt.io.out(JSON.stringify(rows, null, 2));
      else {
        c.rt.io.out(
          table(
            ['OPERATION', 'ALSO', 'IMPLEMENTED'],
            rows.map((r) => [
              operationSlug(r.operation),
              r.names
                .filter((n) => n !== operationSlug(r.operation) && n !== r.operation)
                .join(', '),
              r.implemented ? 'yes' : '-',
            ]),
          ),
        );
      }
      return 0;
    },
  },
};

export function generalHelp(): string {
  const lines = [
    'usage: stratus <command> [args] [--json] [--endpoints FILE | --stack NAME]',
    '',
    'Send a command (any operation of CONTRACT §1; `stratus operations` lists them):',
    '  stratus <operation> [instance-id|node] [--arg value …] [--wait] [--command-id ID]',
    '          [--project ID] [--user ID] [--admin] [--reply-to URL] [--args JSON]',
    '  e.g.  stratus build --flavor m1.small --image ami-1 --wait',
    '        stratus reboot <instance-id> --hard --wait',
    '        stratus <operation> --help          its arguments',
    '',
    'Look around:',
  ];
  // Long usages put their summary on the next line.
  const width = 44;
  for (const s of Object.values(SUBCOMMANDS)) {
    const usage = `  stratus ${s.usage}`;
    if (usage.length <= width) lines.push(`${usage.padEnd(width)}  ${s.summary}`);
    else lines.push(usage, `${''.padEnd(width)}  ${s.summary}`);
  }
  lines.push(
    '',
    'Target: the local control plane (.stratus/endpoints.json, written by `npm start`) unless',
    '--endpoints FILE (or STRATUS_ENDPOINTS) or --stack NAME (reads the stack outputs with the AWS',
    'CLI) is given. Exit codes: 0 ok, 1 failed/rejected/unavailable, 2 invalid (nothing sent).',
  );
  return lines.join('\n');
}

function defaultUser(env: CliRuntime['env']): string {
  try {
    return userInfo().username || env.USER || 'stratus-cli';
  } catch {
    return env.USER ?? 'stratus-cli';
  }
}

/** Splits off the command word; global options may come before it. */
function commandWord(argv: readonly string[]): { word: string | undefined; rest: string[] } {
  const withValue = new Set(['--endpoints', '--stack']);
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (withValue.has(token)) {
      i++;
      continue;
    }
    if (token.startsWith('-')) continue;
    return { word: token, rest: [...argv.slice(0, i), ...argv.slice(i + 1)] };
  }
  return { word: undefined, rest: [...argv] };
}

function targetLoader(rt: CliRuntime, options: ParsedOptions, opened: Target[]) {
  let target: Promise<Target> | undefined;
  return () =>
    (target ??= resolveEndpoints({
      cwd: rt.cwd,
      env: rt.env,
      ...(text(options, 'endpoints') !== undefined
        ? { endpoints: text(options, 'endpoints') }
        : {}),
      ...(text(options, 'stack') !== undefined ? { stack: text(options, 'stack') } : {}),
    }).then(({ endpoints, source }) => {
      const t = targetOf(endpoints, source);
      opened.push(t);
      return t;
    }));
}

async function dispatch(
  argv: readonly string[],
  rt: CliRuntime,
  opened: Target[],
): Promise<number> {
  const { word, rest } = commandWord(argv);
  if (word === undefined || word === 'help') {
    const topic = word === 'help' ? rest.find((t) => !t.startsWith('-')) : undefined;
    const op = topic ? resolveOperation(topic) : undefined;
    rt.io.out(op ? operationHelp(op) : generalHelp());
    return word === undefined && !rest.some((t) => t === '--help' || t === '-h') ? 2 : 0;
  }

  const operation = resolveOperation(word);
  if (operation) {
    if (rest.includes('--help') || rest.includes('-h')) {
      rt.io.out(operationHelp(operation));
      return 0;
    }
    const request = parseOperationArgv(
      operation,
      rest,
      { user: defaultUser(rt.env), project: 'demo' },
      GLOBAL_OPTIONS,
    );
    validateRequest(request);
    const target = await targetLoader(rt, request.options, opened)();
    return sendOperation(request, target, rt, flag(request.options, 'json'));
  }

  const sub = SUBCOMMANDS[word];
  if (!sub) {
    const guess = suggest(word, [...Object.keys(SUBCOMMANDS), ...allOperationNames()]);
    throw new UsageError(
      `unknown command ${word}`,
      guess
        ? `did you mean ${guess}? (stratus --help lists commands)`
        : 'stratus --help lists commands',
    );
  }
  const options = parseOptions(rest, [...GLOBAL_OPTIONS, ...(sub.options ?? [])]);
  if (flag(options, 'help')) {
    rt.io.out(`usage: stratus ${sub.usage}\n\n${sub.summary}`);
    return 0;
  }
  const [required, optional] = sub.positionals ?? [0, 0];
  if (options.positionals.length < required || options.positionals.length > required + optional) {
    throw new UsageError(`usage: stratus ${sub.usage}`);
  }
  return sub.run({
    rt,
    options,
    args: options.positionals,
    json: flag(options, 'json'),
    target: targetLoader(rt, options, opened),
  });
}

function report(e: unknown, rt: CliRuntime, opened: readonly Target[]): number {
  const hint = (h: string | undefined) => {
    if (h) rt.io.err(h.startsWith('usage:') || h.includes('\n') ? h : `hint: ${h}`);
  };
  if (e instanceof UsageError) {
    rt.io.err(`stratus: ${e.message}`);
    hint(e.hint);
    return 2;
  }
  if (e instanceof CliError) {
    rt.io.err(`stratus: ${e.message}`);
    hint(e.hint);
    return 1;
  }
  if (isConnectionRefused(e)) {
    const where = opened[0]?.endpoints;
    const at = where
      ? ` at ${where.sqs.endpoint ?? ''} ${where.dynamodb.endpoint ?? ''}`.trimEnd()
      : '';
    rt.io.err(`stratus: cannot reach the control plane${at} (connection refused)`);
    hint('is `npm start` running?');
    return 1;
  }
  const err = e as Error;
  rt.io.err(`stratus: ${err.name && err.name !== 'Error' ? `${err.name}: ` : ''}${err.message}`);
  return 1;
}

/** Runs one CLI invocation and returns its exit code. Never throws. */
export async function runCli(
  argv: readonly string[],
  rt: CliRuntime = processRuntime(),
): Promise<number> {
  const opened: Target[] = [];
  try {
    return await dispatch(argv, rt, opened);
  } catch (e) {
    return report(e, rt, opened);
  } finally {
    for (const t of opened) t.close();
  }
}
