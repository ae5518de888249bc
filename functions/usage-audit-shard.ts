// The usage audit's shard worker: one shard-queue message, one shard's audit for one period
// (lib/audit/run-shard.ts). A shard another run holds, or any failure, fails the record, so
// SQS redelivers it after the visibility timeout; after maxReceiveCount it waits in the DLQ.
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { composeAuditDeps } from '../lib/audit/compose.ts';
import { newRunId, runShard, type ShardTask } from '../lib/audit/run-shard.ts';
import { loadConfig } from '../lib/config.ts';
import { logger, metrics } from './commons/powertools.ts';

const deps = composeAuditDeps(loadConfig(), logger);
const processor = new BatchProcessor(EventType.SQS);

async function recordHandler(record: SQSRecord): Promise<void> {
  const task = JSON.parse(record.body) as ShardTask;
  const outcome = await runShard(deps, task, newRunId());
  metrics.addMetric(`UsageAudit_shard_${outcome.status}`, MetricUnit.Count, 1);
  if (outcome.status === 'audited') {
    metrics.addMetric('UsageAudit_exists', MetricUnit.Count, outcome.exists);
    metrics.addMetric('UsageAudit_errors', MetricUnit.Count, outcome.entry.errors);
  }
  logger.info('usage audit shard', {
    shard: outcome.entry.host,
    status: outcome.status,
    period_beginning: outcome.entry.period_beginning,
    task_items: outcome.entry.task_items,
    errors: outcome.entry.errors,
  });
}

export const handler = middy<SQSEvent, SQSBatchResponse>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .use(logMetrics(metrics))
  .handler(async (event: SQSEvent, context: Context) =>
    processPartialResponse(event, recordHandler, processor, {
      context,
      throwOnFullBatchFailure: false,
    }),
  );
