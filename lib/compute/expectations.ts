// Nova's expected_task_state / expected_vm_state semantics (nova/db/main/api.py
// _instance_update): `undefined` means "no check", `[null]` means "must currently be NULL".
// Both store adapters call this, so the twin and DynamoDB agree on every conflict.

import {
  ErrorCode,
  StratusError,
  UnexpectedDeletingTaskStateError,
  UnexpectedTaskStateError,
} from '../errors.ts';
import type { Instance } from './instance.ts';
import { TaskState, type VmState } from './states.ts';

export interface Expectation {
  /** Allowed current task_states; undefined = no check; [null] = must be NULL. */
  taskState?: readonly (TaskState | null)[];
  /** Allowed current vm_states; undefined = no check. */
  vmState?: readonly VmState[];
}

/** Throws Nova's conflict for `instance` against `expect`; returns quietly when it matches. */
export function assertExpectation(instance: Instance, expect: Expectation): void {
  if (expect.taskState !== undefined && !expect.taskState.includes(instance.task_state)) {
    if (instance.task_state === TaskState.DELETING) {
      throw new UnexpectedDeletingTaskStateError(instance.instance_id, expect.taskState);
    }
    throw new UnexpectedTaskStateError(instance.instance_id, expect.taskState, instance.task_state);
  }
  if (expect.vmState !== undefined && !expect.vmState.includes(instance.vm_state)) {
    throw new StratusError(
      ErrorCode.InstanceUpdateConflict,
      `Conflict updating instance ${instance.instance_id}. Expected: {'vm_state': ${JSON.stringify(
        expect.vmState,
      )}}. Actual: {'vm_state': '${instance.vm_state}'}`,
    );
  }
}

/** The fields of `next` that differ from `prev` (a save that changes nothing writes nothing). */
export function changedFields(prev: Instance, next: Instance): string[] {
  const keys = new Set([...Object.keys(prev), ...Object.keys(next)]) as Set<keyof Instance>;
  return [...keys].filter(
    (k) =>
      k !== 'version' && k !== 'updated_at' && JSON.stringify(prev[k]) !== JSON.stringify(next[k]),
  );
}
