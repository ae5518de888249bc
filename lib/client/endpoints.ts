// The endpoints file (CONTRACT §3): where a Stratus control plane's queues, tables and bus are.
// `npm start` writes `.stratus/endpoints.json`; for a deployed stack the same shape is produced
// from the stack's outputs (`stratus endpoints --from-stack-outputs`). The producer client and
// the CLI read it.

import { readFile } from 'node:fs/promises';
import * as z from 'zod/mini';
import '../validation.ts';
import { type Operation, isOperation } from '../topology.ts';

const url = z.string().check(z.minLength(1));
/**
 * Queue URL per operation. Names this version does not know (a newer plane's operations) are
 * dropped, not refused, so an older CLI or client keeps working with the rest.
 */
const queueMap = z.pipe(
  z.record(z.string(), url),
  z.transform((m): Partial<Record<Operation, string>> =>
    Object.fromEntries(Object.entries(m).filter(([op]) => isOperation(op))),
  ),
);

const EndpointsSchema = z.looseObject({
  region: z.string().check(z.minLength(1)),
  sqs: z.looseObject({
    /** null for AWS itself (the SDK's regional endpoint). */
    endpoint: z.nullable(url),
    queues: queueMap,
    dlqs: z.optional(queueMap),
    lifecycle: z.optional(z.nullable(url)),
    lifecycle_dlq: z.optional(z.nullable(url)),
    audit: z.optional(z.nullable(url)),
    audit_dlq: z.optional(z.nullable(url)),
  }),
  dynamodb: z.looseObject({
    endpoint: z.nullable(url),
    tables: z.optional(
      z.looseObject({
        state: z.string(),
        idempotency: z.optional(z.string()),
        fakeHypervisor: z.optional(z.nullable(z.string())),
      }),
    ),
  }),
  eventbridge: z.looseObject({ endpoint: z.nullable(url), bus: z.string() }),
  /** The local notification log (JSON lines), when there is one. */
  notifications_log: z.optional(z.nullable(z.string())),
  /** The fake driver's nodes, as the local plane runs them. */
  /** The local plane's instance_usage_audit_period (for `stratus audit-log`). */
  audit_period: z.optional(z.string()),
  fake_nodes: z.optional(
    z.array(
      z.looseObject({
        node: z.string(),
        vcpus: z.number(),
        memory_mb: z.number(),
        local_gb: z.number(),
        availability_zone: z.optional(z.string()),
      }),
    ),
  ),
});

export type Endpoints = z.output<typeof EndpointsSchema>;

export class EndpointsFileError extends Error {
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EndpointsFileError';
    this.path = path;
  }
}

export function parseEndpoints(text: string, path = '(endpoints)'): Endpoints {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new EndpointsFileError(path, `${path}: not valid JSON`, { cause: e });
  }
  const parsed = EndpointsSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (i) => `${i.path.join('.') || '(file)'}: ${i.message}`,
    );
    throw new EndpointsFileError(path, `${path}: not an endpoints file (${problems.join('; ')})`);
  }
  return parsed.data;
}

export async function readEndpointsFile(path: string): Promise<Endpoints> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new EndpointsFileError(path, `${path} does not exist`, { cause: e });
    }
    throw e;
  }
  return parseEndpoints(text, path);
}

/** True when the endpoints are emulators (any explicit SQS endpoint), not AWS itself. */
export function isLocal(endpoints: Endpoints): boolean {
  return endpoints.sqs.endpoint !== null;
}

export function queueUrlOf(endpoints: Endpoints, operation: Operation): string | undefined {
  return endpoints.sqs.queues[operation];
}
