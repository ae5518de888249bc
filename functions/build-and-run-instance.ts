import { buildAndRunInstance } from '../lib/compute/operations/build-and-run-instance.ts';
import { commandHandler } from './commons/command-handler.ts';

export const handler = commandHandler(buildAndRunInstance);
