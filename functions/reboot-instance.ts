import { rebootInstance } from '../lib/compute/operations/reboot.ts';
import { commandHandler } from './commons/command-handler.ts';

export const handler = commandHandler(rebootInstance);
