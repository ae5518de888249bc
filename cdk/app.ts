// The CDK app: `npm run synth` (cdk.json runs `node cdk/app.ts`). Options come from CDK context
// under their contract names, e.g. `npx cdk synth -c notify_on_state_change=vm_state`.

import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { StratusStack } from './stack.ts';
import { readContextOptions, resolveDeploymentOptions } from './options.ts';

/** Builds the app with the AwsSolutions checks, which fail synth on any unacknowledged finding. */
export function buildApp(app: App = new App()): { app: App; stack: StratusStack } {
  const { prefix } = resolveDeploymentOptions(readContextOptions(app.node));
  // The CloudFormation stack is named after the prefix so deployments can share an account.
  const stack = new StratusStack(app, 'Stratus', { stackName: prefix });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack };
}

if (import.meta.main) {
  buildApp().app.synth();
}
