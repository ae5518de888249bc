// Checks a received EventBridge event against the JSON Schema the stack registers for its
// detail-type (lib/notifications/event-types.ts), with a draft-04 validator, as a subscriber
// generating bindings from the registry would read it.
import AjvModule from 'ajv-draft-04';
import { expect } from 'vitest';
import { PUBLISHED_EVENT_TYPES, eventJsonSchema } from '../../lib/notifications/event-types.ts';

// A CommonJS package: Node's default import is module.exports, which is the class itself.
const Ajv = AjvModule as unknown as typeof AjvModule.default;
const ajv = new Ajv({ allErrors: true, strict: false });
const validators = new Map<string, ReturnType<typeof ajv.compile>>();

export function expectMatchesRegisteredSchema(event: {
  source: string;
  'detail-type': string;
}): void {
  const type = event['detail-type'];
  expect(PUBLISHED_EVENT_TYPES, `${type} is not a registered event type`).toContain(type);
  const key = `${event.source}|${type}`;
  let validate = validators.get(key);
  if (!validate) {
    validate = ajv.compile(eventJsonSchema(type, event.source));
    validators.set(key, validate);
  }
  const valid = validate(event);
  expect(valid, `${type}: ${ajv.errorsText(validate.errors)}`).toBe(true);
}
