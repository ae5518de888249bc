import { describe, expect, it } from 'vitest';
import { type OptionSpec, UsageError, parseOptions, suggest } from '../../../lib/cli/options.ts';

const SPECS: OptionSpec[] = [
  { key: 'name', flags: ['name', 'display-name'], type: 'string' },
  { key: 'wait', flags: ['wait'], type: 'boolean' },
  { key: 'tag', flags: ['tag'], type: 'list' },
  { key: 'kind', flags: ['kind'], type: 'string' },
  { key: 'kind', flags: ['hard'], type: 'string', constant: 'HARD' },
  { key: 'help', flags: ['help'], type: 'boolean' },
];

const parse = (argv: string[]) => parseOptions(argv, SPECS);
const failure = (argv: string[]) => {
  try {
    parse(argv);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return e as UsageError;
  }
  throw new Error('expected a UsageError');
};

describe('parseOptions', () => {
  it('reads values separated or inline, booleans, lists, constants and positionals', () => {
    const r = parse(['id-1', '--display-name=a b', '--tag', 'x', '--tag=y', '--wait', '--hard']);
    expect(r.positionals).toEqual(['id-1']);
    expect(Object.fromEntries(r.values)).toEqual({
      name: 'a b',
      tag: ['x', 'y'],
      wait: true,
      kind: 'HARD',
    });
  });

  it('negates booleans and reads their explicit values', () => {
    expect(parse(['--no-wait']).values.get('wait')).toBe(false);
    expect(parse(['--wait', 'false']).values.get('wait')).toBe(false);
    expect(parse(['--wait=yes']).values.get('wait')).toBe(true);
    // A following word that is not true/false is a positional, not the flag's value.
    expect(parse(['--wait', 'id-1']).positionals).toEqual(['id-1']);
    expect(failure(['--wait=maybe']).message).toBe('--wait: expected true or false');
  });

  it('takes values that look like options or negative numbers as values', () => {
    expect(parse(['--name', '--odd']).values.get('name')).toBe('--odd');
    expect(parse(['-5']).positionals).toEqual(['-5']);
  });

  it('stops at -- and maps -h to help', () => {
    const r = parse(['-h', '--', '--wait', 'x']);
    expect(r.values.get('help')).toBe(true);
    expect(r.positionals).toEqual(['--wait', 'x']);
  });

  it('refuses unknown, valueless, repeated and conflicting options', () => {
    expect(failure(['--nmae', 'x'])).toMatchObject({
      message: 'unknown option --nmae',
      hint: 'did you mean --name?',
    });
    expect(failure(['-x']).message).toBe('unknown option -x');
    expect(failure(['--name']).message).toBe('--name needs a value');
    expect(failure(['--name', 'a', '--name', 'b']).message).toBe('--name given more than once');
    expect(failure(['--kind', 'SOFT', '--hard']).message).toBe('--hard conflicts with --kind');
    expect(failure(['--hard=1']).message).toBe('--hard takes no value');
    expect(failure(['--no-name']).message).toBe('unknown option --no-name');
  });

  it('suggests only close names', () => {
    expect(suggest('instnaces', ['instances', 'actions'])).toBe('instances');
    expect(suggest('zzz', ['instances', 'actions'])).toBeUndefined();
  });
});
