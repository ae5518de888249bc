// The one way Stratus builds a Lambda function, so every function gets the same runtime,
// bundling, logging and least-privilege role.

import type { Duration } from 'aws-cdk-lib';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, type CfnFunction, Runtime } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { envName } from '../../lib/config.ts';
import { assertEnvironmentFits } from '../options.ts';
import { type BundleDriver, ESM_REQUIRE_SHIM, esbuildAliasArgs } from '../bundling.ts';

export const METRICS_NAMESPACE = 'Stratus';

export interface StratusFunctionProps {
  /** Handler module relative to the repository root, e.g. `functions/terminate-instance.ts`. */
  readonly entry: string;
  /** Powertools service name: the Logger's `service` key and the Metrics `service` dimension. */
  readonly serviceName: string;
  readonly description: string;
  readonly timeout: Duration;
  readonly memorySize: number;
  readonly logRetention: RetentionDays;
  /** STRATUS_* options; merged with the runtime variables this class sets. */
  readonly environment: Record<string, string>;
}

// A CJS dependency that calls require() on a Node builtin breaks in an ESM bundle at cold start
// ("Dynamic require of … is not supported"), which no synth-time check catches. Giving the bundle
// a real `require` costs a few bytes and removes that failure mode.

/**
 * A NodejsFunction on Node 24 / arm64, bundled locally by esbuild as minified ESM with our pinned
 * AWS SDK, writing to its own log group through a role that may write only there. Reserved
 * concurrency is deliberately not set: the SQS event source's `maxConcurrency` bounds
 * concurrency without throttles that would burn receive counts.
 */
export class StratusFunction extends NodejsFunction {
  readonly executionRole: Role;

  constructor(scope: Construct, id: string, props: StratusFunctionProps) {
    // The role and log group are created before the function (siblings, not children) because a
    // role handed to the function replaces Lambda's AWSLambdaBasicExecutionRole managed policy,
    // whose logs:* on every log group is wider than a function needs.
    const logGroup = new LogGroup(scope, `${id}Logs`, { retention: props.logRetention });
    const role = new Role(scope, `${id}Role`, {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: `Execution role of ${props.serviceName}`,
    });
    const environment = {
      ...props.environment,
      POWERTOOLS_SERVICE_NAME: props.serviceName,
      POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
      NODE_OPTIONS: '--enable-source-maps',
    };
    assertEnvironmentFits(environment);
    // Bundled for the driver the function runs: a fake-driver bundle leaves the EC2 SDK out.
    const driver: BundleDriver = props.environment[envName('driver')] === 'ec2' ? 'ec2' : 'fake';

    super(scope, id, {
      entry: props.entry,
      handler: 'handler',
      description: props.description,
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      timeout: props.timeout,
      memorySize: props.memorySize,
      role,
      logGroup,
      environment,
      bundling: {
        format: OutputFormat.ESM,
        target: 'node24',
        minify: true,
        sourceMap: true,
        // Stack traces need file and line, not the sources: keeps the map small.
        sourcesContent: false,
        mainFields: ['module', 'main'],
        // Ship the SDK version the tests ran against, bundled and minified (faster cold start
        // than the runtime's copy, and immune to runtime SDK upgrades).
        bundleAwsSDK: true,
        banner: ESM_REQUIRE_SHIM,
        esbuildArgs: esbuildAliasArgs(driver),
      },
    });
    this.executionRole = role;
    // CDK makes every function DependsOn its role (for the role's DefaultPolicy, which must exist
    // before the event source mapping polls); cfn-lint's W3005 flags the role half of that as
    // redundant with the Role GetAtt. Harmless, so it is silenced on this resource only.
    (this.node.defaultChild as CfnFunction).addMetadata('cfn-lint', {
      config: { ignore_checks: ['W3005'] },
    });
    role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
    );
  }
}
