// The package's public entry for producers: the typed ComputeClient and what it speaks.
export {
  ComputeClient,
  QueueNotFoundError,
  type CommandOptions,
  type ComputeClientOptions,
  type QueueUrls,
  type SendInput,
  type SentCommand,
} from './compute-client.ts';
export {
  CommandValidationError,
  buildCommandBody,
  newCommandId,
  type ArgsInput,
  type CommandBody,
  type CommandContext,
  type CommandInput,
  type ValidationIssue,
} from './command-body.ts';
export {
  EndpointsFileError,
  parseEndpoints,
  readEndpointsFile,
  type Endpoints,
} from './endpoints.ts';
export { OPERATIONS, type Operation } from '../topology.ts';
