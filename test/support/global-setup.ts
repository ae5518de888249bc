// Global setup of the `integration` project: starts DynamoDB Local, fauxqs and moto_server once
// per run on free loopback ports and hands their endpoints to the tests through `inject`.
import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';
import type { TestProject } from 'vitest/node';
import {
  startDynamoDbLocal,
  startMotoServer,
  startSqsEmulator,
  type RunningEmulator,
} from '../../lib/local/emulators.ts';

export interface EmulatorEndpoints {
  dynamodb: string;
  sqs: string;
  /** null when moto_server is not installed (never in CI: setup fails there instead). */
  moto: string | null;
}

declare module 'vitest' {
  export interface ProvidedContext {
    emulators: EmulatorEndpoints;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started: RunningEmulator[] = [];
  const teardown = async (): Promise<void> => {
    await Promise.allSettled(started.map((emulator) => emulator.stop()));
  };
  const track = async <T extends RunningEmulator | null>(starting: Promise<T>): Promise<T> => {
    const emulator = await starting;
    if (emulator !== null) started.push(emulator);
    return emulator;
  };

  // Started side by side; if one fails, the others are stopped before the error surfaces.
  const results = await Promise.allSettled([
    track(startDynamoDbLocal()),
    track(startSqsEmulator()),
    track(startMotoServer()),
  ]);
  const [dynamodb, sqs, moto] = results;
  if (dynamodb.status === 'rejected' || sqs.status === 'rejected' || moto.status === 'rejected') {
    await teardown();
    const reasons = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
    throw new Error(`could not start the local AWS emulators:\n${reasons.join('\n')}`);
  }

  if (moto.value === null) {
    if (process.env.CI === 'true') {
      await teardown();
      throw new Error(
        "moto_server is required in CI (EventBridge/EC2 suites need it): pip install 'moto[server]'",
      );
    }
    warnMotoMissing(await filesUsingMoto(project));
  }

  project.provide('emulators', {
    dynamodb: dynamodb.value.endpoint,
    sqs: sqs.value.endpoint,
    moto: moto.value?.endpoint ?? null,
  });
  return teardown;
}

/** Test files of this project that declare moto-backed suites, for a concrete warning. */
async function filesUsingMoto(project: TestProject): Promise<string[]> {
  const { testFiles } = await project.globTestFiles();
  const users: string[] = [];
  for (const file of testFiles) {
    const source = await readFile(file, 'utf8');
    if (source.includes('describeWithMoto(')) users.push(relative(project.config.root, file));
  }
  return users.sort();
}

function warnMotoMissing(files: string[]): void {
  const rule = '!'.repeat(78);
  const listed = files.length > 0 ? files.map((f) => `!!    - ${f}`) : ['!!    (none found)'];
  console.error(
    [
      '',
      rule,
      '!!  moto_server NOT FOUND ON PATH: EventBridge/EC2 integration suites are SKIPPED.',
      '!!  Suites declared with describeWithMoto() in these files will not run:',
      ...listed,
      '!!  This is NOT a passing run of those tests. Install moto and re-run:',
      "!!      pip install 'moto[server]'",
      '!!  (CI=true turns this warning into a failure.)',
      rule,
      '',
    ].join('\n'),
  );
}
