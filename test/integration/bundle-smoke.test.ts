// The artifact that deploys, not the sources: bundle a function exactly as the stack does
// (cdk/bundling.ts: ESM, minified, the SDK inside, the Lambda credential provider in place of the
// SDK's default chain) and run a command through the bundle against the emulators.

import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';
import { ESM_REQUIRE_SHIM, bundleAliases } from '../../cdk/bundling.ts';
import { instanceIdForCommand } from '../../lib/commands/parse.ts';
import { type SqsHandler, pollOnce } from '../../lib/local/event-source.ts';
import { operationFunction } from '../../lib/topology.ts';
import { type TestStack, buildCommand, startTestStack } from '../support/stack.ts';

async function bundle(entry: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'stratus-bundle-'));
  const outfile = join(dir, 'index.mjs');
  const result = await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node24',
    minify: true,
    mainFields: ['module', 'main'],
    banner: { js: ESM_REQUIRE_SHIM },
    alias: { ...bundleAliases('fake') },
    metafile: true,
    logLevel: 'silent',
  });
  const inputs = Object.keys(result.metafile.inputs);
  expect(inputs.some((i) => i.includes('credential-provider-node'))).toBe(false);
  // Built for driver=fake: the EC2 driver and its SDK client are aliased away.
  expect(inputs.some((i) => i.includes('@aws-sdk/client-ec2'))).toBe(false);
  expect(inputs.some((i) => i.endsWith('lib/virt/ec2/absent.ts'))).toBe(true);
  return outfile;
}

describe('a bundled function', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack({ label: 'bundle' });
  });

  it('runs a build to ACTIVE with credentials from the environment, as in Lambda', async () => {
    const file = await bundle('functions/build-and-run-instance.ts');
    const { handler } = (await import(pathToFileURL(file).href)) as { handler: SqsHandler };
    const command = buildCommand();
    await stack.send('build_and_run_instance', command);
    const pair = stack.topology.queues.build_and_run_instance!;
    const received = await pollOnce({
      sqs: stack.sqs,
      queueUrl: pair.url,
      queueArn: pair.arn,
      handler,
      functionName: 'bundled-build',
      timeoutSeconds: operationFunction('build_and_run_instance').timeoutSeconds,
      batchSize: 10,
      waitTimeSeconds: 1,
    });
    expect(received).toBe(1);
    const instance = await stack.store.getInstance(instanceIdForCommand(command.command_id));
    expect(instance).toMatchObject({ vm_state: 'active', task_state: null });
  });
});
