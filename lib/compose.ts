// The composition root: the one place that turns configuration into adapters. Functions call
// it once per cold start; tests and the local control plane call it with their endpoints in
// the standard AWS_ENDPOINT_URL_* variables, so no code path exists only for tests.

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { SqsReplySender } from './commands/reply.ts';
import { FlavorCatalog } from './compute/flavors.ts';
import type { ComputeDeps, Logger } from './compute/runtime.ts';
import type { Config } from './config.ts';
import { EventBridgePublisher, type NotificationPublisher } from './notifications/publisher.ts';
import { NotificationLog } from './local/notification-log.ts';
import { TeePublisher } from './local/tee-publisher.ts';
import { DynamoDbStateStore } from './store/dynamodb-state-store.ts';
import { DynamoDbNodeStateStore } from './store/node-state-store.ts';
import { DynamoDbMigrationStore } from './store/migration-store.ts';
import { DynamoDbNodeStore } from './resources/dynamodb-node-store.ts';
import { createImageStore } from './images/dynamodb-image-store.ts';
import type { ComputeDriver } from './virt/driver.ts';
import { createLifecycleSink } from './compute/lifecycle-transport.ts';
import { DynamoDbFakeHypervisorStore } from './virt/fake/dynamodb-store.ts';
import { FakeDriver } from './virt/fake/driver.ts';
import { createEc2Driver } from '#ec2-driver';

export interface AwsClients {
  dynamodb: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  eventbridge: EventBridgeClient;
  sqs: SQSClient;
}

export function awsClients(): AwsClients {
  const dynamodb = new DynamoDBClient({});
  return {
    dynamodb,
    doc: DynamoDBDocumentClient.from(dynamodb, {
      marshallOptions: { removeUndefinedValues: true },
    }),
    eventbridge: new EventBridgeClient({}),
    // A local SQS endpoint (AWS_ENDPOINT_URL_SQS) hands out queue URLs whose host may not
    // resolve; use the configured endpoint then. In AWS the queue URL picks the right region.
    sqs: new SQSClient({ useQueueUrlAsEndpoint: !process.env.AWS_ENDPOINT_URL_SQS }),
  };
}

export function createDriver(
  config: Config,
  clients: AwsClients,
  env: Record<string, string | undefined> = process.env,
  logger?: Logger,
): ComputeDriver {
  const sink = createLifecycleSink(config, clients, env);
  // Through `#ec2-driver` only: bundles built for driver=fake alias it to a stub that refuses
  // to start (cdk/bundling.ts), which keeps the EC2 SDK out of them. The EC2 client honours
  // AWS_ENDPOINT_URL_EC2 like the other clients.
  if (config.driver === 'ec2') {
    return createEc2Driver(config, sink, undefined, logger ? { logger } : {});
  }
  return new FakeDriver({
    nodes: config.fake_nodes,
    store: new DynamoDbFakeHypervisorStore({
      client: clients.doc,
      tableName: config.tables.fakeHypervisor,
    }),
    sink,
    async: config.fake_async,
  });
}

/**
 * Notifications go to EventBridge (the deployed bus, or AWS_ENDPOINT_URL_EVENTBRIDGE locally);
 * a local run with no EventBridge endpoint keeps them in STRATUS_NOTIFICATIONS_LOG instead.
 */
export function createPublisher(
  config: Config,
  clients: AwsClients,
  env: Record<string, string | undefined> = process.env,
): NotificationPublisher {
  const logPath = env.STRATUS_NOTIFICATIONS_LOG;
  const log = logPath ? new NotificationLog(logPath, config.event_source) : null;
  if (log && !env.AWS_ENDPOINT_URL_EVENTBRIDGE) return log;
  const bus = new EventBridgePublisher({
    client: clients.eventbridge,
    busName: config.event_bus,
    source: config.event_source,
  });
  // The local plane with an EventBridge endpoint: publish there AND keep the log it prints.
  return log ? new TeePublisher([bus, log]) : bus;
}

export function composeComputeDeps(
  config: Config,
  logger: Logger,
  clients: AwsClients = awsClients(),
): ComputeDeps {
  return {
    config,
    store: new DynamoDbStateStore(clients.doc, config.tables.state),
    driver: createDriver(config, clients, process.env, logger),
    publisher: createPublisher(config, clients),
    replies: new SqsReplySender(clients.sqs),
    flavors: new FlavorCatalog(config.flavors),
    clock: () => new Date(),
    logger,
    nodeState: new DynamoDbNodeStateStore(clients.doc, config.tables.state),
    images: createImageStore(config, clients),
    migrations: new DynamoDbMigrationStore(clients.doc, config.tables.state),
    nodes: new DynamoDbNodeStore(clients.doc, config.tables.state),
  };
}
