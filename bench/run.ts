// `npm run bench`: bundles every Lambda entry the way the stack does (esbuild, ESM, minified,
// tree-shaken, SDK bundled), then measures each bundle's size and its module-load time (cold
// import in a fresh Node process, median of several runs). Results go to bench/results/.
//
// Every function is bundled for driver=fake (the EC2 driver aliased away, cdk/bundling.ts) and
// must stay within 600 KiB. The functions whose driver=ec2 build is measured too (EC2_ENTRIES)
// carry @aws-sdk/client-ec2 and have their own budget, EC2_BUDGET_BYTES.
//
//   node bench/run.ts            measure and record
//   node bench/run.ts --check    sizes only; fail when a budget is exceeded (used by `npm run build`)

import { execFileSync } from 'node:child_process';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { type BundleDriver, ESM_REQUIRE_SHIM, bundleAliases } from '../cdk/bundling.ts';

const ROOT = resolve(import.meta.dirname, '..');
const OUT = join(ROOT, 'bench', '.tmp');
const RESULTS = join(ROOT, 'bench', 'results');
const LOAD_RUNS = 7;
/** Every function bundled for driver=fake must stay under this (minified bytes). */
const NON_EC2_BUDGET_BYTES = 600 * 1024;
/**
 * A function bundled for driver=ec2: the fake-driver budget plus the EC2 client (~1.4 MB
 * minified), with room for the driver to grow. Measured on one operation function and the
 * lifecycle-events function; every ec2 bundle differs from its fake twin by the same driver.
 */
const EC2_BUDGET_BYTES = 2 * 1024 * 1024;
/** The functions whose driver=ec2 bundle is measured as well. */
const EC2_ENTRIES = ['build-and-run-instance', 'lifecycle-events'];

interface BundleResult {
  function: string;
  driver: BundleDriver;
  bytes: number;
  talksToEc2: boolean;
  budgetBytes: number;
  loadMsMedian?: number;
  loadMsMin?: number;
}

async function entries(): Promise<string[]> {
  const files = await readdir(join(ROOT, 'functions'));
  return files
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.replace(/\.ts$/, ''))
    .sort();
}

async function bundle(
  name: string,
  driver: BundleDriver,
): Promise<{ file: string; bytes: number; talksToEc2: boolean }> {
  const file = join(OUT, `${name}.${driver}.mjs`);
  const result = await build({
    entryPoints: [join(ROOT, 'functions', `${name}.ts`)],
    outfile: file,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node24',
    minify: true,
    treeShaking: true,
    mainFields: ['module', 'main'],
    metafile: true,
    logLevel: 'silent',
    // Bundled ESM still meets CommonJS inside dependencies: give it a require.
    banner: { js: ESM_REQUIRE_SHIM },
    alias: { ...bundleAliases(driver) },
  });
  const inputs = Object.keys(result.metafile.inputs);
  return {
    file,
    bytes: (await stat(file)).size,
    talksToEc2: inputs.some((i) => i.includes('@aws-sdk/client-ec2')),
  };
}

function loadTimeMs(file: string): number {
  const script = `const t = performance.now(); await import(${JSON.stringify(file)}); process.stdout.write(String(performance.now() - t));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    env: {
      ...process.env,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'bench',
      AWS_SECRET_ACCESS_KEY: 'bench',
      POWERTOOLS_LOG_LEVEL: 'SILENT',
      // What the stack sets on the usage audit's fan-out (read at cold start).
      STRATUS_AUDIT_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/bench-shards',
    },
  });
  return Number(out.toString());
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const check = process.argv.includes('--check');
  await rm(OUT, { recursive: true, force: true });
  await mkdir(OUT, { recursive: true });
  const results: BundleResult[] = [];
  const builds = [
    ...(await entries()).map((name) => ({ name, driver: 'fake' as const })),
    ...EC2_ENTRIES.map((name) => ({ name, driver: 'ec2' as const })),
  ];
  for (const { name, driver } of builds) {
    const b = await bundle(name, driver);
    const r: BundleResult = {
      function: name,
      driver,
      bytes: b.bytes,
      talksToEc2: b.talksToEc2,
      budgetBytes: driver === 'ec2' ? EC2_BUDGET_BYTES : NON_EC2_BUDGET_BYTES,
    };
    if (!check) {
      const runs = Array.from({ length: LOAD_RUNS }, () => loadTimeMs(b.file));
      r.loadMsMedian = Math.round(median(runs) * 10) / 10;
      r.loadMsMin = Math.round(Math.min(...runs) * 10) / 10;
    }
    results.push(r);
  }
  // The alias is what keeps the EC2 SDK out: a fake bundle that has it, or an ec2 bundle that
  // lacks it, is a wiring bug.
  const leaked = results.filter((r) => (r.driver === 'fake') === r.talksToEc2);
  const over = results.filter((r) => r.bytes > r.budgetBytes);
  console.log(
    'function                      driver  bytes (min)   budget      load ms (median / min)',
  );
  for (const r of results) {
    const budget = `${Math.round(r.budgetBytes / 1024)} KiB`;
    const load = r.loadMsMedian === undefined ? '' : `${r.loadMsMedian} / ${r.loadMsMin}`;
    console.log(
      `${r.function.padEnd(28)}  ${r.driver.padEnd(6)}  ${String(r.bytes).padStart(10)}   ${budget.padEnd(10)}  ${load}`,
    );
  }
  if (!check) {
    await mkdir(RESULTS, { recursive: true });
    const record = {
      measured_at: new Date().toISOString(),
      node: process.version,
      machine: `${process.platform}/${process.arch}`,
      load_runs: LOAD_RUNS,
      budgets: { fake_bytes: NON_EC2_BUDGET_BYTES, ec2_bytes: EC2_BUDGET_BYTES },
      functions: results,
    };
    await writeFile(join(RESULTS, 'bundles.json'), `${JSON.stringify(record, null, 2)}\n`);
    console.log(`\nrecorded in bench/results/bundles.json`);
  }
  await rm(OUT, { recursive: true, force: true });
  if (leaked.length > 0) {
    console.error(
      `wrong driver wiring (fake bundles must not contain @aws-sdk/client-ec2, ec2 bundles must): ${leaked.map((r) => `${r.function} (${r.driver})`).join(', ')}`,
    );
  }
  if (over.length > 0) {
    console.error(
      `over budget: ${over.map((r) => `${r.function} (${r.driver}) ${r.bytes} > ${r.budgetBytes}`).join(', ')}`,
    );
  }
  if (leaked.length > 0 || over.length > 0) process.exit(1);
}

await main();
