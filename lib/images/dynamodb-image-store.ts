// ImageStore on the state table (TABLES.state: pk / sk, single-table design).
//
// Items:   image        pk image#<id>              sk image                         the record
//          by instance  pk inst#<instance_uuid>    sk image#<created_at>#<id>       a copy
//
// Why two items: Nova needs both `get(id)` (unshelve, rebuild, delete on error) and "this
// instance's backups, newest first" (backup rotation). The record under its own key answers the
// first with one read; the copy in the instance's partition answers the second with one Query
// whose sort key is already created_at order (ScanIndexForward false) — no scan, no new index.
// The copy lives next to the instance's actions and faults, whose queries read their own sk
// prefixes, so it is invisible to them. Both items change in one transaction, so they never
// disagree. Image items carry no `command_id`, `index_node` or `wait_shard` attribute, so they
// stay out of the table's sparse indexes.

import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  type DynamoDBDocumentClient,
  GetCommand,
  TransactWriteCommand,
} from '@aws-sdk/lib-dynamodb';
import type { Config } from '../config.ts';
import {
  type Image,
  type ImageFilter,
  ImageNotFoundError,
  ImageStatus,
  type ImageStore,
  type NewImage,
  matchesFilter,
  newestFirst,
} from './image-store.ts';
import { queryAll } from '../store/query-all.ts';

const IMAGE_SK = 'image';
const imageKey = (id: string) => ({ pk: `image#${id}`, sk: IMAGE_SK });
const instanceCopyKey = (image: Pick<Image, 'id' | 'created_at' | 'properties'>) => {
  const instance = image.properties.instance_uuid;
  return instance ? { pk: `inst#${instance}`, sk: `image#${image.created_at}#${image.id}` } : null;
};

function fromItem(item: Record<string, unknown>): Image {
  const { pk: _pk, sk: _sk, ...rest } = item;
  return rest as unknown as Image;
}

export class DynamoDbImageStore implements ImageStore {
  private readonly doc: DynamoDBDocumentClient;
  private readonly table: string;

  constructor(doc: DynamoDBDocumentClient, tableName: string) {
    this.doc = doc;
    this.table = tableName;
  }

  async create(image: NewImage): Promise<Image> {
    const stored: Image = {
      ...image,
      status: ImageStatus.QUEUED,
      updated_at: image.created_at,
      deleted_at: null,
    };
    const copy = instanceCopyKey(stored);
    try {
      await this.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.table,
                Item: { ...imageKey(image.id), ...stored },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
            ...(copy ? [{ Put: { TableName: this.table, Item: { ...copy, ...stored } } }] : []),
          ],
        }),
      );
      return stored;
    } catch (e) {
      if (
        !(e instanceof TransactionCanceledException) ||
        e.CancellationReasons?.[0]?.Code !== 'ConditionalCheckFailed'
      ) {
        throw e;
      }
      // Created before (a redelivered command): the stored image is the answer.
      const existing = await this.get(image.id);
      if (!existing) throw e;
      return existing;
    }
  }

  async get(id: string): Promise<Image | null> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: imageKey(id), ConsistentRead: true }),
    );
    return out.Item ? fromItem(out.Item) : null;
  }

  async list(filter: ImageFilter): Promise<Image[]> {
    const items = await queryAll(this.doc, {
      TableName: this.table,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :p)',
      ExpressionAttributeValues: { ':pk': `inst#${filter.instance_uuid}`, ':p': 'image#' },
      ScanIndexForward: false,
      ConsistentRead: true,
    });
    // The sort key orders by created_at; ties (same millisecond) are ordered by id as the twin.
    return items
      .map(fromItem)
      .filter((i) => matchesFilter(i, filter))
      .sort(newestFirst);
  }

  async delete(id: string, now: Date = new Date()): Promise<boolean> {
    const image = await this.get(id);
    if (!image || image.status === ImageStatus.DELETED) return false;
    const at = now.toISOString();
    try {
      await this.change(image, { status: ImageStatus.DELETED, updated_at: at, deleted_at: at });
      return true;
    } catch (e) {
      if (e instanceof ImageNotFoundError) return false; // deleted by someone else meanwhile
      throw e;
    }
  }

  async setStatus(
    id: string,
    status: Exclude<ImageStatus, 'deleted'>,
    now: Date = new Date(),
  ): Promise<Image> {
    const image = await this.get(id);
    if (!image || image.status === ImageStatus.DELETED) throw new ImageNotFoundError(id);
    const changes = { status, updated_at: now.toISOString() };
    await this.change(image, changes);
    return { ...image, ...changes };
  }

  /** Updates the record and its copy together; a deleted record never changes again. */
  private async change(
    image: Image,
    changes: Pick<Image, 'status' | 'updated_at'> & Partial<Pick<Image, 'deleted_at'>>,
  ): Promise<void> {
    const entries = Object.entries(changes);
    const names = Object.fromEntries(entries.map(([k], i) => [`#f${i}`, k]));
    const values = Object.fromEntries(entries.map(([, v], i) => [`:v${i}`, v]));
    const update = `SET ${entries.map((_, i) => `#f${i} = :v${i}`).join(', ')}`;
    const copy = instanceCopyKey(image);
    try {
      await this.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: this.table,
                Key: imageKey(image.id),
                UpdateExpression: update,
                ConditionExpression: 'attribute_exists(pk) AND #status <> :deleted',
                ExpressionAttributeNames: { ...names, '#status': 'status' },
                ExpressionAttributeValues: { ...values, ':deleted': ImageStatus.DELETED },
              },
            },
            ...(copy
              ? [
                  {
                    Update: {
                      TableName: this.table,
                      Key: copy,
                      UpdateExpression: update,
                      ConditionExpression: 'attribute_exists(pk)',
                      ExpressionAttributeNames: names,
                      ExpressionAttributeValues: values,
                    },
                  },
                ]
              : []),
          ],
        }),
      );
    } catch (e) {
      if (
        e instanceof TransactionCanceledException &&
        e.CancellationReasons?.some((r) => r.Code === 'ConditionalCheckFailed')
      ) {
        throw new ImageNotFoundError(image.id);
      }
      throw e;
    }
  }
}

/**
 * The composition root's factory: the image store of a deployment lives in its state table.
 * (`clients` is lib/compose.ts's AwsClients; only the document client is needed.)
 */
export function createImageStore(
  config: Pick<Config, 'tables'>,
  clients: { doc: DynamoDBDocumentClient },
): ImageStore {
  return new DynamoDbImageStore(clients.doc, config.tables.state);
}
