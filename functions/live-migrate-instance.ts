import { liveMigrateInstance } from '../lib/compute/operations/live-migration.ts';
import { commandHandler } from './commons/command-handler.ts';

export const handler = commandHandler(liveMigrateInstance);
