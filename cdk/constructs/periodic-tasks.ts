// Nova's periodic tasks as one scheduled function (ARCHITECTURE §1): EventBridge Scheduler
// invokes functions/periodic-tasks.ts every minute with the scheduled time as its input.

import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { PERIODIC_TASKS_FUNCTION } from '../../lib/compute/periodic/settings.ts';
import type { DataAccess } from './data-access.ts';
import { ScheduledFunction } from './scheduled-function.ts';

export { SCHEDULE_MAX_EVENT_AGE, SCHEDULE_RETRY_ATTEMPTS } from './scheduled-function.ts';

export const PERIODIC_TASKS_SETTINGS = PERIODIC_TASKS_FUNCTION;

export function periodicTasksName(prefix: string): string {
  return `${prefix}-periodic-tasks`;
}

export interface PeriodicTasksProps {
  readonly prefix: string;
  readonly environment: Record<string, string>;
  readonly logRetention: RetentionDays;
  readonly alarmTopic: ITopic;
  readonly dataAccess: DataAccess;
}

export class PeriodicTasks extends ScheduledFunction {
  constructor(scope: Construct, id: string, props: PeriodicTasksProps) {
    super(scope, id, {
      ...PERIODIC_TASKS_SETTINGS,
      name: periodicTasksName(props.prefix),
      description: 'Stratus periodic tasks: lifecycle sweeper, timeouts, reclaim, power sync',
      environment: props.environment,
      logRetention: props.logRetention,
      alarmTopic: props.alarmTopic,
    });
    props.dataAccess.grantTo(this.fn);
  }
}
