import { stopInstance } from '../lib/compute/operations/power.ts';
import { commandHandler } from './commons/command-handler.ts';

export const handler = commandHandler(stopInstance);
