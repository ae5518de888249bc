// Reads an operation's args schema (lib/commands/schemas.ts) as a list of fields with a CLI
// value kind, so every operation — including ones added later — gets its flags from the one
// definition the functions validate with, never from a hand-written list.

/** How a field's value is written on the command line. */
export type FieldKind =
  | { type: 'string' }
  | { type: 'integer' }
  | { type: 'number' }
  | { type: 'boolean' }
  | { type: 'enum'; values: readonly string[] }
  /** Repeat the flag (or give a JSON array). */
  | { type: 'string-list' }
  /** `key=value`, repeatable (or a JSON object). */
  | { type: 'map' }
  /** JSON, or `k=v,k=v` per element, repeatable; a bare value fills the one required field. */
  | { type: 'object-list'; fields: readonly FieldSpec[] }
  /** Anything else: JSON. */
  | { type: 'json' };

export interface FieldSpec {
  name: string;
  kind: FieldKind;
  /** Neither optional nor defaulted. */
  required: boolean;
}

/** The part of zod's (classic or mini) internal definition this module reads. */
interface SchemaDef {
  type: string;
  innerType?: Schema;
  shape?: Record<string, Schema>;
  element?: Schema;
  entries?: Record<string, string | number>;
  options?: readonly Schema[];
  format?: string;
}
interface Schema {
  _zod: { def: SchemaDef };
}

function defOf(schema: unknown): SchemaDef {
  return (schema as Schema)._zod.def;
}

/** Strips optional/default/nullable wrappers; `required` is false if any was optional. */
function unwrap(schema: unknown): { def: SchemaDef; required: boolean } {
  let def = defOf(schema);
  let required = true;
  while (
    (def.type === 'optional' || def.type === 'default' || def.type === 'nullable') &&
    def.innerType
  ) {
    if (def.type !== 'nullable') required = false;
    def = defOf(def.innerType);
  }
  return { def, required };
}

function kindOf(def: SchemaDef): FieldKind {
  switch (def.type) {
    case 'string':
      return { type: 'string' };
    case 'number':
      return def.format && /int/.test(def.format) ? { type: 'integer' } : { type: 'number' };
    case 'int':
      return { type: 'integer' };
    case 'boolean':
      return { type: 'boolean' };
    case 'enum':
      return { type: 'enum', values: Object.values(def.entries ?? {}).map(String) };
    case 'union':
      // e.g. an IPv4-or-IPv6 address: all strings → a string on the command line.
      return (def.options ?? []).every((o) => unwrap(o).def.type === 'string')
        ? { type: 'string' }
        : { type: 'json' };
    case 'record':
      return { type: 'map' };
    case 'array': {
      if (!def.element) return { type: 'json' };
      const element = unwrap(def.element).def;
      if (element.type === 'string') return { type: 'string-list' };
      if (element.type === 'object') return { type: 'object-list', fields: fieldsOfDef(element) };
      return { type: 'json' };
    }
    default:
      return { type: 'json' };
  }
}

function fieldsOfDef(def: SchemaDef): FieldSpec[] {
  return Object.entries(def.shape ?? {}).map(([name, schema]) => {
    const { def: inner, required } = unwrap(schema);
    return { name, kind: kindOf(inner), required };
  });
}

/** The fields of an object schema (an operation's args), in declaration order. */
export function fieldsOf(schema: unknown): FieldSpec[] {
  const { def } = unwrap(schema);
  if (def.type !== 'object') return [];
  return fieldsOfDef(def);
}
