#!/usr/bin/env node
// The `stratus` command (package.json "bin"). Runs under the project's Node 24 (`npx stratus`),
// which runs TypeScript directly. Everything lives in lib/cli/main.ts.
import { runCli } from '../lib/cli/main.ts';
import { processRuntime } from '../lib/cli/runtime.ts';

const interrupted = new AbortController();
// First Ctrl-C: stop waiting/following politely (the command itself goes on); second: exit.
process.once('SIGINT', () => {
  interrupted.abort();
  process.once('SIGINT', () => process.exit(130));
});
process.exit(await runCli(process.argv.slice(2), processRuntime(interrupted.signal)));
