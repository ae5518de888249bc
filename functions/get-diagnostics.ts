import { getDiagnostics } from '../lib/compute/operations/informational.ts';
import { commandHandler } from './commons/command-handler.ts';

export const handler = commandHandler(getDiagnostics);
