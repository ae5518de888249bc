// Wiring of the usage audit's two functions (and the local plane's clock) from configuration.

import { requestIdForCommand } from '../commands/parse.ts';
import { type AwsClients, awsClients, createDriver, createPublisher } from '../compose.ts';
import type { Logger } from '../compute/runtime.ts';
import type { Config } from '../config.ts';
import { ErrorCode, StratusError } from '../errors.ts';
import { DynamoDbStateStore } from '../store/dynamodb-state-store.ts';
import { DynamoDbTaskLog } from './dynamodb-task-log.ts';
import type { FanOutDeps } from './fan-out.ts';
import type { AuditDeps } from './run-shard.ts';
import { SqsShardTaskQueue } from './shard-queue.ts';

/** Set on the fan-out function (and the local plane): where shard tasks go. */
export const AUDIT_QUEUE_URL_ENV = 'STRATUS_AUDIT_QUEUE_URL';

const NODES_COMMAND = 'usage-audit:nodes';

export function composeAuditDeps(
  config: Config,
  logger: Logger,
  clients: AwsClients = awsClients(),
): AuditDeps {
  return {
    config,
    store: new DynamoDbStateStore(clients.doc, config.tables.state),
    taskLog: new DynamoDbTaskLog(clients.doc, config.tables.state),
    publisher: createPublisher(config, clients),
    clock: () => new Date(),
    logger,
  };
}

export function composeFanOutDeps(
  config: Config,
  clients: AwsClients = awsClients(),
  env: Record<string, string | undefined> = process.env,
): FanOutDeps {
  const queueUrl = env[AUDIT_QUEUE_URL_ENV];
  if (!queueUrl) {
    throw new StratusError(ErrorCode.ConfigError, `${AUDIT_QUEUE_URL_ENV} is not set`);
  }
  const driver = createDriver(config, clients, env);
  return {
    config,
    taskLog: new DynamoDbTaskLog(clients.doc, config.tables.state),
    nodes: () =>
      driver.getAvailableNodes({
        commandId: NODES_COMMAND,
        requestId: requestIdForCommand(NODES_COMMAND),
      }),
    queue: new SqsShardTaskQueue(clients.sqs, queueUrl),
  };
}
