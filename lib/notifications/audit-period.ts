// Nova's audit periods (`nova/utils.py::last_completed_audit_period`), all in UTC.
// Spec: `hour|day|month|year[@offset]`; the offset is the minute of the hour, the hour of the
// day, the day of the month (0 means 1) or the month of the year (0 means 1). The period is
// half-open, [beginning, ending), and the beginning of one period is the ending of the previous.

export interface AuditPeriod {
  beginning: Date;
  ending: Date;
}

export type AuditUnit = 'hour' | 'day' | 'month' | 'year';

const SPEC = /^(hour|day|month|year)(?:@([0-9]+))?$/;

/** Largest offset each unit accepts (Python's datetime would raise beyond these). */
const MAX_OFFSET: Readonly<Record<AuditUnit, number>> = { hour: 59, day: 23, month: 31, year: 12 };

export function parseAuditPeriodSpec(spec: string): { unit: AuditUnit; offset: number } {
  const m = SPEC.exec(spec);
  if (!m) throw new RangeError(`audit period must be hour|day|month|year[@offset], got '${spec}'`);
  const unit = m[1] as AuditUnit;
  const offset = Number(m[2] ?? 0);
  if (offset > MAX_OFFSET[unit]) {
    throw new RangeError(
      `audit period offset for '${unit}' must be ≤ ${MAX_OFFSET[unit]}: '${spec}'`,
    );
  }
  return { unit, offset };
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

function daysInMonth(year: number, monthIndex: number): number {
  return new Date(Date.UTC(year, monthIndex + 1, 0)).getUTCDate();
}

/**
 * Day `day` of a month at 00:00 UTC. `monthIndex` may run outside 0..11 (Date.UTC carries the
 * year over). Nova builds `datetime(year, month, day)` and so raises for `month@29..31` in a
 * month that is too short; Stratus clamps to the month's last day instead, so `month@31` ends
 * periods on 31 Jan, 29 Feb, 31 Mar, 30 Apr... Consecutive periods still tile, because the same
 * clamped date is both the end of one period and the beginning of the next.
 */
function dayOfMonth(year: number, monthIndex: number, day: number): Date {
  const first = new Date(Date.UTC(year, monthIndex, 1));
  const clamped = Math.min(day, daysInMonth(first.getUTCFullYear(), first.getUTCMonth()));
  return new Date(Date.UTC(first.getUTCFullYear(), first.getUTCMonth(), clamped));
}

/** The last audit period that ended strictly before `now`. */
export function lastCompletedAuditPeriod(spec: string, now: Date): AuditPeriod {
  const { unit, offset } = parseAuditPeriodSpec(spec);
  const t = now.getTime();
  const year = now.getUTCFullYear();
  const month = now.getUTCMonth();
  switch (unit) {
    case 'hour': {
      let end = Date.UTC(year, month, now.getUTCDate(), now.getUTCHours(), offset);
      if (end >= t) end -= HOUR_MS;
      return { beginning: new Date(end - HOUR_MS), ending: new Date(end) };
    }
    case 'day': {
      let end = Date.UTC(year, month, now.getUTCDate(), offset);
      if (end >= t) end -= DAY_MS;
      return { beginning: new Date(end - DAY_MS), ending: new Date(end) };
    }
    case 'month': {
      const day = offset || 1;
      let endMonth = month;
      if (dayOfMonth(year, endMonth, day).getTime() >= t) endMonth -= 1;
      return {
        beginning: dayOfMonth(year, endMonth - 1, day),
        ending: dayOfMonth(year, endMonth, day),
      };
    }
    case 'year': {
      const monthIndex = (offset || 1) - 1;
      let endYear = year;
      if (Date.UTC(endYear, monthIndex, 1) >= t) endYear -= 1;
      return {
        beginning: new Date(Date.UTC(endYear - 1, monthIndex, 1)),
        ending: new Date(Date.UTC(endYear, monthIndex, 1)),
      };
    }
  }
}

/**
 * Nova's `audit_period_bounds(current_period=True)`: from the end of the last completed period
 * until now. Used by update notifications and the mid-period `exists` events.
 */
export function currentAuditPeriod(spec: string, now: Date): AuditPeriod {
  return { beginning: lastCompletedAuditPeriod(spec, now).ending, ending: now };
}
