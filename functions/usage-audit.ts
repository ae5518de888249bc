// The usage audit's fan-out, invoked by EventBridge Scheduler: the last completed audit period
// and one shard-queue message per shard that still needs a run (lib/audit/fan-out.ts).
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import { composeFanOutDeps } from '../lib/audit/compose.ts';
import { type FanOutResult, fanOutAudit } from '../lib/audit/fan-out.ts';
import { loadConfig } from '../lib/config.ts';
import { logger, metrics } from './commons/powertools.ts';
import { type ScheduledInvocation, scheduledTime } from './commons/scheduled.ts';

const deps = composeFanOutDeps(loadConfig());

export const handler = middy<ScheduledInvocation, FanOutResult>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .use(logMetrics(metrics))
  .handler(async (event) => {
    const result = await fanOutAudit(deps, scheduledTime(event));
    if (result.status === 'sent') {
      metrics.addMetric('UsageAudit_shards_sent', MetricUnit.Count, result.sent.length);
      logger.info('usage audit fan-out', {
        period_beginning: result.period.beginning.toISOString(),
        period_ending: result.period.ending.toISOString(),
        expected: result.expected.length,
        sent: result.sent.length,
      });
    }
    return result;
  });
