import { describe, expect, it } from 'vitest';
import { FaultPlan } from '../../../lib/virt/fake/faults.ts';

describe('FaultPlan', () => {
  it('does nothing for a method that is not armed', () => {
    expect(() => new FaultPlan().check('spawn')).not.toThrow();
  });

  it('fires armed faults in order and uses them up', () => {
    const first = new Error('first');
    const second = new Error('second');
    const plan = new FaultPlan().failNext('spawn', first, 2).failNext('spawn', second);
    expect(plan.pending('spawn')).toBe(3);
    expect(() => plan.check('spawn')).toThrow(first);
    expect(() => plan.check('spawn')).toThrow(first);
    expect(() => plan.check('spawn')).toThrow(second);
    expect(() => plan.check('spawn')).not.toThrow();
    expect(plan.pending('spawn')).toBe(0);
  });

  it('keeps failing with failAlways until cleared', () => {
    const plan = new FaultPlan().failAlways('getInfo', new Error('down'));
    for (let i = 0; i < 5; i += 1) expect(() => plan.check('getInfo')).toThrow('down');
    plan.clear();
    expect(() => plan.check('getInfo')).not.toThrow();
  });

  it('rejects a non-positive count', () => {
    expect(() => new FaultPlan().failNext('spawn', new Error('x'), 0)).toThrow(RangeError);
  });
});
