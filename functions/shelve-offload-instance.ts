import { shelveOffloadInstance } from '../lib/compute/operations/shelve.ts';
import { commandHandler } from './commons/command-handler.ts';

export const handler = commandHandler(shelveOffloadInstance);
