// A small, strict command-line option parser: `--name value`, `--name=value`, boolean flags
// with `--no-name`, repeatable list flags, flags that set a constant (`--hard`), and `--` to end
// options. Unknown options are errors (with a suggestion), never ignored: a typo must not send
// a different command than the one meant.

import { UsageError } from './errors.ts';

export { UsageError };

export interface OptionSpec {
  /** Where the value is stored in the result. */
  key: string;
  /** Names without the leading `--`; the first is the one shown in help. */
  flags: readonly string[];
  type: 'boolean' | 'string' | 'list';
  /** A bare flag that stores this value under `key` (e.g. `--hard` → reboot_type HARD). */
  constant?: string;
  /** Shown in help, e.g. `SOFT|HARD`. */
  valueName?: string;
  help?: string;
}

export type OptionValue = string | boolean | string[];

export interface ParsedOptions {
  positionals: string[];
  values: Map<string, OptionValue>;
  /** The flag each value came from, for messages. */
  sources: Map<string, string>;
}

const TRUE_WORDS = ['true', 'yes', 'on', '1'];
const FALSE_WORDS = ['false', 'no', 'off', '0'];

function parseBool(flag: string, text: string): boolean {
  const word = text.toLowerCase();
  if (TRUE_WORDS.includes(word)) return true;
  if (FALSE_WORDS.includes(word)) return false;
  throw new UsageError(`--${flag}: expected true or false`);
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

/** The closest known name, if it is close enough to be a typo. */
export function suggest(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = distance(name, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 3))
    ? best
    : undefined;
}

export function parseOptions(argv: readonly string[], specs: readonly OptionSpec[]): ParsedOptions {
  const byFlag = new Map<string, OptionSpec>();
  for (const spec of specs) for (const flag of spec.flags) byFlag.set(flag, spec);
  const positionals: string[] = [];
  const values = new Map<string, OptionValue>();
  const sources = new Map<string, string>();

  const store = (spec: OptionSpec, flag: string, value: OptionValue) => {
    if (spec.type === 'list') {
      const list = (values.get(spec.key) as string[] | undefined) ?? [];
      values.set(spec.key, [...list, value as string]);
      sources.set(spec.key, flag);
      return;
    }
    if (values.has(spec.key) && values.get(spec.key) !== value) {
      const other = sources.get(spec.key);
      throw new UsageError(
        other === flag
          ? `--${flag} given more than once`
          : `--${flag} conflicts with --${other ?? spec.flags[0]}`,
      );
    }
    values.set(spec.key, value);
    sources.set(spec.key, flag);
  };

  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (token === '-h') {
      const help = byFlag.get('help');
      if (help) store(help, 'help', true);
      continue;
    }
    if (!token.startsWith('--')) {
      if (token.startsWith('-') && token.length > 1 && !/^-\d/.test(token)) {
        throw new UsageError(`unknown option ${token}`, 'options are written --name');
      }
      positionals.push(token);
      continue;
    }
    const eq = token.indexOf('=');
    const flag = eq > 0 ? token.slice(2, eq) : token.slice(2);
    const inline = eq > 0 ? token.slice(eq + 1) : undefined;
    const spec = byFlag.get(flag);
    if (!spec && flag.startsWith('no-')) {
      const positive = byFlag.get(flag.slice(3));
      if (positive?.type === 'boolean' && positive.constant === undefined) {
        if (inline !== undefined) throw new UsageError(`--${flag} takes no value`);
        store(positive, flag, false);
        continue;
      }
    }
    if (!spec) {
      const guess = suggest(flag, [...byFlag.keys()]);
      throw new UsageError(
        `unknown option --${flag}`,
        guess ? `did you mean --${guess}?` : undefined,
      );
    }
    if (spec.constant !== undefined) {
      if (inline !== undefined) throw new UsageError(`--${flag} takes no value`);
      store(spec, flag, spec.constant);
      continue;
    }
    if (spec.type === 'boolean') {
      let value = true;
      if (inline !== undefined) value = parseBool(flag, inline);
      else if (i + 1 < argv.length && ['true', 'false'].includes(argv[i + 1]!.toLowerCase())) {
        value = parseBool(flag, argv[++i]!);
      }
      store(spec, flag, value);
      continue;
    }
    let value = inline;
    if (value === undefined) {
      if (i + 1 >= argv.length) {
        throw new UsageError(
          `--${flag} needs a value${spec.valueName ? ` (${spec.valueName})` : ''}`,
        );
      }
      value = argv[++i]!;
    }
    store(spec, flag, value);
  }
  return { positionals, values, sources };
}
