import { describe, expect, it } from 'vitest';
import { formatEventLine } from '../../../lib/cli/format.ts';
import type { LoggedNotification } from '../../../lib/local/notification-log.ts';

function logged(detailType: string, payload: Record<string, unknown>, resources: string[] = []) {
  return {
    source: 'stratus.compute',
    'detail-type': detailType,
    resources,
    detail: {
      message_id: 'm',
      publisher_id: 'compute.stratus',
      event_type: detailType,
      priority: 'INFO',
      timestamp: '2026-11-22 06:00:00.000000',
      request_id: 'r',
      command_id: 'c',
      payload,
    },
  } as unknown as LoggedNotification;
}

describe('formatEventLine', () => {
  it("shows an instance event's instance, state and task", () => {
    const line = formatEventLine(
      logged(
        'compute.instance.power_off.start',
        { state: 'active', state_description: 'powering-off' },
        ['i-1'],
      ),
    );
    expect(line).toMatch(/compute\.instance\.power_off\.start +i-1 active\/powering-off$/);
  });

  it("shows a usage-audit manifest's shard, period, state and counts", () => {
    const line = formatEventLine(
      logged('compute.instance.exists.audit', {
        shard: 'fake-node-1',
        period_beginning: '2026-11-22 05:00:00.000000',
        state: 'DONE',
        task_items: 12,
        errors: 1,
      }),
    );
    expect(line).toMatch(
      /compute\.instance\.exists\.audit +shard fake-node-1 2026-11-22 05:00 DONE 12 instances, 1 errors$/,
    );
  });
});
