// When a periodic task with its own interval last ran (Nova's `spacing`), kept as a small item of
// the state table (`pk periodic#<task>`) so that every scheduler sees the same clock. Claiming a
// run is one conditional write: of two schedulers that both find the task due, one writes and
// runs it, the other's condition fails and it skips.

import { type DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { conditionalWrite } from '../../store/conditional-write.ts';

export interface PeriodicSchedule {
  /**
   * Records `now` as the task's last run unless it ran less than `intervalSeconds` ago (or at
   * `now` itself); true when this caller claimed the run and should do it.
   */
  claim(task: string, now: Date, intervalSeconds: number): Promise<boolean>;
}

const SCHEDULE_SK = 'schedule';

export function scheduleKey(task: string): { pk: string; sk: string } {
  return { pk: `periodic#${task}`, sk: SCHEDULE_SK };
}

function dueBefore(now: Date, intervalSeconds: number): string {
  return new Date(now.getTime() - Math.max(0, intervalSeconds) * 1000).toISOString();
}

export class DynamoDbPeriodicSchedule implements PeriodicSchedule {
  private readonly doc: DynamoDBDocumentClient;
  private readonly table: string;

  constructor(doc: DynamoDBDocumentClient, tableName: string) {
    this.doc = doc;
    this.table = tableName;
  }

  async claim(task: string, now: Date, intervalSeconds: number): Promise<boolean> {
    return conditionalWrite(
      this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: scheduleKey(task),
          UpdateExpression: 'SET last_run = :now',
          // ISO-8601 UTC strings of one format order as the times they name.
          ConditionExpression: 'attribute_not_exists(pk) OR (last_run <= :due AND last_run < :now)',
          ExpressionAttributeValues: {
            ':now': now.toISOString(),
            ':due': dueBefore(now, intervalSeconds),
          },
        }),
      ),
    );
  }
}

/** The same rule in memory (unit tests, single-process runs). */
export class InMemoryPeriodicSchedule implements PeriodicSchedule {
  private readonly lastRun = new Map<string, string>();

  claim(task: string, now: Date, intervalSeconds: number): Promise<boolean> {
    const last = this.lastRun.get(task);
    const iso = now.toISOString();
    if (last !== undefined && !(last <= dueBefore(now, intervalSeconds) && last < iso)) {
      return Promise.resolve(false);
    }
    this.lastRun.set(task, iso);
    return Promise.resolve(true);
  }
}
