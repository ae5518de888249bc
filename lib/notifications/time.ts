// Timestamps inside notifications use Nova's legacy wire format, `YYYY-MM-DD hh:mm:ss.ssssss`
// in UTC (CONTRACT §2), and `""` for a time that is not set. Stored instance times are ISO-8601
// strings, which may carry more precision than a JS Date (microseconds from another writer): the
// fraction is therefore read from the text, not through Date, so no digit is lost or invented.

const TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|[+-]\d{2}:?\d{2})?$/i;

/** An instant with microsecond precision: `date` holds it to the millisecond. */
interface PreciseInstant {
  date: Date;
  /** 0..999999, the fraction of the second in microseconds. */
  microsOfSecond: number;
}

function parseIso(text: string): PreciseInstant {
  const m = TIMESTAMP.exec(text.trim());
  if (!m) throw new RangeError(`not an ISO-8601 timestamp: ${JSON.stringify(text)}`);
  const [, y, mo, d, h = '00', mi = '00', s = '00', fraction = '', zone = 'Z'] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  const microsOfSecond = Number(fraction.padEnd(6, '0').slice(0, 6));
  const local = Date.UTC(year, month - 1, day, hour, minute, second);
  const check = new Date(local);
  // Date.UTC silently rolls 2024-02-30 over to March; a stored timestamp like that is corrupt.
  if (
    check.getUTCFullYear() !== year ||
    check.getUTCMonth() !== month - 1 ||
    check.getUTCDate() !== day ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  ) {
    throw new RangeError(`not a valid timestamp: ${JSON.stringify(text)}`);
  }
  // A timestamp without a zone is UTC, as Nova's naive datetimes are; never the machine's zone.
  let offsetMinutes = 0;
  if (zone.toUpperCase() !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    offsetMinutes = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2)));
  }
  const epochMs = local - offsetMinutes * 60_000 + Math.floor(microsOfSecond / 1000);
  return { date: new Date(epochMs), microsOfSecond };
}

function toPrecise(value: string | Date): PreciseInstant {
  if (typeof value === 'string') return parseIso(value);
  if (Number.isNaN(value.getTime())) throw new RangeError('invalid Date');
  return { date: value, microsOfSecond: value.getUTCMilliseconds() * 1000 };
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/**
 * `2024-03-10 09:05:01.123000` for an instant, `''` for an unset one (null, undefined or '').
 * Accepts Dates, ISO-8601 strings (any zone; no zone means UTC) and the legacy format itself.
 */
export function legacyTimestamp(value: string | Date | null | undefined): string {
  if (value === null || value === undefined || value === '') return '';
  const { date, microsOfSecond } = toPrecise(value);
  return (
    `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())} ` +
    `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}.` +
    pad(microsOfSecond, 6)
  );
}

/** The instant a timestamp (ISO-8601 or legacy) names, to the millisecond. */
export function parseTimestamp(value: string | Date): Date {
  return toPrecise(value).date;
}
