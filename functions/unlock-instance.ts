import { unlockInstance } from '../lib/compute/operations/lock.ts';
import { commandHandler } from './commons/command-handler.ts';

export const handler = commandHandler(unlockInstance);
