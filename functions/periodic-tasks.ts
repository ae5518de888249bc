// Nova's periodic tasks, invoked by EventBridge Scheduler every minute: the lifecycle sweeper,
// the timeouts, reclaim, shelved offload and power-state sync (lib/compute/periodic).
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import {
  type TaskReport,
  composePeriodicDeps,
  runPeriodicTasks,
} from '../lib/compute/periodic/index.ts';
import { loadConfig } from '../lib/config.ts';
import { logger, metrics } from './commons/powertools.ts';
import { type ScheduledInvocation, scheduledTime } from './commons/scheduled.ts';

const deps = composePeriodicDeps(loadConfig(), logger);

export const handler = middy<ScheduledInvocation, { reports: TaskReport[] }>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .use(logMetrics(metrics))
  .handler(async (event) => {
    const reports = await runPeriodicTasks(deps, scheduledTime(event));
    for (const report of reports) {
      for (const [outcome, n] of Object.entries(report.counts)) {
        metrics.addMetric(`PeriodicTask_${report.task}_${outcome}`, MetricUnit.Count, n);
      }
      metrics.addMetric(`PeriodicTask_${report.task}_errors`, MetricUnit.Count, report.errors);
    }
    logger.info('periodic tasks ran', { reports });
    const failed = reports.filter((r) => r.errors > 0).map((r) => r.task);
    // Every task ran; failing the invocation now raises the function's Errors alarm.
    if (failed.length > 0) throw new Error(`periodic tasks with errors: ${failed.join(', ')}`);
    return { reports };
  });
