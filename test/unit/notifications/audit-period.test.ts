import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  currentAuditPeriod,
  lastCompletedAuditPeriod,
  parseAuditPeriodSpec,
} from '../../../lib/notifications/audit-period.ts';

const at = (iso: string) => new Date(iso);
const period = (spec: string, now: string) => {
  const p = lastCompletedAuditPeriod(spec, at(now));
  return [p.beginning.toISOString(), p.ending.toISOString()];
};

describe("lastCompletedAuditPeriod: Nova's examples", () => {
  it('month at 2024-03-10 → [2024-02-01, 2024-03-01)', () => {
    expect(period('month', '2024-03-10T12:00:00Z')).toEqual([
      '2024-02-01T00:00:00.000Z',
      '2024-03-01T00:00:00.000Z',
    ]);
  });

  it('month@15 at 2024-03-10 → [2024-01-15, 2024-02-15)', () => {
    expect(period('month@15', '2024-03-10T12:00:00Z')).toEqual([
      '2024-01-15T00:00:00.000Z',
      '2024-02-15T00:00:00.000Z',
    ]);
  });

  it('hour at 10:30 → [09:00, 10:00)', () => {
    expect(period('hour', '2024-03-10T10:30:00Z')).toEqual([
      '2024-03-10T09:00:00.000Z',
      '2024-03-10T10:00:00.000Z',
    ]);
  });

  it('day@18 at 10:00 → [two days ago 18:00, yesterday 18:00)', () => {
    expect(period('day@18', '2024-03-10T10:00:00Z')).toEqual([
      '2024-03-08T18:00:00.000Z',
      '2024-03-09T18:00:00.000Z',
    ]);
  });
});

describe('lastCompletedAuditPeriod: offsets and edges', () => {
  it('hour@m ends at minute m', () => {
    expect(period('hour@15', '2024-03-10T10:30:00Z')).toEqual([
      '2024-03-10T09:15:00.000Z',
      '2024-03-10T10:15:00.000Z',
    ]);
    expect(period('hour@45', '2024-03-10T10:30:00Z')).toEqual([
      '2024-03-10T08:45:00.000Z',
      '2024-03-10T09:45:00.000Z',
    ]);
  });

  it('day ends at midnight, day@h at hour h', () => {
    expect(period('day', '2024-03-10T10:00:00Z')).toEqual([
      '2024-03-09T00:00:00.000Z',
      '2024-03-10T00:00:00.000Z',
    ]);
    expect(period('day@6', '2024-03-10T10:00:00Z')).toEqual([
      '2024-03-09T06:00:00.000Z',
      '2024-03-10T06:00:00.000Z',
    ]);
  });

  it('an instant exactly on a boundary has not completed the period that ends there', () => {
    expect(period('hour', '2024-03-10T10:00:00Z')).toEqual([
      '2024-03-10T08:00:00.000Z',
      '2024-03-10T09:00:00.000Z',
    ]);
    expect(period('hour', '2024-03-10T10:00:00.001Z')).toEqual([
      '2024-03-10T09:00:00.000Z',
      '2024-03-10T10:00:00.000Z',
    ]);
    expect(period('day', '2024-03-10T00:00:00Z')).toEqual([
      '2024-03-08T00:00:00.000Z',
      '2024-03-09T00:00:00.000Z',
    ]);
    expect(period('month', '2024-03-01T00:00:00Z')).toEqual([
      '2024-01-01T00:00:00.000Z',
      '2024-02-01T00:00:00.000Z',
    ]);
    expect(period('year', '2024-01-01T00:00:00Z')).toEqual([
      '2022-01-01T00:00:00.000Z',
      '2023-01-01T00:00:00.000Z',
    ]);
  });

  it('wraps January back into the previous year', () => {
    expect(period('month', '2024-01-10T00:00:00Z')).toEqual([
      '2023-12-01T00:00:00.000Z',
      '2024-01-01T00:00:00.000Z',
    ]);
    expect(period('month@15', '2024-01-10T00:00:00Z')).toEqual([
      '2023-11-15T00:00:00.000Z',
      '2023-12-15T00:00:00.000Z',
    ]);
    expect(period('month@15', '2024-02-10T00:00:00Z')).toEqual([
      '2023-12-15T00:00:00.000Z',
      '2024-01-15T00:00:00.000Z',
    ]);
    expect(period('hour', '2024-01-01T00:10:00Z')).toEqual([
      '2023-12-31T23:00:00.000Z',
      '2024-01-01T00:00:00.000Z',
    ]);
  });

  it('year and year@M', () => {
    expect(period('year', '2024-03-10T00:00:00Z')).toEqual([
      '2023-01-01T00:00:00.000Z',
      '2024-01-01T00:00:00.000Z',
    ]);
    expect(period('year@4', '2024-03-10T00:00:00Z')).toEqual([
      '2022-04-01T00:00:00.000Z',
      '2023-04-01T00:00:00.000Z',
    ]);
    expect(period('year@4', '2024-05-10T00:00:00Z')).toEqual([
      '2023-04-01T00:00:00.000Z',
      '2024-04-01T00:00:00.000Z',
    ]);
  });

  it('treats offset 0 of month and year as 1', () => {
    expect(period('month@0', '2024-03-10T00:00:00Z')).toEqual(
      period('month', '2024-03-10T00:00:00Z'),
    );
    expect(period('year@0', '2024-03-10T00:00:00Z')).toEqual(
      period('year', '2024-03-10T00:00:00Z'),
    );
  });

  it('clamps month@d to the last day of a short month instead of failing', () => {
    expect(period('month@31', '2024-03-10T00:00:00Z')).toEqual([
      '2024-01-31T00:00:00.000Z',
      '2024-02-29T00:00:00.000Z',
    ]);
    expect(period('month@31', '2023-03-10T00:00:00Z')).toEqual([
      '2023-01-31T00:00:00.000Z',
      '2023-02-28T00:00:00.000Z',
    ]);
    expect(period('month@31', '2024-05-01T00:00:00Z')).toEqual([
      '2024-03-31T00:00:00.000Z',
      '2024-04-30T00:00:00.000Z',
    ]);
    expect(period('month@30', '2024-03-01T00:00:00Z')).toEqual([
      '2024-01-30T00:00:00.000Z',
      '2024-02-29T00:00:00.000Z',
    ]);
  });

  it('rejects specs Nova would reject or crash on', () => {
    for (const spec of [
      'week',
      'hour@',
      'month@-1',
      'HOUR',
      'hour@60',
      'day@24',
      'month@32',
      'year@13',
    ]) {
      expect(() => parseAuditPeriodSpec(spec), spec).toThrow(RangeError);
      expect(() => lastCompletedAuditPeriod(spec, new Date()), spec).toThrow(RangeError);
    }
    expect(parseAuditPeriodSpec('day@18')).toEqual({ unit: 'day', offset: 18 });
  });
});

