// set_host_enabled and host_maintenance_mode (nova-compute.md §8.1, Nova's os-hosts API and
// HostAPI): admin-only commands that address a node, not an instance. Their action lives under
// the node (`node#<name>`).
//
//   API      admin only (403), the node must be one of the driver's (404, Nova's
//            _assert_host_exists), `HostAPI.set_enabled.start` / `HostAPI.set_maintenance.start`
//   compute  driver.set_host_enabled / host_maintenance_mode (NotSupported → 501)
//   then     the node's flag recorded in the node-state store (the resource tracker reads it),
//            `HostAPI.*.end`, and the outcome's result: {host, status} / {host, maintenance_mode},
//            the body Nova's os-hosts API answers with

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { ArgsOf } from '../../commands/schemas.ts';
import { ErrorCode, StratusError } from '../../errors.ts';
import { eventMessageId } from '../../notifications/message-id.ts';
import { type Notification, priorityFor } from '../../notifications/notification.ts';
import { legacyTimestamp } from '../../notifications/time.ts';
import {
  DynamoDbNodeStateStore,
  type NodeFlags,
  type NodeStateStore,
} from '../../store/node-state-store.ts';
import { novaErrorCode } from '../device-names.ts';
import type { OperationHandler } from '../executor.ts';
import { type CommandRuntime, type ComputeDeps, newAction } from '../runtime.ts';
import { isNotSupported } from '../../virt/errors.ts';
import { driverContext, isRetryable } from './common.ts';

export class ComputeHostNotFoundError extends StratusError {
  constructor(host: string) {
    super(
      novaErrorCode('ComputeHostNotFound', ErrorCode.InstanceNotFound),
      `Compute host ${host} could not be found.`,
    );
  }
}

const nodeStores = new WeakMap<ComputeDeps, NodeStateStore>();

/**
 * The node-state store of a deployment: `deps.nodeState` when the composition root provides one
 * (tests, the local plane), else the state table through a client of this function's own.
 */
export function nodeStateStoreOf(deps: ComputeDeps): NodeStateStore {
  const given = (deps as ComputeDeps & { nodeState?: NodeStateStore }).nodeState;
  if (given) return given;
  let store = nodeStores.get(deps);
  if (!store) {
    const doc = DynamoDBDocumentClient.from(new DynamoDBClient({}), {
      marshallOptions: { removeUndefinedValues: true },
    });
    store = new DynamoDbNodeStateStore(doc, deps.config.tables.state);
    nodeStores.set(deps, store);
  }
  return store;
}

/** Nova's notify_about_host_update: `HostAPI.<suffix>`, published by `api.<host>`. */
function hostNotification(
  rt: CommandRuntime,
  node: string,
  eventType: string,
  payload: Record<string, unknown>,
): Notification {
  return {
    message_id: eventMessageId(rt.command.command_id, eventType),
    publisher_id: `api.${node}`,
    event_type: eventType,
    priority: priorityFor(eventType),
    timestamp: legacyTimestamp(rt.now()),
    request_id: rt.command.context.request_id,
    command_id: rt.command.command_id,
    payload,
  };
}

interface HostOperationSpec {
  operation: 'set_host_enabled' | 'host_maintenance_mode';
  /** `HostAPI.<event>.start/.end`. */
  event: string;
  /** The notification payload besides host_name. */
  payload: (rt: CommandRuntime) => Record<string, unknown>;
  /** The driver call; answers what Nova's API returns as the state. */
  call: (rt: CommandRuntime, node: string) => Promise<string>;
  flags: (rt: CommandRuntime) => NodeFlags;
  result: (node: string, answer: string) => Record<string, string>;
}

function nodeOf(rt: CommandRuntime): string {
  return rt.command.node ?? '';
}

/** The driver's nodes; null when it cannot list them (its host call then decides). */
async function knownNodes(rt: CommandRuntime): Promise<string[] | null> {
  try {
    return await rt.deps.driver.getAvailableNodes(driverContext(rt));
  } catch (e) {
    if (isNotSupported(e)) return null;
    throw e;
  }
}

function hostOperation(spec: HostOperationSpec): OperationHandler<void> {
  return {
    operation: spec.operation,

    async prepare(rt, admin) {
      if (!admin) {
        throw new StratusError(
          ErrorCode.Forbidden,
          `Policy doesn't allow os_compute_api:os-hosts to be performed.`,
        );
      }
      const node = nodeOf(rt);
      const nodes = await knownNodes(rt);
      if (nodes && !nodes.includes(node)) throw new ComputeHostNotFoundError(node);
    },

    async start(rt) {
      const node = nodeOf(rt);
      const payload = { host_name: node, ...spec.payload(rt) };
      await rt.deps.store.startAction(newAction(rt.command, rt.subject, rt.now()), [
        hostNotification(rt, node, `HostAPI.${spec.event}.start`, payload),
      ]);
    },

    async perform(rt) {
      const action = await rt.deps.store.getAction(rt.subject, rt.command.command_id);
      if (action?.status !== 'running') return;
      const node = nodeOf(rt);
      let answer: string;
      try {
        answer = await spec.call(rt, node);
        await nodeStateStoreOf(rt.deps).update({
          node,
          changes: spec.flags(rt),
          commandId: rt.command.command_id,
          now: rt.now(),
        });
      } catch (e) {
        if (isRetryable(e)) throw e;
        await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
          finish: rt.outcome('failed', e),
        });
        return;
      }
      const payload = { host_name: node, ...spec.payload(rt) };
      await rt.deps.store.recordOnAction(rt.subject, rt.command.command_id, {
        notifications: [hostNotification(rt, node, `HostAPI.${spec.event}.end`, payload)],
        finish: rt.outcome('succeeded', undefined, spec.result(node, answer)),
      });
    },
  };
}

export const setHostEnabled = hostOperation({
  operation: 'set_host_enabled',
  event: 'set_enabled',
  payload: (rt) => ({ enabled: (rt.command.args as ArgsOf<'set_host_enabled'>).enabled }),
  call: (rt, node) =>
    rt.deps.driver.setHostEnabled(
      driverContext(rt),
      node,
      (rt.command.args as ArgsOf<'set_host_enabled'>).enabled,
    ),
  flags: (rt) => ({ enabled: (rt.command.args as ArgsOf<'set_host_enabled'>).enabled }),
  result: (node, answer) => ({ host: node, status: answer }),
});

export const hostMaintenanceMode = hostOperation({
  operation: 'host_maintenance_mode',
  event: 'set_maintenance',
  payload: (rt) => ({ mode: (rt.command.args as ArgsOf<'host_maintenance_mode'>).mode }),
  call: (rt, node) =>
    rt.deps.driver.hostMaintenanceMode(
      driverContext(rt),
      node,
      (rt.command.args as ArgsOf<'host_maintenance_mode'>).mode,
    ),
  flags: (rt) => ({ maintenance: (rt.command.args as ArgsOf<'host_maintenance_mode'>).mode }),
  result: (node, answer) => ({ host: node, maintenance_mode: answer }),
});
