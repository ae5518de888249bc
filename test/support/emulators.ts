// Test-side access to the emulators that test/support/global-setup.ts starts for the whole run.
// The emulators are shared by every integration test file: give each file its own resource names
// with uniquePrefix() instead of resetting shared state.
import { randomBytes } from 'node:crypto';
import { describe, inject } from 'vitest';
import type { EmulatorEndpoints } from './global-setup.ts';

export type { EmulatorEndpoints };

export function emulatorEndpoints(): EmulatorEndpoints {
  const endpoints = inject('emulators');
  if (endpoints === undefined) {
    throw new Error(
      'no emulator endpoints: run integration tests through the `integration` vitest project ' +
        '(its globalSetup is test/support/global-setup.ts)',
    );
  }
  return endpoints;
}

/** The moto endpoint, for use inside describeWithMoto() suites. */
export function motoEndpoint(): string {
  const { moto } = emulatorEndpoints();
  if (moto === null) throw new Error('moto_server is not running; use describeWithMoto()');
  return moto;
}

/**
 * `describe` for suites that need moto_server. Without moto the suite is skipped LOUDLY: it shows
 * as skipped in the report and a warning names it, so a missing moto never looks like a pass.
 */
export function describeWithMoto(name: string, fn: () => void): void {
  if (emulatorEndpoints().moto !== null) {
    describe(name, fn);
    return;
  }
  console.warn(
    `!!! SKIPPED "${name}": moto_server is not installed (pip install 'moto[server]'). ` +
      'These tests did NOT run.',
  );
  describe.skip(name, fn);
}

export interface AwsTestClientConfig {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

/** Client settings for an emulator: fixed region and dummy keys (emulators do not check them). */
export function awsTestClientConfig(endpoint: string): AwsTestClientConfig {
  return {
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  };
}

const PREFIX_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/**
 * A short, lower-case, unique prefix such as `t-k3x9qa` for table, queue and bus names (use it as
 * `${prefix}-instances`). Only characters valid in DynamoDB, SQS and EventBridge names. `label`
 * (optional) helps when reading emulator state: `uniquePrefix('store')` gives `t-store-k3x9qa`.
 */
export function uniquePrefix(label?: string): string {
  const random = Array.from(randomBytes(6), (byte) => PREFIX_ALPHABET[byte % 36]).join('');
  const tag = (label ?? '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 12);
  return tag === '' ? `t-${random}` : `t-${tag}-${random}`;
}
