import { terminateInstance } from '../lib/compute/operations/terminate-instance.ts';
import { commandHandler } from './commons/command-handler.ts';

export const handler = commandHandler(terminateInstance);
