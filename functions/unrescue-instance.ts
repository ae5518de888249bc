import { unrescueInstance } from '../lib/compute/operations/rescue.ts';
import { commandHandler } from './commons/command-handler.ts';

export const handler = commandHandler(unrescueInstance);
