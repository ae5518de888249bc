// What a Stratus function may touch, written out action by action: item reads and writes on the
// tables (never dynamodb:*, never Scan), Query on the one index the code reads, PutEvents on the
// notification bus only, SendMessage to the queues a command's `reply_to` may name, and with
// the EC2 driver its EC2 calls on the deployment's own resources (ec2-access.ts).

import { Stack, Validations } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import type { IEventBus } from 'aws-cdk-lib/aws-events';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { TABLES } from '../../lib/topology.ts';
import type { Ec2Access, Ec2AccessLevel } from './ec2-access.ts';
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
  /** Present only with the EC2 driver: its EC2 calls, scoped to the deployment's tag. */
  readonly ec2?: Ec2Access;
}

export interface GrantOptions {
  /**
   * How much of the EC2 driver the function runs (driver=ec2 only): `driver` (default) for
   * functions that run operations, `read` for functions that only read the driver's inventory.
   */
  readonly ec2?: Ec2AccessLevel;
}

/** What a usage-audit function does beyond the state table's items (grantAuditTo). */
export interface AuditUses {
  /** Reads instances through the state table's indexes. */
  readonly readsInstances: boolean;
  /** Publishes notifications on the bus. */
  readonly publishes: boolean;
  /** Lists the driver's nodes (with the EC2 driver: its Describe* calls). */
  readonly listsNodes: boolean;
}

export class DataAccess {
  private readonly props: DataAccessProps;

  constructor(props: DataAccessProps) {
    this.props = props;
  }

  /** Grants a command or lifecycle function everything a ComputeManager run needs. */
  grantTo(fn: StratusFunction, options: GrantOptions = {}): void {
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
    this.props.ec2?.grantTo(fn.executionRole, options.ec2 ?? 'driver');
  }

  /**
   * Grants a usage-audit function its share only: item reads and writes on the state table
   * (instances and the task_log), the index queries when it reads instances, PutEvents when it
   * publishes, and the driver's inventory reads (driver=ec2) when it lists nodes. It runs no
   * command: no idempotency table, no fake hypervisor, no reply_to queues.
   */
  grantAuditTo(fn: StratusFunction, uses: AuditUses): void {
    const { state, bus } = this.props;
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: [...ITEM_READ_ACTIONS, ...ITEM_WRITE_ACTIONS],
        resources: [state.tableArn],
      }),
    );
    if (uses.readsInstances) {
      fn.addToRolePolicy(
        new PolicyStatement({
          actions: ['dynamodb:Query'],
          resources: Object.values(TABLES.state.indexes).map(
            (i) => `${state.tableArn}/index/${i.name}`,
          ),
        }),
      );
    }
    if (uses.publishes) {
      fn.addToRolePolicy(
        new PolicyStatement({ actions: ['events:PutEvents'], resources: [bus.eventBusArn] }),
      );
    }
    if (uses.listsNodes) this.props.ec2?.grantTo(fn.executionRole, 'read');
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
