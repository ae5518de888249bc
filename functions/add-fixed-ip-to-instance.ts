import { addFixedIpToInstance } from '../lib/compute/operations/interfaces.ts';
import { commandHandler } from './commons/command-handler.ts';

export const handler = commandHandler(addFixedIpToInstance);
