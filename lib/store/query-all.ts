// Every item a Query returns, across its pages (DynamoDB pages at 1 MB).
import {
  type DynamoDBDocumentClient,
  type QueryCommandInput,
  paginateQuery,
} from '@aws-sdk/lib-dynamodb';

export async function queryAll(
  doc: DynamoDBDocumentClient,
  input: QueryCommandInput,
): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  for await (const page of paginateQuery({ client: doc }, input)) items.push(...(page.Items ?? []));
  return items;
}
