import { setAdminPassword } from '../lib/compute/operations/maintenance.ts';
import { commandHandler } from './commons/command-handler.ts';

export const handler = commandHandler(setAdminPassword);
