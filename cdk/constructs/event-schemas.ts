// The notification bus's schema registry: one JSON Schema (draft-4, EventBridge's format) per
// published event type, generated from the code's zod schemas, so subscribers can browse them,
// generate code bindings, and trust that tests hold real events to the same definitions.

import { CfnRegistry, CfnSchema } from 'aws-cdk-lib/aws-eventschemas';
import { Construct } from 'constructs';
import {
  PUBLISHED_EVENT_TYPES,
  eventJsonSchema,
  schemaName,
} from '../../lib/notifications/event-types.ts';

/** How many schemas CloudFormation creates at a time. */
export const SCHEMAS_IN_PARALLEL = 5;

export interface EventSchemasProps {
  readonly prefix: string;
  readonly eventSource: string;
}

export class EventSchemas extends Construct {
  readonly registry: CfnRegistry;
  readonly schemas: readonly CfnSchema[];

  constructor(scope: Construct, id: string, props: EventSchemasProps) {
    super(scope, id);
    this.registry = new CfnRegistry(this, 'Registry', {
      registryName: `${props.prefix}-notifications`,
      description: 'Stratus notifications (compute.instance.*, api.fault), as published',
    });
    const schemas: CfnSchema[] = [];
    for (const eventType of PUBLISHED_EVENT_TYPES) {
      const schema = new CfnSchema(this, `Schema${eventType}`, {
        registryName: this.registry.attrRegistryName,
        schemaName: schemaName(eventType),
        type: 'JSONSchemaDraft4',
        description: `Stratus ${eventType}`,
        content: JSON.stringify(eventJsonSchema(eventType, props.eventSource)),
      });
      // CloudFormation would create all of them at once and the Schemas API throttles: chain
      // them so at most SCHEMAS_IN_PARALLEL are created (or updated) together.
      const before = schemas[schemas.length - SCHEMAS_IN_PARALLEL];
      if (before) schema.addDependency(before);
      schemas.push(schema);
    }
    this.schemas = schemas;
  }
}
