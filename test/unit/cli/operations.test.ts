// `stratus <operation> …` → command body: examples for several operations, the flag rules, and
// a property over EVERY operation in OPERATIONS: arguments written as CLI flags come out as a
// body that the functions' own parser (parseCommand) accepts, with the same args.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildCommandBody } from '../../../lib/client/command-body.ts';
import {
  operationNames,
  operationOptionSpecs,
  parseOperationArgv,
  resolveOperation,
} from '../../../lib/cli/operations.ts';
import { UsageError } from '../../../lib/cli/options.ts';
import { type FieldKind, type FieldSpec, fieldsOf } from '../../../lib/cli/schema-fields.ts';
import { parseCommand } from '../../../lib/commands/parse.ts';
import { ARGS_SCHEMAS } from '../../../lib/commands/schemas.ts';
import { HOST_OPERATIONS, OPERATIONS, type Operation } from '../../../lib/topology.ts';

const ID = '6a1f3c2e-8b4d-4e7f-9a0b-1c2d3e4f5a6b';
const DEFAULTS = { user: 'alice', project: 'web' };

function bodyOf(operation: Operation, argv: string[]) {
  const request = parseOperationArgv(operation, argv, DEFAULTS);
  return buildCommandBody(operation, request.input, request.context).body;
}

describe('operation names', () => {
  it('accepts the contract name, its kebab form and short aliases', () => {
    expect(resolveOperation('reboot_instance')).toBe('reboot_instance');
    expect(resolveOperation('reboot-instance')).toBe('reboot_instance');
    expect(resolveOperation('reboot')).toBe('reboot_instance');
    expect(resolveOperation('build')).toBe('build_and_run_instance');
    expect(resolveOperation('delete')).toBe('terminate_instance');
    expect(resolveOperation('live-migrate')).toBe('live_migrate_instance');
    expect(resolveOperation('add-fixed-ip-to')).toBeUndefined();
    expect(resolveOperation('rebooot')).toBeUndefined();
  });

  it('gives every operation names that belong to it alone', () => {
    const owners = new Map<string, Operation>();
    for (const op of OPERATIONS) {
      for (const name of operationNames(op)) {
        expect(owners.get(name) ?? op, `${name} names two operations`).toBe(op);
        owners.set(name, op);
      }
    }
    expect(owners.size).toBeGreaterThanOrEqual(OPERATIONS.length * 2);
  });

  it('has no flag that means two things for any operation', () => {
    const global = ['endpoints', 'stack', 'json', 'help'];
    for (const op of OPERATIONS) {
      const flags = [...operationOptionSpecs(op).flatMap((s) => s.flags), ...global];
      expect(flags.length, op).toBe(new Set(flags).size);
    }
  });
});

