// `stratus <operation> [instance-id|node] [--arg value …]`: operation names, their aliases and
// their flags, all derived from lib/topology.ts (OPERATIONS, HOST_OPERATIONS) and the args
// schemas (lib/commands/schemas.ts). A new operation or argument needs no change here.

import type { CommandContext, CommandInput } from '../client/command-body.ts';
import { ARGS_SCHEMAS } from '../commands/schemas.ts';
import {
  HOST_OPERATIONS,
  IMPLEMENTED_OPERATIONS,
  OPERATIONS,
  type Operation,
  operationSlug,
} from '../topology.ts';
import { type OptionSpec, type ParsedOptions, UsageError, parseOptions } from './options.ts';
import { type FieldKind, type FieldSpec, fieldsOf } from './schema-fields.ts';

/** Names people reach for that the derivation below does not produce. */
const EXTRA_ALIASES: Readonly<Record<string, Operation>> = {
  build: 'build_and_run_instance',
  delete: 'terminate_instance',
};

/** Shorter flag names for a few arguments, by argument name (any operation that has it). */
const FIELD_ALIASES: Readonly<Record<string, readonly string[]>> = {
  image_ref: ['image'],
  display_name: ['name'],
};

/** `reboot_instance` → `reboot`; none for names that would read oddly (`add-fixed-ip-to`). */
function shortAlias(operation: Operation): string | undefined {
  const slug = operationSlug(operation);
  if (!slug.endsWith('-instance')) return undefined;
  const short = slug.slice(0, -'-instance'.length);
  return /-(to|from)$/.test(short) ? undefined : short;
}

/** Every name of an operation: `reboot_instance`, `reboot-instance`, `reboot`. */
export function operationNames(operation: Operation): string[] {
  const names = [operationSlug(operation), operation];
  const short = shortAlias(operation);
  if (short) names.push(short);
  for (const [alias, op] of Object.entries(EXTRA_ALIASES)) if (op === operation) names.push(alias);
  return [...new Set(names)];
}

const BY_NAME: ReadonlyMap<string, Operation> = new Map(
  OPERATIONS.flatMap((op) => operationNames(op).map((name) => [name, op] as const)),
);

export function resolveOperation(word: string): Operation | undefined {
  return BY_NAME.get(word);
}

export function allOperationNames(): string[] {
  return [...BY_NAME.keys()];
}

export const isHostOperation = (op: Operation): boolean => HOST_OPERATIONS.includes(op);

const kebab = (name: string) => name.replaceAll('_', '-');

function valueNameOf(kind: FieldKind): string {
  switch (kind.type) {
    case 'enum':
      return kind.values.join('|');
    case 'integer':
      return 'N';
    case 'boolean':
      return '';
    case 'map':
      return 'KEY=VALUE';
    case 'string-list':
      return 'VALUE';
    case 'object-list':
      return 'JSON|K=V,…';
    case 'json':
      return 'JSON';
    default:
      return 'VALUE';
  }
}

/** The key under which an argument's value is stored by the parser. */
const argKey = (field: string) => `arg:${field}`;

function fieldOptions(fields: readonly FieldSpec[]): OptionSpec[] {
  const specs: OptionSpec[] = [];
  for (const f of fields) {
    const flags = [kebab(f.name), f.name, ...(FIELD_ALIASES[f.name] ?? [])];
    const repeatable = ['string-list', 'map', 'object-list'].includes(f.kind.type);
    if (repeatable && f.name.endsWith('s')) flags.push(kebab(f.name.slice(0, -1)));
    specs.push({
      key: argKey(f.name),
      flags: [...new Set(flags)],
      type: f.kind.type === 'boolean' ? 'boolean' : repeatable ? 'list' : 'string',
      valueName: valueNameOf(f.kind),
      help: f.required ? 'required' : undefined,
    });
  }
  // `--hard` for reboot_type HARD: one flag per enum value, where it names nothing else.
  const taken = new Set(specs.flatMap((s) => s.flags));
  for (const f of fields) {
    if (f.kind.type !== 'enum') continue;
    for (const value of f.kind.values) {
      const flag = value.toLowerCase().replaceAll('_', '-');
      if (taken.has(flag)) continue;
      taken.add(flag);
      specs.push({
        key: argKey(f.name),
        flags: [flag],
        type: 'string',
        constant: value,
        help: `= --${kebab(f.name)} ${value}`,
      });
    }
  }
  return specs;
}