describe('currentAuditPeriod', () => {
  it('runs from the end of the last completed period until now', () => {
    const now = at('2024-03-10T10:30:00Z');
    expect(currentAuditPeriod('hour', now)).toEqual({
      beginning: at('2024-03-10T10:00:00Z'),
      ending: now,
    });
    expect(currentAuditPeriod('month@15', now)).toEqual({
      beginning: at('2024-02-15T00:00:00Z'),
      ending: now,
    });
  });
});

describe('lastCompletedAuditPeriod: properties', () => {
  const spec = fc.oneof(
    fc.constantFrom('hour', 'day', 'month', 'year'),
    fc.integer({ min: 0, max: 59 }).map((m) => `hour@${m}`),
    fc.integer({ min: 0, max: 23 }).map((h) => `day@${h}`),
    fc.integer({ min: 0, max: 31 }).map((d) => `month@${d}`),
    fc.integer({ min: 0, max: 12 }).map((m) => `year@${m}`),
  );
  const now = fc.date({
    min: new Date('1972-01-01T00:00:00Z'),
    max: new Date('2200-12-31T23:59:59Z'),
    noInvalidDate: true,
  });
  const HOUR = 3_600_000;
  const DAY = 24 * HOUR;

  it('is a non-empty period that ended before now, the latest one to do so', () => {
    fc.assert(
      fc.property(spec, now, (s, t) => {
        const p = lastCompletedAuditPeriod(s, t);
        expect(p.beginning.getTime()).toBeLessThan(p.ending.getTime());
        expect(p.ending.getTime()).toBeLessThan(t.getTime());
        // The latest: the period after it has not ended yet at `t`.
        const next = lastCompletedAuditPeriod(s, new Date(p.ending.getTime() + 1));
        expect(next).toEqual(p);
      }),
    );
  });

  it('has the length of its unit', () => {
    fc.assert(
      fc.property(spec, now, (s, t) => {
        const p = lastCompletedAuditPeriod(s, t);
        const length = p.ending.getTime() - p.beginning.getTime();
        const unit = s.split('@')[0];
        if (unit === 'hour') expect(length).toBe(HOUR);
        if (unit === 'day') expect(length).toBe(DAY);
        if (unit === 'month') {
          expect(length).toBeGreaterThanOrEqual(28 * DAY);
          expect(length).toBeLessThanOrEqual(31 * DAY);
        }
        if (unit === 'year') expect([365 * DAY, 366 * DAY]).toContain(length);
        // Nothing is left out: `t` is within one period length after the ending.
        const upTo =
          unit === 'hour' ? HOUR : unit === 'day' ? DAY : unit === 'month' ? 31 * DAY : 366 * DAY;
        expect(t.getTime() - p.ending.getTime()).toBeLessThanOrEqual(upTo);
      }),
    );
  });

  it('tiles: the period before one ends exactly where it begins', () => {
    fc.assert(
      fc.property(spec, now, (s, t) => {
        const p = lastCompletedAuditPeriod(s, t);
        const previous = lastCompletedAuditPeriod(s, p.ending);
        expect(previous.ending).toEqual(p.beginning);
      }),
    );
  });
});
