// Lists instance records by scanning the state table (items with sk = 'instance'). Read-only
// and for people: the functions never scan, they read by key.

import { type DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { Instance } from '../compute/instance.ts';

export async function scanInstances(
  doc: DynamoDBDocumentClient,
  table: string,
): Promise<Instance[]> {
  const instances: Instance[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await doc.send(
      new ScanCommand({
        TableName: table,
        FilterExpression: 'sk = :instance',
        ExpressionAttributeValues: { ':instance': 'instance' },
        ExclusiveStartKey: start,
      }),
    );
    for (const item of page.Items ?? []) {
      const { pk: _pk, sk: _sk, ...instance } = item;
      instances.push(instance as Instance);
    }
    start = page.LastEvaluatedKey;
  } while (start);
  return instances.sort((a, b) => a.created_at.localeCompare(b.created_at));
}
