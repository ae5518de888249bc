import { rescueInstance } from '../lib/compute/operations/rescue.ts';
import { commandHandler } from './commons/command-handler.ts';

export const handler = commandHandler(rescueInstance);