describe('parsing an operation command line', () => {
  it('reboot <id> --hard / --reboot-type soft', () => {
    expect(bodyOf('reboot_instance', [ID, '--hard'])).toMatchObject({
      operation: 'reboot_instance',
      instance_id: ID,
      args: { reboot_type: 'HARD' },
      context: { user_id: 'alice', project_id: 'web' },
    });
    expect(bodyOf('reboot_instance', [ID, '--reboot-type', 'soft']).args).toEqual({
      reboot_type: 'SOFT',
    });
  });

  it('build with repeated, key=value and JSON arguments', () => {
    const body = bodyOf('build_and_run_instance', [
      '--flavor',
      'm1.small',
      '--image',
      'ami-1',
      '--name=web 1',
      '--network',
      'net-a',
      '--network',
      'network_id=net-b,fixed_ip=10.0.0.5',
      '--security-group',
      'default',
      '--security-group',
      'web',
      '--metadata',
      'team=web',
      '--metadata',
      'tier=a=b',
      '--block-device-mapping',
      '{"volume_id":"vol-1","boot_index":0}',
      '--block-device-mapping',
      'volume_id=vol-2,boot_index=1,delete_on_termination=true',
      '--command-id',
      'cmd-7',
      '--admin',
    ]);
    expect(body).toEqual({
      version: 1,
      command_id: 'cmd-7',
      operation: 'build_and_run_instance',
      context: { user_id: 'alice', project_id: 'web', roles: ['admin'] },
      args: {
        flavor: 'm1.small',
        image_ref: 'ami-1',
        display_name: 'web 1',
        networks: [{ network_id: 'net-a' }, { network_id: 'net-b', fixed_ip: '10.0.0.5' }],
        security_groups: ['default', 'web'],
        metadata: { team: 'web', tier: 'a=b' },
        block_device_mapping: [
          { volume_id: 'vol-1', boot_index: 0 },
          { volume_id: 'vol-2', boot_index: 1, delete_on_termination: true },
        ],
      },
    });
  });

  it('stop --no-clean-shutdown, backup --rotation, host operations take the node', () => {
    expect(bodyOf('stop_instance', [ID, '--no-clean-shutdown']).args).toEqual({
      clean_shutdown: false,
    });
    expect(
      bodyOf('backup_instance', [
        ID,
        '--image-name',
        'b',
        '--backup-type',
        'daily',
        '--rotation',
        '3',
      ]).args,
    ).toEqual({ image_name: 'b', backup_type: 'daily', rotation: 3 });
    expect(bodyOf('set_host_enabled', ['fake-node-1', '--enabled', 'false'])).toMatchObject({
      node: 'fake-node-1',
      args: { enabled: false },
    });
    expect(bodyOf('host_maintenance_mode', ['--node', 'n1', '--mode'])).toMatchObject({
      node: 'n1',
      args: { mode: true },
    });
  });

  it('--args gives JSON arguments, flags win over it', () => {
    expect(
      bodyOf('rebuild_instance', [
        ID,
        '--args',
        '{"image_ref":"a","display_name":"x"}',
        '--image',
        'b',
      ]).args,
    ).toEqual({ image_ref: 'b', display_name: 'x' });
  });

  it('rejects what it cannot read, naming the flag', () => {
    const usage = (op: Operation, argv: string[]) => {
      try {
        parseOperationArgv(op, argv, DEFAULTS);
      } catch (e) {
        expect(e).toBeInstanceOf(UsageError);
        return (e as Error).message;
      }
      throw new Error('expected a usage error');
    };
    expect(usage('reboot_instance', [ID, '--hardd'])).toBe('unknown option --hardd');
    expect(usage('reboot_instance', [ID, '--hard', '--soft'])).toBe('--soft conflicts with --hard');
    expect(usage('backup_instance', [ID, '--rotation', 'many'])).toBe(
      '--rotation: expected an integer',
    );
    expect(usage('build_and_run_instance', ['--metadata', 'novalue'])).toBe(
      '--metadata: expected KEY=VALUE',
    );
    expect(usage('reboot_instance', [ID, 'extra', '--hard'])).toBe('unexpected argument "extra"');
    expect(usage('reboot_instance', [ID, '--instance-id', ID])).toMatch(/once, not twice/);
    expect(usage('stop_instance', [ID, '--timeout', 'soon'])).toMatch(/--timeout/);
  });

  it('leaves schema errors to the schemas: field names, never values', () => {
    const request = parseOperationArgv(
      'set_admin_password',
      ['not-a-uuid', '--new-password', 'hunter2', '--reply-to', 'ftp://x'],
      DEFAULTS,
    );
    let message = '';
    try {
      buildCommandBody('set_admin_password', request.input, request.context);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/instance_id: must be a UUID/);
    expect(message).toMatch(/reply_to: must be an SQS queue URL/);
    expect(message).not.toContain('hunter2');
  });
});

// ── the property ──────────────────────────────────────────────────────────────────────────────

const kebab = (s: string) => s.replaceAll('_', '-');

/** The zod schema of one argument, to keep generated values valid. */
function fieldSchema(op: Operation, field: string) {
  const shape = (ARGS_SCHEMAS[op] as unknown as { def: { shape: Record<string, unknown> } }).def
    .shape;
  return shape[field] as { safeParse(v: unknown): { success: boolean } };
}

/** Strings a CLI user might type, including awkward ones (spaces, '=', leading '-', unicode). */
const text = fc.oneof(
  fc.stringMatching(/^[a-z][a-z0-9-]{0,20}[a-z0-9]$/),
  fc.string({ minLength: 1, maxLength: 24 }),
  fc.ipV4(),
  fc.ipV6(),
  fc.constantFrom('/dev/vdb', '/dev/vdc', 'aGVsbG8=', 'web=1', '-dash', 'ä ö'),
);
/** A list element or map key must not look like JSON (documented: use --args for those). */
const listItem = text.filter((s) => !s.startsWith('[') && !s.startsWith('{'));

function valueArb(kind: FieldKind, valid: (v: unknown) => boolean): fc.Arbitrary<unknown> {
  switch (kind.type) {
    case 'string':
      return text.filter(valid);
    case 'integer':
    case 'number':
      return fc.integer({ min: -3, max: 5000 }).filter(valid);
    case 'boolean':
      return fc.boolean();
    case 'enum':
      return fc.constantFrom(...kind.values);
    case 'string-list':
      return fc.array(listItem, { maxLength: 3 }).filter(valid);
    case 'map':
      return fc
        .dictionary(fc.stringMatching(/^[a-z][a-z0-9_.]{0,10}$/), fc.string({ maxLength: 20 }), {
          maxKeys: 3,
        })
        .filter(valid);
    case 'object-list':
      return fc.array(objectArb(kind.fields), { maxLength: 2 }).filter(valid);
    case 'json':
      return fc.constant(undefined);
  }
}

