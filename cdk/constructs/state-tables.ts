// The DynamoDB tables, with the key schemas lib/topology.ts defines for the stack and the local
// control plane alike. They hold the system of record, so they are protected three ways:
// point-in-time recovery, deletion protection and a RETAIN removal policy.

import { RemovalPolicy } from 'aws-cdk-lib';
import {
  AttributeType,
  Billing,
  ProjectionType,
  TableEncryptionV2,
  TableV2,
  type TablePropsV2,
} from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { TABLES, tableName } from '../../lib/topology.ts';

export interface StateTablesProps {
  readonly prefix: string;
  /** Creates the fake driver's hypervisor table (only the fake driver uses it). */
  readonly fakeHypervisor: boolean;
}

const PROTECTED: Pick<
  TablePropsV2,
  | 'billing'
  | 'pointInTimeRecoverySpecification'
  | 'deletionProtection'
  | 'removalPolicy'
  | 'encryption'
> = {
  billing: Billing.onDemand(),
  pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
  deletionProtection: true,
  removalPolicy: RemovalPolicy.RETAIN,
  encryption: TableEncryptionV2.awsManagedKey(),
};

const string = (name: string) => ({ name, type: AttributeType.STRING });

export class StateTables extends Construct {
  /** Instances, actions, faults and the notification outbox (single-table design). */
  readonly state: TableV2;
  /** Powertools idempotency records, keyed on command_id. */
  readonly idempotency: TableV2;
  readonly fakeHypervisor: TableV2 | undefined;

  constructor(scope: Construct, id: string, props: StateTablesProps) {
    super(scope, id);
    const { state, idempotency, fakeHypervisor } = TABLES;

    this.state = new TableV2(this, 'State', {
      ...PROTECTED,
      tableName: tableName(props.prefix, 'state'),
      partitionKey: string(state.partitionKey),
      sortKey: string(state.sortKey),
      timeToLiveAttribute: state.ttlAttribute,
      globalSecondaryIndexes: Object.values(state.indexes).map((index) => ({
        indexName: index.name,
        partitionKey: string(index.partitionKey),
        sortKey: string(index.sortKey),
        projectionType: ProjectionType.ALL,
      })),
    });
    this.idempotency = new TableV2(this, 'Idempotency', {
      ...PROTECTED,
      tableName: tableName(props.prefix, 'idempotency'),
      partitionKey: string(idempotency.partitionKey),
      timeToLiveAttribute: idempotency.ttlAttribute,
    });
    this.fakeHypervisor = props.fakeHypervisor
      ? new TableV2(this, 'FakeHypervisor', {
          ...PROTECTED,
          tableName: tableName(props.prefix, 'fakeHypervisor'),
          partitionKey: string(fakeHypervisor.partitionKey),
          sortKey: string(fakeHypervisor.sortKey),
        })
      : undefined;
  }
}
