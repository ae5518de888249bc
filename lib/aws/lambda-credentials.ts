// Bundled in place of @aws-sdk/credential-provider-node (see cdk/bundling.ts). Lambda always puts
// the function role's credentials in the environment, so the SDK's full default chain (profiles,
// SSO, web identity, container and instance metadata, each with its own nested clients: ~100 KB
// minified) is dead weight in a function bundle. Local runs and tests use the real chain.

import { fromEnv } from '@aws-sdk/credential-provider-env';

export const defaultProvider = (_init?: unknown) => fromEnv();
