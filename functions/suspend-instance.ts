import { suspendInstance } from '../lib/compute/operations/power-states.ts';
import { commandHandler } from './commons/command-handler.ts';

export const handler = commandHandler(suspendInstance);
