// cfn-lint over every synthesized template (root and nested), for today's stack and for the full
// contract. cfn-lint is part of the machine image; without it this suite skips loudly (and fails
// in CI, where a silent pass would hide a broken template).

import { IMPLEMENTED_OPERATIONS } from '../../lib/topology.ts';
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OPERATIONS, operationFunction } from '../../lib/topology.ts';
import { buildApp } from '../../cdk/app.ts';
import { StratusStack } from '../../cdk/stack.ts';
import { tempOutdir, testApp } from './support.ts';

const hasCfnLint = spawnSync('cfn-lint', ['--version'], { encoding: 'utf8' }).status === 0;
if (!hasCfnLint) {
  const message = 'cfn-lint is not on PATH: the CloudFormation lint suite is SKIPPED';
  if (process.env.CI) throw new Error(`${message} (required in CI)`);
  console.warn(`\n*** ${message} ***\n`);
}

function templatesIn(outdir: string): string[] {
  return readdirSync(outdir)
    .filter((file) => file.endsWith('.template.json'))
    .map((file) => join(outdir, file));
}

/** The app exactly as cdk/app.ts builds it (default options, implemented operations). */
function synthApp(): string[] {
  const outdir = tempOutdir();
  buildApp(testApp({}, outdir)).app.synth();
  return templatesIn(outdir);
}

/** The full contract with non-default options: 40 operations, EC2 driver, existing topic. */
function synthFullContract(): string[] {
  const outdir = tempOutdir();
  const app = testApp(
    {
      driver: 'ec2',
      alarm_topic_arn: 'arn:aws:sns:us-east-1:123456789012:ops',
      producer_principals: '["arn:aws:iam::123456789012:role/nova-api"]',
      archive_retention_days: '0',
    },
    outdir,
  );
  new StratusStack(app, 'Stratus', {
    operations: OPERATIONS,
    functionSettings: (op) => ({
      ...operationFunction(op),
      entry: 'functions/lifecycle-events.ts',
    }),
  });
  app.synth();
  return templatesIn(outdir);
}

/** Runs cfn-lint; resolves with its exit status and everything it printed. */
function cfnLint(templates: string[]): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('cfn-lint', templates);
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, output }));
  });
}

describe.skipIf(!hasCfnLint)('cfn-lint', () => {
  it("passes on the app's templates and on the full contract's root and a full nested stack", async () => {
    const app = synthApp();
    const full = synthFullContract();
    // Eight operation pipelines per nested stack.
    expect(app.filter((t) => t.endsWith('.nested.template.json'))).toHaveLength(
      Math.ceil(IMPLEMENTED_OPERATIONS.length / 8),
    );
    expect(full).toHaveLength(1 + 5);

    // The five full-contract nested templates differ only in which eight operations they hold;
    // linting one of them covers the shape, and parallel processes keep the suite quick.
    const fullRoot = full.filter((t) => !t.endsWith('.nested.template.json'));
    const fullNested = full.filter((t) => t.endsWith('.nested.template.json')).slice(0, 1);
    const results = await Promise.all([cfnLint(app), cfnLint([...fullRoot, ...fullNested])]);
    for (const { status, output } of results) {
      expect(output).toBe('');
      expect(status).toBe(0);
    }
  }, 120_000);
});
