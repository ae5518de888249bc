// How every function is bundled, shared by the stack (NodejsFunction) and `npm run bench`, so
// the sizes the benchmark records are the sizes that deploy.

import { resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');

/** Bundled ESM still meets CommonJS inside dependencies: give it a require. */
export const ESM_REQUIRE_SHIM =
  "import { createRequire as __stratusCreateRequire } from 'node:module'; const require = __stratusCreateRequire(import.meta.url);";

/** The driver a bundle is built for (option `driver`). */
export type BundleDriver = 'fake' | 'ec2';

/**
 * The one module through which lib/compose.ts reaches the EC2 driver (package.json `imports`,
 * so esbuild can alias it: aliases apply to package paths only). It pulls in
 * @aws-sdk/client-ec2 (~1.4 MB minified).
 */
export const EC2_DRIVER_MODULE = '#ec2-driver';

/** Module substitutions (esbuild `alias`) every bundle gets: see lib/aws/lambda-credentials.ts. */
const COMMON_ALIASES: Readonly<Record<string, string>> = {
  '@aws-sdk/credential-provider-node': resolve(ROOT, 'lib/aws/lambda-credentials.ts'),
};

/**
 * Module substitutions for a bundle built for `driver`. A fake-driver bundle replaces the EC2
 * driver with lib/virt/ec2/absent.ts, which refuses to start with a clear ConfigError, so it
 * stays within the 600 KiB budget (bench/run.ts); an EC2 bundle keeps the real driver.
 */
export function bundleAliases(driver: BundleDriver): Readonly<Record<string, string>> {
  if (driver === 'ec2') return COMMON_ALIASES;
  return { ...COMMON_ALIASES, [EC2_DRIVER_MODULE]: resolve(ROOT, 'lib/virt/ec2/absent.ts') };
}

/** `--alias:<from>=<to>` arguments for NodejsFunction's esbuildArgs. */
export function esbuildAliasArgs(driver: BundleDriver): Record<string, string> {
  return Object.fromEntries(
    Object.entries(bundleAliases(driver)).map(([from, to]) => [`--alias:${from}`, to]),
  );
}
