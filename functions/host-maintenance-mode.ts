import { hostMaintenanceMode } from '../lib/compute/operations/hosts.ts';
import { commandHandler } from './commons/command-handler.ts';

export const handler = commandHandler(hostMaintenanceMode);
