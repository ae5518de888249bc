// Seeds the in-memory state store with instance records for audit tests.
import type { Instance } from '../../../lib/compute/instance.ts';
import type { InMemoryStateStore } from '../../../lib/store/memory-state-store.ts';
import { buildInstance } from '../notifications/fixtures.ts';

let counter = 0;

/** A distinct, realistic instance id per call. */
export function nextInstanceId(): string {
  counter++;
  return `00000000-0000-4000-8000-${counter.toString(16).padStart(12, '0')}`;
}

export function auditInstance(overrides: Partial<Instance> = {}): Instance {
  return buildInstance({
    instance_id: nextInstanceId(),
    host: 'stratus',
    node: 'node-1',
    launched_at: '2026-01-01T00:00:00.000Z',
    terminated_at: null,
    deleted_at: null,
    deleted: false,
    ...overrides,
  });
}

export async function seed(store: InMemoryStateStore, instances: readonly Instance[]) {
  for (const instance of instances) {
    await store.createInstance(
      instance,
      {
        subject: { kind: 'instance', id: instance.instance_id },
        command_id: `seed-${instance.instance_id}`,
        operation: 'build_and_run_instance',
        instance_id: instance.instance_id,
        request_id: 'req-seed',
        user_id: null,
        project_id: null,
        status: 'succeeded',
        error_code: null,
        outcome: null,
        start_time: '2026-01-01T00:00:00.000Z',
        finish_time: '2026-01-01T00:00:00.000Z',
        events: [],
        reply_to: null,
        reply_sent: true,
        progress: {},
      },
      [],
    );
  }
  return store;
}
