// What a Stratus function may touch, written out action by action: item reads and writes on the
// tables (never dynamodb:*, never Scan), Query on the one index the code reads, PutEvents on the
// notification bus only, and SendMessage to the queues a command's `reply_to` may name.

import { Stack, Validations } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import type { IEventBus } from 'aws-cdk-lib/aws-events';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { TABLES } from '../../lib/topology.ts';
import type { StratusFunction } from './stratus-function.ts';

/** Single-item and batch reads; TransactGetItems is authorized per item by GetItem. */
export const ITEM_READ_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:Query',
] as const;

/** Writes; TransactWriteItems is authorized per item by these (ConditionCheckItem included). */
export const ITEM_WRITE_ACTIONS = [
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
  'dynamodb:ConditionCheckItem',
] as const;

export interface DataAccessProps {
  readonly state: ITableV2;
  readonly idempotency: ITableV2;
  /** Present only with the fake driver. */
  readonly fakeHypervisor: ITableV2 | undefined;
  readonly bus: IEventBus;
  /** Queues `reply_to` may name; undefined: any queue in the function's account and region. */
  readonly replyQueueArns: readonly string[] | undefined;
}

export class DataAccess {
  private readonly props: DataAccessProps;

  constructor(props: DataAccessProps) {
    this.props = props;
  }

  /** Grants a command or lifecycle function everything a ComputeManager run needs. */
  grantTo(fn: StratusFunction): void {
    const { state, idempotency, fakeHypervisor, bus } = this.props;
    const readWrite = (tables: ITableV2[]) =>
      new PolicyStatement({
        actions: [...ITEM_READ_ACTIONS, ...ITEM_WRITE_ACTIONS],
        resources: tables.map((table) => table.tableArn),
      });

    fn.addToRolePolicy(
      readWrite([state, idempotency, ...(fakeHypervisor ? [fakeHypervisor] : [])]),
    );
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['dynamodb:Query'],
        resources: Object.values(TABLES.state.indexes).map(
          (i) => `${state.tableArn}/index/${i.name}`,
        ),
      }),
    );
    fn.addToRolePolicy(
      new PolicyStatement({ actions: ['events:PutEvents'], resources: [bus.eventBusArn] }),
    );
    this.grantReplies(fn);
  }

  private grantReplies(fn: StratusFunction): void {
    const configured = this.props.replyQueueArns;
    const resources = configured
      ? [...configured]
      : [Stack.of(fn).formatArn({ service: 'sqs', resource: '*' })];
    fn.addToRolePolicy(new PolicyStatement({ actions: ['sqs:SendMessage'], resources }));

    if (configured === undefined) {
      Validations.of(fn.executionRole).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sqs:<AWS::Region>:<AWS::AccountId>:*]',
        reason:
          'reply_to names a queue chosen by each producer at send time, so the set is not known ' +
          'at deploy time. The grant is SendMessage only and stays inside this account and ' +
          'region; deployments that know their reply queues narrow it with reply_queue_arns.',
      });
      return;
    }
    for (const arn of configured.filter((a) => a.includes('*'))) {
      Validations.of(fn.executionRole).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${arn}]`,
        reason:
          'The operator configured this reply queue pattern in reply_queue_arns; the grant is ' +
          'SendMessage only.',
      });
    }
  }
}
