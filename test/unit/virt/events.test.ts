import { describe, expect, it } from 'vitest';
import { type LifecycleEvent, InMemoryLifecycleSink } from '../../../lib/virt/events.ts';

const event = (instanceId: string, sequence: number): LifecycleEvent => ({
  instanceId,
  transition: 'started',
  node: 'fake-node-1',
  occurredAt: '2026-03-01T12:00:00.000Z',
  source: 'fake',
  sequence,
});

describe('InMemoryLifecycleSink', () => {
  it('keeps copies of what was emitted, so a later change by the emitter does not leak in', async () => {
    const sink = new InMemoryLifecycleSink();
    const original = event('a', 1);
    await sink.emit(original);
    original.sequence = 99;
    expect(sink.events).toEqual([event('a', 1)]);
  });

  it('filters by instance and hands events over once with take()', async () => {
    const sink = new InMemoryLifecycleSink();
    await sink.emit(event('a', 1));
    await sink.emit(event('b', 1));
    await sink.emit(event('a', 2));
    expect(sink.forInstance('a').map((e) => e.sequence)).toEqual([1, 2]);
    expect(sink.take()).toHaveLength(3);
    expect(sink.events).toEqual([]);
  });
});
