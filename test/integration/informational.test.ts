// get_console_output and get_diagnostics through SQS: data in the outcome's `result`, the lock
// ignored, a host required, diagnostics only of a running guest, and driver failures.

import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  asciiWithReplacement,
  capToNewestBytes,
  tailLog,
} from '../../lib/compute/operations/informational.ts';
import { VmState } from '../../lib/compute/states.ts';
import { activeInstance, forceState, run } from '../support/operations.ts';
import { type TestStack, startTestStack } from '../support/stack.ts';

const FAKE_LOG = 'FAKE CONSOLE OUTPUT\nANOTHER\nLAST LINE';

describe('console output helpers', () => {
  it('tails like Nova’s _tail_log and decodes like decode("ascii", "replace")', () => {
    expect(tailLog(FAKE_LOG, 2)).toBe('ANOTHER\nLAST LINE');
    expect(tailLog(FAKE_LOG, 10)).toBe(FAKE_LOG);
    expect(tailLog(FAKE_LOG, undefined)).toBe(FAKE_LOG);
    expect(tailLog('a\nb\n', 1)).toBe('');
    expect(asciiWithReplacement('café ok')).toBe('caf\ufffd ok');
    expect(capToNewestBytes('x'.repeat(10) + 'tail', 4)).toBe('tail');
    expect(capToNewestBytes('ab\ufffd', 4)).toBe('b\ufffd');
  });
});

for (const mode of ['sync', 'async'] as const) {
  describe(`console output and diagnostics (${mode} driver)`, () => {
    let stack: TestStack;

    beforeAll(async () => {
      stack = await startTestStack({
        label: `info-${mode}`,
        options: {
          notify_on_state_change: 'vm_and_task_state',
          fake_async: mode === 'async' ? 'true' : 'false',
          admin_producers: '["000000000000"]',
        },
        operations: ['get_console_output', 'get_diagnostics', 'stop_instance'],
      });
    });

    afterEach(() => vi.restoreAllMocks());

    it('answers the console log, tailed, in result.output, changing nothing', async () => {
      const id = await activeInstance(stack);
      const before = await stack.store.getInstance(id);
      await stack.receiveEvents();
      const all = await run(stack, 'get_console_output', id);
      expect(all).toMatchObject({ status: 'succeeded', outcome: { result: { output: FAKE_LOG } } });
      const tail = await run(stack, 'get_console_output', id, { args: { tail_length: 1 } });
      expect(tail.outcome?.result).toEqual({ output: 'LAST LINE' });
      expect((await stack.store.getInstance(id))?.version).toBe(before?.version);
      expect((await stack.receiveEvents()).filter((e) => e.resources.includes(id))).toEqual([]);
    });

    it('answers the driver’s diagnostics for a running guest', async () => {
      const id = await activeInstance(stack);
      const diag = await run(stack, 'get_diagnostics', id);
      expect(diag.status).toBe('succeeded');
      // m1.tiny: one vCPU, 512 MB, the root disk.
      expect(diag.outcome?.result).toMatchObject({
        cpu0_time: 17300000000,
        memory: 512 * 1024,
        vda_read: 262144,
      });
    });

    it('fails diagnostics of a guest that is not running (409, fault)', async () => {
      const id = await activeInstance(stack);
      expect((await run(stack, 'stop_instance', id)).status).toBe('succeeded');
      const before = await stack.store.getInstance(id);
      const diag = await run(stack, 'get_diagnostics', id);
      expect(diag).toMatchObject({
        status: 'failed',
        error_code: 'InstanceInvalidState',
        outcome: { error: { code: 409, message: expect.stringContaining('power state shutdown') } },
      });
      expect((await stack.store.listFaults(id)).at(-1)).toMatchObject({ code: 409 });
      expect((await stack.store.getInstance(id))?.vm_state).toBe(before?.vm_state);
    });

    it('ignores the lock (they change nothing) and works in any vm_state', async () => {
      const id = await activeInstance(stack);
      await forceState(stack, id, { locked: true, locked_by: 'admin', vm_state: VmState.ERROR });
      expect((await run(stack, 'get_console_output', id)).status).toBe('succeeded');
      expect((await run(stack, 'get_diagnostics', id)).status).toBe('succeeded');
    });

    it('rejects an instance without a host (409), changing nothing', async () => {
      const id = await activeInstance(stack);
      const before = await forceState(stack, id, { host: null });
      for (const op of ['get_console_output', 'get_diagnostics'] as const) {
        const action = await run(stack, op, id);
        expect(action, op).toMatchObject({
          status: 'rejected',
          error_code: 'InstanceInvalidState',
          outcome: { error: { code: 409 } },
        });
      }
      expect((await stack.store.getInstance(id))?.version).toBe(before.version);
    });

    it('fails with a fault when the driver fails, and 501 when it cannot', async () => {
      const id = await activeInstance(stack);
      const { FakeDriver } = await import('../../lib/virt/fake/driver.ts');
      // The handlers run on freshly loaded modules: errors must be their classes.
      const { NotSupportedError } = await import('../../lib/virt/errors.ts');
      vi.spyOn(FakeDriver.prototype, 'getConsoleOutput').mockRejectedValueOnce(
        new NotSupportedError('fake', 'get_console_output'),
      );
      const unsupported = await run(stack, 'get_console_output', id);
      expect(unsupported).toMatchObject({
        status: 'failed',
        error_code: 'NotSupported',
        outcome: { error: { code: 501 } },
      });
      vi.spyOn(FakeDriver.prototype, 'getDiagnostics').mockRejectedValueOnce(
        new Error('hypervisor hiccup'),
      );
      const failed = await run(stack, 'get_diagnostics', id);
      expect(failed).toMatchObject({ status: 'failed', outcome: { error: { code: 500 } } });
      expect((await stack.store.listFaults(id)).map((f) => f.code)).toEqual([501, 500]);
      expect((await stack.store.getInstance(id))?.vm_state).toBe(VmState.ACTIVE);
    });
  });
}
