import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  STRATUS_NAMESPACE,
  eventMessageId,
  existsMessageId,
  messageIdFor,
  uuidv5,
} from '../../../lib/notifications/message-id.ts';

const NAMESPACE_DNS = '6ba7b810-9dad-11d1-80b4-00c04fd430c8';
const UUID_V5 = /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('uuidv5', () => {
  it('matches the RFC 9562 test vector', () => {
    expect(uuidv5('www.example.com', NAMESPACE_DNS)).toBe('2ed6657d-e927-568b-95e1-2665a8aea6a2');
  });

  it("derives Stratus's namespace as documented", () => {
    expect(uuidv5('notifications.stratus.compute', NAMESPACE_DNS)).toBe(STRATUS_NAMESPACE);
  });

  it('rejects a namespace that is not a UUID', () => {
    expect(() => uuidv5('x', 'not-a-uuid')).toThrow(RangeError);
  });
});

describe('messageIdFor', () => {
  const part = fc.oneof(fc.string(), fc.integer(), fc.constant(null));

  it('is deterministic and a version-5 UUID', () => {
    fc.assert(
      fc.property(fc.array(part), (parts) => {
        const id = messageIdFor(parts);
        expect(id).toMatch(UUID_V5);
        expect(messageIdFor([...parts])).toBe(id);
      }),
    );
  });

  it('separates different keys, including splits of the same characters', () => {
    expect(messageIdFor(['a-b', 'c'])).not.toBe(messageIdFor(['a', 'b-c']));
    expect(messageIdFor(['ab', 'c'])).not.toBe(messageIdFor(['a', 'bc']));
    expect(messageIdFor(['1'])).not.toBe(messageIdFor([1]));
    expect(messageIdFor([null])).not.toBe(messageIdFor(['null']));
    fc.assert(
      fc.property(fc.array(part), fc.array(part), (a, b) => {
        fc.pre(JSON.stringify(a) !== JSON.stringify(b));
        expect(messageIdFor(a)).not.toBe(messageIdFor(b));
      }),
    );
  });
});

describe('eventMessageId', () => {
  it('is the id of (command_id, event_type), stable across calls', () => {
    const id = eventMessageId('cmd-1', 'compute.instance.create.end');
    expect(id).toBe(messageIdFor(['cmd-1', 'compute.instance.create.end']));
    expect(eventMessageId('cmd-1', 'compute.instance.create.end')).toBe(id);
    expect(eventMessageId('cmd-1', 'compute.instance.create.start')).not.toBe(id);
    expect(eventMessageId('cmd-2', 'compute.instance.create.end')).not.toBe(id);
  });

  it('tells apart the updates of one command by their discriminator', () => {
    const a = eventMessageId('cmd-1', 'compute.instance.update', 4);
    const b = eventMessageId('cmd-1', 'compute.instance.update', 5);
    expect(a).not.toBe(b);
    expect(a).not.toBe(eventMessageId('cmd-1', 'compute.instance.update'));
    expect(eventMessageId('cmd-1', 'compute.instance.update', 4)).toBe(a);
  });
});

describe('existsMessageId', () => {
  const beginning = new Date('2024-03-10T09:00:00Z');
  const ending = new Date('2024-03-10T10:00:00Z');

  it('keys on instance, launched_at and the period, whatever their representation', () => {
    const id = existsMessageId('i-1', '2024-03-01T00:00:00.000Z', beginning, ending);
    expect(id).toMatch(UUID_V5);
    expect(
      existsMessageId(
        'i-1',
        new Date('2024-03-01T00:00:00Z'),
        '2024-03-10T09:00:00Z',
        '2024-03-10 10:00:00.000000',
      ),
    ).toBe(id);
  });

  it('changes when any part of the natural key changes', () => {
    const id = existsMessageId('i-1', '2024-03-01T00:00:00Z', beginning, ending);
    const others = [
      existsMessageId('i-2', '2024-03-01T00:00:00Z', beginning, ending),
      existsMessageId('i-1', '2024-03-02T00:00:00Z', beginning, ending),
      existsMessageId('i-1', null, beginning, ending),
      existsMessageId('i-1', '2024-03-01T00:00:00Z', ending, new Date('2024-03-10T11:00:00Z')),
    ];
    expect(new Set([id, ...others]).size).toBe(5);
  });
});
