import { resizeInstance } from '../lib/compute/operations/resize.ts';
import { commandHandler } from './commons/command-handler.ts';

export const handler = commandHandler(resizeInstance);
