// The one shape every command function has: middy + Powertools around lib/.
//
//   SQS batch ─► BatchProcessor (partial batch failures) ─► per record:
//     parse ─► rejected (answered, deleted, never retried)      when the command is bad
//           └► makeIdempotent(command_id) ─► executeCommand      otherwise
//
// A record that throws is reported as a batch item failure, so SQS redelivers it after the
// visibility timeout and, after maxReceiveCount receives, moves it to the DLQ. The error is
// logged (never the body: it may hold secrets) and recorded on the command's action.

import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { IdempotencyConfig, makeIdempotent } from '@aws-lambda-powertools/idempotency';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { parseCommand } from '../../lib/commands/parse.ts';
import type { Command } from '../../lib/commands/schemas.ts';
import { awsClients, composeComputeDeps } from '../../lib/compose.ts';
import {
  type OperationHandler,
  type Sender,
  executeCommand,
  rejectCommand,
} from '../../lib/compute/executor.ts';
import { type Config, loadConfig } from '../../lib/config.ts';
import type { Outcome } from '../../lib/store/state-store.ts';
import { logger, metrics } from './powertools.ts';

/** Powertools stores this when a command's outcome waits on a lifecycle event. */
const PENDING = { status: 'pending' } as const;

export interface CommandFunctionOptions {
  config?: Config;
}

export function commandHandler(operation: OperationHandler, options: CommandFunctionOptions = {}) {
  const config = options.config ?? loadConfig();
  const clients = awsClients();
  const deps = composeComputeDeps(config, logger, clients);
  const processor = new BatchProcessor(EventType.SQS);

  const idempotency = new IdempotencyConfig({
    eventKeyJmesPath: 'command_id',
    // Long enough to cover SQS redelivery and DLQ redrive of the same command.
    expiresAfterSeconds: 24 * 3600,
  });
  const execute = makeIdempotent(
    async (command: Command, sender: Sender): Promise<Outcome | typeof PENDING> => {
      const { outcome, duplicate } = await executeCommand(deps, command, sender, operation);
      if (duplicate) metrics.addMetric('CommandDuplicate', MetricUnit.Count, 1);
      if (outcome) metrics.addMetric(`Command_${outcome.status}`, MetricUnit.Count, 1);
      return outcome ?? PENDING;
    },
    {
      persistenceStore: new DynamoDBPersistenceLayer({
        tableName: config.tables.idempotency,
        awsSdkV3Client: clients.dynamodb,
      }),
      config: idempotency,
      // One namespace per operation, also where AWS_LAMBDA_FUNCTION_NAME is unset (local runs).
      keyPrefix: operation.operation,
    },
  );

  const recordHandler = async (record: SQSRecord): Promise<void> => {
    const parsed = parseCommand(record.body, operation.operation);
    if (!parsed.ok) {
      const s = parsed.salvaged;
      const commandId = s.command_id ?? `sqs:${record.messageId}`;
      await rejectCommand(
        deps,
        {
          command_id: commandId,
          operation: s.operation ?? operation.operation,
          instance_id: s.instance_id ?? '',
          ...(s.reply_to ? { reply_to: s.reply_to } : {}),
          context: { request_id: s.request_id ?? `req-${record.messageId}` },
        } as Parameters<typeof rejectCommand>[1],
        parsed.error,
      );
      metrics.addMetric('Command_rejected', MetricUnit.Count, 1);
      return;
    }
    const command = parsed.command;
    logger.appendKeys({ command_id: command.command_id, request_id: command.context.request_id });
    try {
      await execute(command, { senderId: record.attributes.SenderId ?? null });
    } catch (e) {
      logger.error('command failed; SQS will redeliver it', {
        message_id: record.messageId,
        receive_count: record.attributes.ApproximateReceiveCount,
        error_name: (e as Error).name,
        error_message: (e as Error).message,
      });
      metrics.addMetric('CommandError', MetricUnit.Count, 1);
      // A duplicate arriving while its twin runs is not an error of that running command.
      if ((e as Error).name !== 'IdempotencyAlreadyInProgressError') {
        await recordLastError(command, e, record.attributes.ApproximateReceiveCount);
      }
      throw e;
    } finally {
      logger.removeKeys(['command_id', 'request_id']);
    }
  };

  /** Best effort: the action shows why its command is being retried (or sits in the DLQ). */
  async function recordLastError(
    command: Command,
    error: unknown,
    receiveCount: string,
  ): Promise<void> {
    try {
      await deps.store.recordOnAction(
        { kind: 'instance', id: command.instance_id },
        command.command_id,
        {
          progress: {
            last_error: `${(error as Error).name}: ${(error as Error).message}`.slice(0, 500),
            receive_count: Number(receiveCount),
          },
        },
      );
    } catch {
      // No running action to annotate (e.g. it failed before starting); the log has it.
    }
  }

  return middy<SQSEvent, SQSBatchResponse>()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics, { captureColdStartMetric: true }))
    .handler(async (event: SQSEvent, context: Context) => {
      idempotency.registerLambdaContext(context);
      return processPartialResponse(event, recordHandler, processor, {
        context,
        throwOnFullBatchFailure: false,
        // One record at a time: the logger's per-command keys stay right, and a batch of ≤ 10
        // gains little from parallelism that Lambda's concurrency does not already give.
        processInParallel: false,
      });
    });
}
