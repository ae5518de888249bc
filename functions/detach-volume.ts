import { detachVolume } from '../lib/compute/operations/volumes.ts';
import { commandHandler } from './commons/command-handler.ts';

export const handler = commandHandler(detachVolume);
