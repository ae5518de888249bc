// How every function is bundled, shared by the stack (NodejsFunction) and `npm run bench`, so
// the sizes the benchmark records are the sizes that deploy.

import { resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');

/** Bundled ESM still meets CommonJS inside dependencies: give it a require. */
export const ESM_REQUIRE_SHIM =
  "import { createRequire as __stratusCreateRequire } from 'node:module'; const require = __stratusCreateRequire(import.meta.url);";

/** Module substitutions (esbuild `alias`): see lib/aws/lambda-credentials.ts for why. */
export const BUNDLE_ALIASES: Readonly<Record<string, string>> = {
  '@aws-sdk/credential-provider-node': resolve(ROOT, 'lib/aws/lambda-credentials.ts'),
};
