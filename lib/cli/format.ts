// Human output of the CLI and of `npm start`: aligned tables, key/value blocks, event lines.
// Machines use `--json` instead; nothing here is meant to be parsed.

import type { LoggedNotification } from '../local/notification-log.ts';

/** Columns padded to their widest cell; the last column is not padded. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [headers, ...rows];
  const widths = headers.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all
    .map((r) =>
      r
        .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** `key  value` lines, keys aligned. */
export function keyValues(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}

/** An ISO time as `YYYY-MM-DD hh:mm:ss` (UTC), or '-' when unset. */
export function shortTime(iso: string | null | undefined): string {
  if (!iso) return '-';
  return iso.replace('T', ' ').replace(/\.\d+Z?$|Z$/, '');
}

export function dash(value: unknown): string {
  if (value === null || value === undefined || value === '') return '-';
  return String(value);
}

/** One notification as `npm start` and `stratus events` print it. */
export function formatEventLine(event: LoggedNotification): string {
  const p = event.detail.payload;
  if (event['detail-type'] === 'compute.instance.exists.audit') {
    // A usage-audit manifest is about a shard and a period, not an instance.
    return (
      `  event  ${event['detail-type'].padEnd(34)} shard ${String(p.shard)} ` +
      `${String(p.period_beginning).slice(0, 16)} ${String(p.state)} ` +
      `${String(p.task_items)} instances, ${String(p.errors)} errors`
    );
  }
  const state =
    typeof p.state === 'string'
      ? ` ${p.state}/${typeof p.state_description === 'string' && p.state_description ? p.state_description : '-'}`
      : '';
  const subject = event.resources[0] ?? '';
  return `  event  ${event['detail-type'].padEnd(34)} ${subject}${state}`;
}