function objectArb(fields: readonly FieldSpec[]): fc.Arbitrary<Record<string, unknown>> {
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of fields) {
    const base: fc.Arbitrary<unknown> =
      f.kind.type === 'integer'
        ? fc.integer({ min: -1, max: 9 })
        : f.kind.type === 'boolean'
          ? fc.boolean()
          : f.name.includes('device')
            ? fc.constantFrom('/dev/vdb', '/dev/vdc')
            : f.name.includes('ip')
              ? fc.ipV4()
              : f.name === 'contents'
                ? fc.base64String({ maxLength: 12 })
                : fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/);
    parts[f.name] = f.required ? base : fc.option(base, { nil: undefined });
  }
  return fc
    .record(parts)
    .map((o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)));
}

/** Valid args for an operation: each field optional at random, the whole checked by the schema. */
function argsArb(op: Operation): fc.Arbitrary<Record<string, unknown>> {
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of fieldsOf(ARGS_SCHEMAS[op])) {
    const schema = fieldSchema(op, f.name);
    const value = valueArb(f.kind, (v) => schema.safeParse(v).success);
    parts[f.name] = f.required ? value : fc.option(value, { nil: undefined });
  }
  return fc
    .record(parts)
    .map((o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)))
    .filter((a) => ARGS_SCHEMAS[op].safeParse(a).success);
}

/** Writes args as flags, choosing among the spellings the CLI promises. */
function flagsArb(op: Operation, args: Record<string, unknown>): fc.Arbitrary<string[]> {
  const fields = fieldsOf(ARGS_SCHEMAS[op]);
  const pieces = Object.entries(args).map(([name, value]) => {
    const f = fields.find((x) => x.name === name)!;
    const flag = `--${kebab(name)}`;
    // An empty list or map can only be written as JSON (repeating a flag zero times is nothing).
    if (typeof value === 'object' && value !== null && Object.keys(value).length === 0) {
      return fc.constant([flag, JSON.stringify(value)]);
    }
    switch (f.kind.type) {
      case 'boolean':
        return fc.constantFrom(
          value ? [flag] : [`--no-${kebab(name)}`],
          [`${flag}=${String(value)}`],
          [flag, String(value)],
        );
      case 'enum': {
        const constant = `--${String(value).toLowerCase()}`;
        return fc.constantFrom(
          [flag, String(value)],
          [flag, String(value).toLowerCase()],
          [constant],
        );
      }
      case 'integer':
      case 'number':
        return fc.constantFrom([flag, String(value)], [`${flag}=${String(value)}`]);
      case 'string-list':
        return fc.constantFrom(
          (value as string[]).flatMap((v) => [flag, v]),
          [flag, JSON.stringify(value)],
        );
      case 'map':
        return fc.constantFrom(
          Object.entries(value as Record<string, string>).flatMap(([k, v]) => [flag, `${k}=${v}`]),
          [flag, JSON.stringify(value)],
        );
      case 'object-list':
        return fc.constantFrom(
          (value as unknown[]).flatMap((v) => [flag, JSON.stringify(v)]),
          [flag, JSON.stringify(value)],
        );
      default:
        return fc.constantFrom([flag, String(value)], [`${flag}=${String(value)}`]);
    }
  });
  return fc
    .tuple(...pieces)
    .chain((chunks) => fc.shuffledSubarray(chunks, { minLength: chunks.length }))
    .map((chunks) => chunks.flat());
}

describe('every operation round-trips through the CLI parser', () => {
  it('into a body parseCommand accepts, with the same args', () => {
    const scenario = fc.constantFrom(...OPERATIONS).chain((op) =>
      fc.record({
        op: fc.constant(op),
        name: fc.constantFrom(...operationNames(op)),
        subject: HOST_OPERATIONS.includes(op)
          ? fc.stringMatching(/^node-[a-z0-9]{1,8}$/)
          : op === 'build_and_run_instance'
            ? fc.option(fc.uuid(), { nil: undefined })
            : fc.uuid(),
        args: argsArb(op),
      }),
    );
    fc.assert(
      fc.property(
        scenario.chain((s) => fc.record({ s: fc.constant(s), flags: flagsArb(s.op, s.args) })),
        ({ s, flags }) => {
          const operation = resolveOperation(s.name)!;
          expect(operation).toBe(s.op);
          const argv = [...(s.subject === undefined ? [] : [s.subject]), ...flags];
          const request = parseOperationArgv(operation, argv, DEFAULTS);
          const { body } = buildCommandBody(operation, request.input, request.context);
          const parsed = parseCommand(JSON.stringify(body), s.op);
          if (!parsed.ok) throw new Error(`${s.op} ${argv.join(' ')}: ${parsed.error.message}`);
          expect(parsed.command.args).toEqual(ARGS_SCHEMAS[s.op].parse(s.args));
          if (HOST_OPERATIONS.includes(s.op)) expect(parsed.command.node).toBe(s.subject);
          else if (s.subject !== undefined) expect(parsed.command.instance_id).toBe(s.subject);
        },
      ),
      { numRuns: 300 },
    );
  }, 60_000);
});