/** Options every operation takes, besides its arguments. */
export function sendOptions(operation: Operation): OptionSpec[] {
  return [
    {
      key: 'wait',
      flags: ['wait'],
      type: 'boolean',
      help: 'wait for the outcome, showing progress',
    },
    {
      key: 'timeout',
      flags: ['timeout'],
      type: 'string',
      valueName: 'SECONDS',
      help: 'of --wait (default 300)',
    },
    {
      key: 'command-id',
      flags: ['command-id'],
      type: 'string',
      valueName: 'ID',
      help: 'idempotency key (default: a new UUID)',
    },
    {
      key: 'project',
      flags: ['project'],
      type: 'string',
      valueName: 'ID',
      help: 'context.project_id (default demo)',
    },
    {
      key: 'user',
      flags: ['user'],
      type: 'string',
      valueName: 'ID',
      help: 'context.user_id (default: your login)',
    },
    {
      key: 'admin',
      flags: ['admin'],
      type: 'boolean',
      help: 'claim the admin role (honoured from admin producers only)',
    },
    {
      key: 'role',
      flags: ['role'],
      type: 'list',
      valueName: 'ROLE',
      help: 'add a context role (repeatable)',
    },
    { key: 'request-id', flags: ['request-id'], type: 'string', valueName: 'ID' },
    { key: 'reply-to', flags: ['reply-to'], type: 'string', valueName: 'QUEUE_URL' },
    {
      key: 'args',
      flags: ['args'],
      type: 'string',
      valueName: 'JSON',
      help: 'arguments as one JSON object (flags win)',
    },
    ...(isHostOperation(operation)
      ? [{ key: 'node', flags: ['node'], type: 'string', valueName: 'NODE' } as const]
      : [
          {
            key: 'instance-id',
            flags: ['instance-id'],
            type: 'string',
            valueName: 'UUID',
          } as const,
        ]),
  ];
}

/** Every option an operation takes: its arguments' flags, then the sending options. */
export function operationOptionSpecs(operation: Operation): OptionSpec[] {
  return [...fieldOptions(fieldsOf(ARGS_SCHEMAS[operation])), ...sendOptions(operation)];
}

export interface OperationRequest {
  operation: Operation;
  input: CommandInput;
  context: CommandContext;
  wait: boolean;
  timeoutSeconds: number;
  options: ParsedOptions;
}

export interface OperationDefaults {
  user: string;
  project: string;
}

function parseJson(flag: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError(`--${flag}: not valid JSON`);
  }
}

function scalar(flag: string, kind: FieldKind, text: string): unknown {
  switch (kind.type) {
    case 'integer':
      if (!/^-?\d+$/.test(text.trim())) throw new UsageError(`--${flag}: expected an integer`);
      return Number(text);
    case 'number': {
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n)) {
        throw new UsageError(`--${flag}: expected a number`);
      }
      return n;
    }
    case 'boolean':
      if (/^(true|yes|on|1)$/i.test(text)) return true;
      if (/^(false|no|off|0)$/i.test(text)) return false;
      throw new UsageError(`--${flag}: expected true or false`);
    case 'enum':
      // Case-insensitive; an unknown value is left for the schema to name the choices.
      return kind.values.find((v) => v.toLowerCase() === text.toLowerCase()) ?? text;
    case 'json':
    case 'map':
    case 'object-list':
      return parseJson(flag, text);
    default:
      return text;
  }
}

function objectElement(flag: string, fields: readonly FieldSpec[], text: string): unknown {
  if (text.startsWith('{')) return parseJson(flag, text);
  if (text.includes('=')) {
    const element: Record<string, unknown> = {};
    for (const pair of text.split(',')) {
      const at = pair.indexOf('=');
      if (at <= 0) throw new UsageError(`--${flag}: expected key=value[,key=value…]`);
      const key = pair.slice(0, at).trim();
      const field = fields.find((f) => f.name === key || kebab(f.name) === key);
      element[field?.name ?? key] = field
        ? scalar(flag, field.kind, pair.slice(at + 1))
        : pair.slice(at + 1);
    }
    return element;
  }
  const required = fields.filter((f) => f.required);
  if (required.length === 1) return { [required[0]!.name]: text };
  throw new UsageError(`--${flag}: give JSON or ${fields.map((f) => `${f.name}=…`).join(',')}`);
}

/** Converts what was written for one argument into its JSON value. */
function argValue(flag: string, field: FieldSpec, raw: string | boolean | string[]): unknown {
  const kind = field.kind;
  if (typeof raw === 'boolean') return raw;
  if (typeof raw === 'string') return scalar(flag, kind, raw);
  switch (kind.type) {
    case 'string-list':
      return raw.flatMap((v) => (v.startsWith('[') ? (parseJson(flag, v) as unknown[]) : [v]));
    case 'map': {
      const map: Record<string, unknown> = {};
      for (const v of raw) {
        if (v.startsWith('{')) Object.assign(map, parseJson(flag, v));
        else {
          const at = v.indexOf('=');
          if (at <= 0) throw new UsageError(`--${flag}: expected KEY=VALUE`);
          map[v.slice(0, at)] = v.slice(at + 1);
        }
      }
      return map;
    }
    case 'object-list':
      return raw.flatMap((v) =>
        v.startsWith('[')
          ? (parseJson(flag, v) as unknown[])
          : [objectElement(flag, kind.fields, v)],
      );
    default:
      return raw;
  }
}

