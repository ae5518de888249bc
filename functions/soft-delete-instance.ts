import { softDeleteInstance } from '../lib/compute/operations/soft-delete.ts';
import { commandHandler } from './commons/command-handler.ts';

export const handler = commandHandler(softDeleteInstance);
