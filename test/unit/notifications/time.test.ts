import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { legacyTimestamp, parseTimestamp } from '../../../lib/notifications/time.ts';

describe('legacyTimestamp', () => {
  it('formats a Date in UTC with six fractional digits', () => {
    expect(legacyTimestamp(new Date(Date.UTC(2024, 2, 10, 9, 5, 1, 7)))).toBe(
      '2024-03-10 09:05:01.007000',
    );
  });

  it('formats ISO-8601 strings, converting other zones to UTC', () => {
    expect(legacyTimestamp('2024-03-10T09:05:01.123Z')).toBe('2024-03-10 09:05:01.123000');
    expect(legacyTimestamp('2024-03-10T23:30:00+02:00')).toBe('2024-03-10 21:30:00.000000');
    expect(legacyTimestamp('2024-01-01T00:15:00-01:30')).toBe('2024-01-01 01:45:00.000000');
    expect(legacyTimestamp('2024-03-10T09:05:01Z')).toBe('2024-03-10 09:05:01.000000');
  });

  it('keeps microseconds written by another writer instead of rounding them through Date', () => {
    expect(legacyTimestamp('2024-03-10T09:05:01.123456Z')).toBe('2024-03-10 09:05:01.123456');
    expect(legacyTimestamp('2024-03-10T09:05:01.123456789Z')).toBe('2024-03-10 09:05:01.123456');
  });

  it('reads a zone-less timestamp as UTC, whatever the machine zone', () => {
    expect(legacyTimestamp('2024-03-10T09:05:01')).toBe('2024-03-10 09:05:01.000000');
    expect(legacyTimestamp('2024-03-10 09:05:01.5')).toBe('2024-03-10 09:05:01.500000');
  });

  it('gives "" for an unset time', () => {
    expect(legacyTimestamp(null)).toBe('');
    expect(legacyTimestamp(undefined)).toBe('');
    expect(legacyTimestamp('')).toBe('');
  });

  it('rejects text that is not a timestamp, and impossible dates', () => {
    expect(() => legacyTimestamp('yesterday')).toThrow(RangeError);
    expect(() => legacyTimestamp('2024-02-30T00:00:00Z')).toThrow(RangeError);
    expect(() => legacyTimestamp('2024-03-10T24:00:00Z')).toThrow(RangeError);
    expect(() => legacyTimestamp(new Date(Number.NaN))).toThrow(RangeError);
  });

  const instants = fc.date({
    min: new Date('1970-01-01T00:00:00Z'),
    max: new Date('2999-12-31T23:59:59Z'),
    noInvalidDate: true,
  });

  it('is a fixed point on its own output and round-trips through parseTimestamp', () => {
    fc.assert(
      fc.property(instants, (d) => {
        const text = legacyTimestamp(d);
        expect(text).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$/);
        expect(legacyTimestamp(text)).toBe(text);
        expect(legacyTimestamp(d.toISOString())).toBe(text);
        expect(parseTimestamp(text).getTime()).toBe(d.getTime());
      }),
    );
  });
});