/** Parses `stratus <operation> …` (everything after the operation name). */
export function parseOperationArgv(
  operation: Operation,
  argv: readonly string[],
  defaults: OperationDefaults,
  extraOptions: readonly OptionSpec[] = [],
): OperationRequest {
  const fields = fieldsOf(ARGS_SCHEMAS[operation]);
  const parsed = parseOptions(argv, [...operationOptionSpecs(operation), ...extraOptions]);
  const { values, sources } = parsed;
  const str = (key: string) => values.get(key) as string | undefined;

  const host = isHostOperation(operation);
  if (parsed.positionals.length > 1) {
    throw new UsageError(
      `unexpected argument "${parsed.positionals[1]}"`,
      `usage: stratus ${operationSlug(operation)} ${host ? '<node>' : '<instance-id>'} [--option value …]`,
    );
  }
  const [subject] = parsed.positionals;
  const instanceId = host ? undefined : (str('instance-id') ?? subject);
  const node = host ? (str('node') ?? subject) : undefined;
  if (subject !== undefined && (str('instance-id') ?? str('node')) !== undefined) {
    throw new UsageError(`give the ${host ? 'node' : 'instance id'} once, not twice`);
  }

  const fromJson = str('args') === undefined ? {} : parseJson('args', str('args')!);
  if (typeof fromJson !== 'object' || fromJson === null || Array.isArray(fromJson)) {
    throw new UsageError('--args: expected a JSON object');
  }
  const args: Record<string, unknown> = { ...(fromJson as Record<string, unknown>) };
  for (const field of fields) {
    const raw = values.get(argKey(field.name));
    if (raw === undefined) continue;
    args[field.name] = argValue(sources.get(argKey(field.name)) ?? field.name, field, raw);
  }

  const roles = [...((values.get('role') as string[] | undefined) ?? [])];
  if (values.get('admin') === true && !roles.includes('admin')) roles.push('admin');
  const timeout = str('timeout');
  const timeoutSeconds = timeout === undefined ? 300 : Number(timeout);
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) {
    throw new UsageError('--timeout: expected a number of seconds');
  }
  return {
    operation,
    input: {
      ...(instanceId !== undefined ? { instanceId } : {}),
      ...(node !== undefined ? { node } : {}),
      args: args as CommandInput['args'],
      ...(str('command-id') !== undefined ? { commandId: str('command-id') } : {}),
      ...(str('reply-to') !== undefined ? { replyTo: str('reply-to') } : {}),
    },
    context: {
      user_id: str('user') ?? defaults.user,
      project_id: str('project') ?? defaults.project,
      ...(roles.length > 0 ? { roles } : {}),
      ...(str('request-id') !== undefined ? { request_id: str('request-id') } : {}),
    },
    wait: values.get('wait') === true,
    timeoutSeconds,
    options: parsed,
  };
}

function describeKind(kind: FieldKind): string {
  switch (kind.type) {
    case 'map':
      return 'repeatable, or a JSON object';
    case 'string-list':
      return 'repeatable';
    case 'object-list':
      return `repeatable: JSON or ${kind.fields.map((f) => `${f.name}=…`).join(',')}`;
    case 'boolean':
      return 'or --no-…';
    default:
      return '';
  }
}

/** `stratus <operation> --help`. */
export function operationHelp(operation: Operation): string {
  const fields = fieldsOf(ARGS_SCHEMAS[operation]);
  const host = isHostOperation(operation);
  const subject =
    operation === 'build_and_run_instance' ? '[instance-id]' : host ? '<node>' : '<instance-id>';
  const specs = fieldOptions(fields);
  const flagLine = (s: OptionSpec) => {
    const value =
      s.constant !== undefined || s.type === 'boolean' ? '' : ` ${s.valueName ?? 'VALUE'}`;
    const alias = s.flags.filter((f) => f !== s.flags[0] && !f.includes('_'));
    return `  --${s.flags[0]}${value}${alias.length ? ` (also --${alias.join(', --')})` : ''}`;
  };
  const lines = [
    `usage: stratus ${operationSlug(operation)} ${subject} [options]`,
    `       (also: ${operationNames(operation)
      .filter((n) => n !== operationSlug(operation))
      .join(', ')})`,
    '',
    IMPLEMENTED_OPERATIONS.includes(operation)
      ? `Sends ${operation} (CONTRACT §1).`
      : `Sends ${operation} (CONTRACT §1). Not implemented yet: a deployment has no queue for it.`,
    '',
    fields.length > 0 ? 'Arguments:' : 'Arguments: none',
  ];
  for (const s of specs) {
    const field = fields.find((f) => argKey(f.name) === s.key);
    const notes = [s.help, field && s.constant === undefined ? describeKind(field.kind) : '']
      .filter(Boolean)
      .join('; ');
    lines.push(`${flagLine(s).padEnd(44)} ${notes}`.trimEnd());
  }
  lines.push('', 'Options:');
  for (const s of sendOptions(operation)) {
    lines.push(`${flagLine(s).padEnd(44)} ${s.help ?? ''}`.trimEnd());
  }
  lines.push(
    '  --json                                     machine-readable output',
    '  --endpoints FILE | --stack NAME            target (default .stratus/endpoints.json)',
  );
  return lines.join('\n');
}
