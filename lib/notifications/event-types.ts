// Every event type Stratus publishes (CONTRACT §2), and the JSON Schema of each as an
// EventBridge event: the schema registry entries the stack creates, generated from the zod
// schemas that tests hold real published events to. Used at synth time and in tests, never
// bundled into a function.
import { z } from 'zod';
import { notificationSchemaFor } from './schemas.ts';

/** Nova's start/end pairs (nova/rpc.py whitelist, as Stratus emits them). */
const START_END_ACTIONS = [
  'create',
  'delete',
  'shutdown',
  'soft_delete',
  'restore',
  'power_off',
  'power_on',
  'reboot',
  'pause',
  'unpause',
  'suspend',
  'resume',
  'rescue',
  'unrescue',
  'rebuild',
  'resize.prep',
  'resize',
  'finish_resize',
  'resize.confirm',
  'resize.revert',
  'snapshot',
  'shelve',
  'shelve_offload',
  'unshelve',
  'trigger_crash_dump',
  'create_ip',
  'delete_ip',
  'live_migration.pre',
  'live_migration._post',
  'live_migration.post.dest',
  'live_migration._rollback',
  'live_migration.rollback.dest',
] as const;

export const PUBLISHED_EVENT_TYPES: readonly string[] = [
  ...START_END_ACTIONS.flatMap((a) => [`compute.instance.${a}.start`, `compute.instance.${a}.end`]),
  ...['create', 'reboot', 'rebuild', 'resize'].map((a) => `compute.instance.${a}.error`),
  'compute.instance.volume.attach',
  'compute.instance.volume.detach',
  'compute.instance.update',
  'compute.instance.exists',
  'compute.instance.exists.audit',
  'api.fault',
];

/** A registry schema name: the event type with its dots kept (EventBridge allows `.`). */
export function schemaName(eventType: string): string {
  return eventType;
}

/**
 * The draft-4 JSON Schema of a whole EventBridge event of this type (what the registry
 * describes): `source`, `detail-type` and the envelope in `detail`.
 */
export function eventJsonSchema(eventType: string, source: string): Record<string, unknown> {
  const { $schema: _ignored, ...detail } = z.toJSONSchema(notificationSchemaFor(eventType), {
    target: 'draft-4',
    io: 'output',
  }) as Record<string, unknown>;
  return {
    $schema: 'http://json-schema.org/draft-04/schema#',
    title: eventType,
    description: `Stratus ${eventType} notification (CONTRACT §2)`,
    type: 'object',
    required: ['source', 'detail-type', 'detail'],
    properties: {
      source: { type: 'string', enum: [source] },
      'detail-type': { type: 'string', enum: [eventType] },
      resources: { type: 'array', items: { type: 'string' } },
      detail,
    },
  };
}
