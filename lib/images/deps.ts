// How an operation reaches the image store until the composition root wires one into
// ComputeDeps (`images: ImageStore`, built by createImageStore). Until then the operation
// modules build the DynamoDB image store themselves, on the deployment's state table, with one
// document client per process (module scope, created on first use: a cold start that never
// touches images never pays for it). Once `deps.images` exists it is used instead, which is also
// how tests hand in the in-memory twin.

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { ComputeDeps } from '../compute/runtime.ts';
import { createImageStore } from './dynamodb-image-store.ts';
import type { ImageStore } from './image-store.ts';

let doc: DynamoDBDocumentClient | undefined;
const byTable = new Map<string, ImageStore>();

export function imageStoreOf(deps: Pick<ComputeDeps, 'config'>): ImageStore {
  const wired = (deps as { images?: ImageStore }).images;
  if (wired) return wired;
  const table = deps.config.tables.state;
  let store = byTable.get(table);
  if (!store) {
    doc ??= DynamoDBDocumentClient.from(new DynamoDBClient({}), {
      marshallOptions: { removeUndefinedValues: true },
    });
    store = createImageStore(deps.config, { doc });
    byTable.set(table, store);
  }
  return store;
}
