// Which control plane the CLI talks to: the local one (`.stratus/endpoints.json`, written by
// `npm start`), any endpoints file (`--endpoints`), or a deployed stack (`--stack`, through the
// AWS CLI's `describe-stacks`, converted by lib/cli/stack-outputs.ts).

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { type Endpoints, EndpointsFileError, readEndpointsFile } from '../client/endpoints.ts';
import { DynamoDbStateStore } from '../store/dynamodb-state-store.ts';
import { CliError, UsageError } from './errors.ts';
import { endpointsFromStackOutputs } from './stack-outputs.ts';

export const DEFAULT_ENDPOINTS_FILE = '.stratus/endpoints.json';

export interface Target {
  endpoints: Endpoints;
  /** Where the endpoints came from (a path or `stack <name>`), for messages. */
  source: string;
  local: boolean;
  sqs: SQSClient;
  doc: DynamoDBDocumentClient;
  store: DynamoDbStateStore;
  stateTable: string;
  close(): void;
}

export interface TargetChoice {
  endpoints?: string;
  stack?: string;
  cwd: string;
  env: Record<string, string | undefined>;
}

const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

async function describeStack(name: string, env: TargetChoice['env']): Promise<unknown> {
  const args = ['cloudformation', 'describe-stacks', '--stack-name', name, '--output', 'json'];
  try {
    const { stdout } = await promisify(execFile)('aws', args, { env, maxBuffer: 16 << 20 });
    return JSON.parse(stdout);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new CliError(
        '--stack needs the AWS CLI (`aws`) on PATH to read the stack outputs',
        'or write an endpoints file once: aws cloudformation describe-stacks --stack-name ' +
          `${name} | npx stratus endpoints --from-stack-outputs - > ${name}.json; then --endpoints ${name}.json`,
      );
    }
    const stderr = String((e as { stderr?: string }).stderr ?? (e as Error).message).trim();
    throw new CliError(`could not describe stack ${name}: ${stderr.split('\n')[0]}`);
  }
}

export async function resolveEndpoints(
  choice: TargetChoice,
): Promise<{ endpoints: Endpoints; source: string }> {
  if (choice.endpoints !== undefined && choice.stack !== undefined) {
    throw new UsageError('give --endpoints or --stack, not both');
  }
  if (choice.stack !== undefined) {
    const described = await describeStack(choice.stack, choice.env);
    return {
      endpoints: endpointsFromStackOutputs(described, { region: choice.env.AWS_REGION }),
      source: `stack ${choice.stack}`,
    };
  }
  const explicit = choice.endpoints ?? choice.env.STRATUS_ENDPOINTS;
  const path = resolve(choice.cwd, explicit ?? DEFAULT_ENDPOINTS_FILE);
  try {
    return { endpoints: await readEndpointsFile(path), source: path };
  } catch (e) {
    if (
      e instanceof EndpointsFileError &&
      explicit === undefined &&
      /does not exist/.test(e.message)
    ) {
      throw new CliError(
        `no local control plane is running (${DEFAULT_ENDPOINTS_FILE} not found)`,
        'start one with `npm start`, or target a deployed stack with --stack NAME or --endpoints FILE',
      );
    }
    if (e instanceof EndpointsFileError) throw new CliError(e.message);
    throw e;
  }
}

export function targetOf(endpoints: Endpoints, source: string): Target {
  const local = endpoints.sqs.endpoint !== null;
  const region = endpoints.region;
  const sqs = local
    ? new SQSClient({
        region,
        endpoint: endpoints.sqs.endpoint!,
        useQueueUrlAsEndpoint: false,
        credentials: LOCAL_CREDENTIALS,
      })
    : new SQSClient({ region });
  const dynamoEndpoint = endpoints.dynamodb.endpoint;
  const dynamodb = dynamoEndpoint
    ? new DynamoDBClient({ region, endpoint: dynamoEndpoint, credentials: LOCAL_CREDENTIALS })
    : new DynamoDBClient({ region });
  const doc = DynamoDBDocumentClient.from(dynamodb, {
    marshallOptions: { removeUndefinedValues: true },
  });
  const stateTable = endpoints.dynamodb.tables?.state;
  if (!stateTable) throw new CliError(`${source}: names no state table (dynamodb.tables.state)`);
  return {
    endpoints,
    source,
    local,
    sqs,
    doc,
    store: new DynamoDbStateStore(doc, stateTable),
    stateTable,
    close() {
      sqs.destroy();
      dynamodb.destroy();
    },
  };
}

/** Connection refused (anywhere in an error's causes): the plane is not running. */
export function isConnectionRefused(e: unknown): boolean {
  const seen = new Set<unknown>();
  const walk = (x: unknown): boolean => {
    if (typeof x !== 'object' || x === null || seen.has(x)) return false;
    seen.add(x);
    const o = x as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
    if (o.code === 'ECONNREFUSED') return true;
    if (typeof o.message === 'string' && o.message.includes('ECONNREFUSED')) return true;
    if (Array.isArray(o.errors) && o.errors.some(walk)) return true;
    return walk(o.cause);
  };
  return walk(e);
}
