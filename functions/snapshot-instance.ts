import { snapshotInstance } from '../lib/compute/operations/snapshot.ts';
import { commandHandler } from './commons/command-handler.ts';

export const handler = commandHandler(snapshotInstance);
