// ComputeClient: the typed producer client other services use to send compute commands.
//
//   const compute = new ComputeClient({
//     queues: { endpointsFile: '.stratus/endpoints.json' },
//     context: { user_id: 'alice', project_id: 'web' },
//   });
//   const { commandId, instanceId } = await compute.build({ flavor: 'm1.small', image_ref: 'ami-1' });
//
// Every command is validated with the functions' own schemas before it is sent (a bad one
// throws CommandValidationError and nothing is sent). Each send gets a command id — the
// idempotency key — unless the caller passes one; a caller that retries a send after an error
// MUST pass the same commandId again, so the retry is the same command and runs at most once.
// Queue URLs are resolved once per client.

import { SQSClient, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { Operation } from '../topology.ts';
import {
  type ArgsInput,
  type CommandBody,
  type CommandContext,
  type CommandInput,
  buildCommandBody,
} from './command-body.ts';
import { type Endpoints, readEndpointsFile } from './endpoints.ts';

export { CommandValidationError, type ArgsInput, type CommandContext } from './command-body.ts';

export type QueueUrls = Partial<Record<Operation, string>>;

export interface ComputeClientOptions {
  /** The queue URL per operation, or the endpoints file that lists them (CONTRACT §3). */
  queues: QueueUrls | { endpointsFile: string };
  /**
   * Defaults to a client for the endpoints file's SQS endpoint (emulators), or to the AWS
   * SDK's default configuration (region and credentials from the environment).
   */
  sqs?: SQSClient;
  /** Who is sending: every command carries it. `roles: ['admin']` needs a trusted producer. */
  context: CommandContext;
}

/** An operation has no queue: not implemented by this deployment, or not in the file. */
export class QueueNotFoundError extends Error {
  readonly operation: Operation;
  constructor(operation: Operation) {
    super(
      `no queue for ${operation}: this deployment does not implement it (or its URL is missing)`,
    );
    this.name = 'QueueNotFoundError';
    this.operation = operation;
  }
}

/** `args` may be left out only when the operation has no required argument. */
type ArgsField<O extends Operation> =
  Record<never, never> extends ArgsInput<O> ? { args?: ArgsInput<O> } : { args: ArgsInput<O> };

export type SendInput<O extends Operation> = Omit<CommandInput<O>, 'args'> & ArgsField<O>;

export interface SentCommand<O extends Operation = Operation> {
  operation: O;
  commandId: string;
  /** The instance addressed; for a build without an id, the one derived from the command id. */
  instanceId: string | null;
  messageId: string;
  queueUrl: string;
  /** Exactly what was sent. */
  body: CommandBody;
}

export type CommandOptions = Pick<CommandInput, 'commandId' | 'replyTo'> & {
  /** Overrides the client's context for this command (e.g. a request_id). */
  context?: Partial<CommandContext>;
};

interface Resolved {
  queues: QueueUrls;
  sqs: SQSClient;
}

function clientFor(endpoints: Endpoints): SQSClient {
  if (endpoints.sqs.endpoint === null) return new SQSClient({ region: endpoints.region });
  // Emulators: their queue URLs may name hosts that do not resolve, and they check no keys.
  return new SQSClient({
    region: endpoints.region,
    endpoint: endpoints.sqs.endpoint,
    useQueueUrlAsEndpoint: false,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
}

export class ComputeClient {
  private readonly options: ComputeClientOptions;
  private resolved: Promise<Resolved> | undefined;

  constructor(options: ComputeClientOptions) {
    this.options = options;
  }

  private resolve(): Promise<Resolved> {
    this.resolved ??= (async () => {
      const q = this.options.queues;
      if ('endpointsFile' in q && typeof q.endpointsFile === 'string') {
        const endpoints = await readEndpointsFile(q.endpointsFile);
        return { queues: endpoints.sqs.queues, sqs: this.options.sqs ?? clientFor(endpoints) };
      }
      return { queues: q as QueueUrls, sqs: this.options.sqs ?? new SQSClient({}) };
    })();
    // A failed resolution (e.g. the file is not there yet) is tried again on the next send.
    this.resolved.catch(() => {
      this.resolved = undefined;
    });
    return this.resolved;
  }

  /** The queue URL of an operation (resolved once). */
  async queueUrl(operation: Operation): Promise<string> {
    const url = (await this.resolve()).queues[operation];
    if (!url) throw new QueueNotFoundError(operation);
    return url;
  }

  /** Validates and sends one command. */
  async send<O extends Operation>(
    operation: O,
    input: SendInput<O>,
    options: Pick<CommandOptions, 'context'> = {},
  ): Promise<SentCommand<O>> {
    const { body, instanceId } = buildCommandBody(operation, input as CommandInput<O>, {
      ...this.options.context,
      ...options.context,
    });
    const { sqs } = await this.resolve();
    const queueUrl = await this.queueUrl(operation);
    const out = await sqs.send(
      new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(body) }),
    );
    return {
      operation,
      commandId: body.command_id,
      instanceId,
      messageId: out.MessageId ?? '',
      queueUrl,
      body,
    };
  }

  /** build_and_run_instance; the new instance's id is in the result. */
  build(
    args: ArgsInput<'build_and_run_instance'>,
    options: CommandOptions & { instanceId?: string } = {},
  ): Promise<SentCommand<'build_and_run_instance'>> {
    const { context, ...rest } = options;
    return this.send('build_and_run_instance', { ...rest, args }, { context });
  }

  terminate(
    instanceId: string,
    options: CommandOptions = {},
  ): Promise<SentCommand<'terminate_instance'>> {
    const { context, ...rest } = options;
    return this.send('terminate_instance', { ...rest, instanceId }, { context });
  }

  reboot(
    instanceId: string,
    rebootType: 'SOFT' | 'HARD' = 'SOFT',
    options: CommandOptions = {},
  ): Promise<SentCommand<'reboot_instance'>> {
    const { context, ...rest } = options;
    return this.send(
      'reboot_instance',
      { ...rest, instanceId, args: { reboot_type: rebootType } },
      { context },
    );
  }
}
