// Lifecycle events from the drivers (EC2 state-change notifications and the fake driver's
// events, both delivered by EventBridge rules to the lifecycle queue) complete pending tasks.
// EC2 events are handled only when this deployment runs the EC2 driver (driver=ec2); a fake
// deployment logs and drops them (the default bus carries every instance of the account).
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { composeComputeDeps } from '../lib/compose.ts';
import { handleLifecycleEvent } from '../lib/compute/lifecycle.ts';
import { parseLifecycleMessage } from '../lib/compute/lifecycle-transport.ts';
import { loadConfig } from '../lib/config.ts';
import { handleEc2Event } from '../lib/virt/ec2/state-change.ts';
import { logger, metrics } from './commons/powertools.ts';

const config = loadConfig();
const deps = composeComputeDeps(config, logger);
const processor = new BatchProcessor(EventType.SQS);

async function recordHandler(record: SQSRecord): Promise<void> {
  const message = parseLifecycleMessage(record.body);
  if (message.kind === 'virt') {
    const result = await handleLifecycleEvent(deps, message.event);
    metrics.addMetric(`LifecycleEvent_${result}`, MetricUnit.Count, 1);
    return;
  }
  if (message.kind === 'ec2' && config.driver === 'ec2') {
    // Errors (EC2 throttling, DynamoDB) fail the record: the queue redelivers it.
    const result = await handleEc2Event(deps, message.event);
    metrics.addMetric(`LifecycleEvent_ec2_${result}`, MetricUnit.Count, 1);
    return;
  }
  // Not retryable: a message we cannot use now will not become usable later.
  logger.warn('lifecycle message ignored', {
    message_id: record.messageId,
    reason: message.kind === 'ec2' ? 'the EC2 driver is not configured' : message.reason,
  });
  metrics.addMetric('LifecycleEvent_ignored', MetricUnit.Count, 1);
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
