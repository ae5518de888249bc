import { rebuildInstance } from '../lib/compute/operations/rebuild.ts';
import { commandHandler } from './commons/command-handler.ts';

export const handler = commandHandler(rebuildInstance);
