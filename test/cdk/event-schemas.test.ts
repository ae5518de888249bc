// The notification bus's schema registry: one draft-4 JSON Schema per published event type, as
// the template deploys it, checked with a draft-04 validator against events built by the real
// notification builders (what a subscriber generating bindings from the registry relies on).

import { describe, expect, it } from 'vitest';
import { CfnResource, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import AjvModule from 'ajv-draft-04';
import type { IConstruct } from 'constructs';
import {
  PUBLISHED_EVENT_TYPES,
  eventJsonSchema,
  schemaName,
} from '../../lib/notifications/event-types.ts';
import {
  ERROR_NOTIFICATION_ACTIONS,
  apiFaultNotification,
  envelopeOf,
  errorNotification,
  existsNotification,
  instanceNotification,
  type Notification,
} from '../../lib/notifications/notification.ts';
import { buildInstance } from '../unit/notifications/fixtures.ts';
import { SCHEMAS_IN_PARALLEL } from '../../cdk/constructs/event-schemas.ts';
import { resourcesOfType, synth } from './support.ts';

// A CommonJS package: Node's default import is module.exports, which is the class itself.
const Ajv = AjvModule as unknown as typeof AjvModule.default;

const defaults = synth();
const { eventSchemas } = defaults.stack;

function logicalId(construct: IConstruct): string {
  const stack = Stack.of(construct);
  const resource = CfnResource.isCfnResource(construct)
    ? construct
    : (construct.node.defaultChild as CfnResource);
  return stack.resolve(stack.getLogicalId(resource)) as string;
}

/** The template of the stack that holds the registry. */
const schemaTemplate = Template.fromStack(Stack.of(eventSchemas.registry));

type SchemaProps = {
  RegistryName: unknown;
  SchemaName: string;
  Type: string;
  Content: string;
  Description?: string;
};
const schemas = resourcesOfType([schemaTemplate], 'AWS::EventSchemas::Schema').map(
  ([, r]) => r.Properties as SchemaProps,
);
const contentOf = (eventType: string) => {
  const schema = schemas.find((s) => s.SchemaName === schemaName(eventType));
  if (!schema) throw new Error(`no schema registered for ${eventType}`);
  return JSON.parse(schema.Content) as Record<string, unknown>;
};

const ajv = new Ajv({ allErrors: true, strict: false });
// Draft-04 names no `uuid` format (the schemas carry it for code generators): check its shape.
ajv.addFormat('uuid', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
/** A validator of the deployed schema of one event type. */
const validatorFor = (eventType: string) => ajv.compile(contentOf(eventType));

const SOURCE = 'stratus.compute';
const NOW = new Date('2024-03-10T10:30:00Z');
const base = { host: 'compute-a', commandId: 'cmd-1', requestId: 'req-1', now: NOW };

/** The EventBridge event a subscriber receives for a notification (publisher.ts's shape). */
function eventOf(notification: Notification, source = SOURCE) {
  return {
    source,
    'detail-type': notification.event_type,
    resources: notification.instance_id ? [notification.instance_id] : [],
    detail: envelopeOf(notification),
  };
}

const exists = () =>
  existsNotification({
    ...base,
    instance: buildInstance(),
    period: {
      beginning: new Date('2024-03-09T00:00:00Z'),
      ending: new Date('2024-03-10T00:00:00Z'),
    },
  });

describe('event schema registry', () => {
  it('registers one draft-4 schema per published event type, in the registry', () => {
    const registryId = logicalId(eventSchemas.registry);
    schemaTemplate.hasResourceProperties('AWS::EventSchemas::Registry', {
      RegistryName: 'stratus-notifications',
    });
    expect(new Set(PUBLISHED_EVENT_TYPES).size).toBe(PUBLISHED_EVENT_TYPES.length);
    expect(schemas).toHaveLength(PUBLISHED_EVENT_TYPES.length);
    expect(schemas.map((s) => s.SchemaName).sort()).toEqual(
      PUBLISHED_EVENT_TYPES.map(schemaName).sort(),
    );
    for (const schema of schemas) {
      expect(schema.Type).toBe('JSONSchemaDraft4');
      expect(schema.RegistryName).toEqual({ 'Fn::GetAtt': [registryId, 'RegistryName'] });
    }
    defaults.root.hasOutput('SchemaRegistryName', {});
  });

  it(`creates at most ${SCHEMAS_IN_PARALLEL} schemas at a time (the Schemas API throttles)`, () => {
    const ids = eventSchemas.schemas.map(logicalId);
    const resources = schemaTemplate.toJSON().Resources as Record<string, { DependsOn?: string[] }>;
    ids.forEach((id, i) => {
      const dependsOn = resources[id]!.DependsOn ?? [];
      if (i < SCHEMAS_IN_PARALLEL) expect(dependsOn).toEqual([]);
      else expect(dependsOn).toContain(ids[i - SCHEMAS_IN_PARALLEL]);
    });
  });

  it('covers every event family the builders produce', () => {
    for (const type of [
      'compute.instance.create.start',
      'compute.instance.create.end',
      'compute.instance.delete.end',
      'compute.instance.update',
      'compute.instance.exists',
      'compute.instance.exists.audit',
      'compute.instance.volume.attach',
      'api.fault',
      ...ERROR_NOTIFICATION_ACTIONS.map((a) => `compute.instance.${a}.error`),
    ]) {
      expect(PUBLISHED_EVENT_TYPES).toContain(type);
    }
  });

  it('deploys, as each Content, a valid draft-04 schema of the whole event', () => {
    for (const type of PUBLISHED_EVENT_TYPES) {
      const schema = schemas.find((s) => s.SchemaName === schemaName(type))!;
      // EventBridge Schemas accepts at most 100,000 characters of content.
      expect(schema.Content.length).toBeLessThan(100_000);
      const content = contentOf(type);
      expect(content).toEqual(eventJsonSchema(type, SOURCE));
      expect(content.$schema).toBe('http://json-schema.org/draft-04/schema#');
      expect(ajv.validateSchema(content), `${type}: ${ajv.errorsText(ajv.errors)}`).toBe(true);
    }
  });

  it('describes events of the configured event_source', () => {
    const custom = synth({}, { event_source: 'acme.compute', prefix: 'blue' });
    const template = Template.fromStack(Stack.of(custom.stack.eventSchemas.registry));
    template.hasResourceProperties('AWS::EventSchemas::Registry', {
      RegistryName: 'blue-notifications',
    });
    const [, schema] = resourcesOfType([template], 'AWS::EventSchemas::Schema')[0]!;
    const content = JSON.parse((schema.Properties as SchemaProps).Content) as {
      properties: { source: { enum: string[] } };
    };
    expect(content.properties.source.enum).toEqual(['acme.compute']);
  });
});

describe('published events against the deployed schemas', () => {
  it.each([
    [
      'compute.instance.create.end',
      () =>
        instanceNotification({
          ...base,
          instance: buildInstance(),
          eventType: 'compute.instance.create.end',
        }),
    ],
    ['compute.instance.exists', exists],
    [
      'compute.instance.create.error',
      () =>
        errorNotification({
          ...base,
          instance: buildInstance(),
          action: 'create',
          error: new Error('no capacity'),
        }),
    ],
    [
      'api.fault',
      () =>
        apiFaultNotification({
          ...base,
          operation: 'stop_instance',
          instanceId: null,
          exception: 'InstanceNotFound',
          status: 404,
        }) as Notification,
    ],
  ] as const)('accepts a real %s event', (type, build) => {
    const event = eventOf(build());
    expect(event['detail-type']).toBe(type);
    const validate = validatorFor(type);
    expect(validate(event), ajv.errorsText(validate.errors)).toBe(true);
  });

  it('rejects an exists whose payload lacks a promised field', () => {
    const event = eventOf(exists());
    const { audit_period_ending: _dropped, ...payload } = event.detail.payload;
    const validate = validatorFor('compute.instance.exists');
    expect(validate({ ...event, detail: { ...event.detail, payload } })).toBe(false);
    expect(ajv.errorsText(validate.errors)).toContain('audit_period_ending');
  });

  it('rejects an event under another detail-type or source', () => {
    const event = eventOf(exists());
    const validate = validatorFor('compute.instance.exists');
    expect(validate({ ...event, 'detail-type': 'compute.instance.exists.audit' })).toBe(false);
    expect(validate({ ...event, source: 'someone.else' })).toBe(false);
    // A lifecycle event is not an exists: its payload has no audit period.
    const created = eventOf(
      instanceNotification({
        ...base,
        instance: buildInstance(),
        eventType: 'compute.instance.create.end',
      }),
    );
    expect(validate({ ...created, 'detail-type': 'compute.instance.exists' })).toBe(false);
  });

  it('rejects an envelope with an extra top-level field (the envelope is strict)', () => {
    const event = eventOf(exists());
    const validate = validatorFor('compute.instance.exists');
    expect(validate({ ...event, detail: { ...event.detail, instance_id: 'x' } })).toBe(false);
    expect(validate({ ...event, detail: { ...event.detail, message_id: 'not-a-uuid' } })).toBe(
      false,
    );
  });
});
