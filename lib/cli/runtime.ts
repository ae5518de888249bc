// What a CLI command runs against: its output streams, working directory, environment and an
// abort signal (Ctrl-C). Tests pass their own to run the CLI in-process and read its output.

export interface CliIo {
  /** Writes one line (or block) to standard output. */
  out(text: string): void;
  /** Writes one line (or block) to standard error. */
  err(text: string): void;
}

export interface CliRuntime {
  io: CliIo;
  cwd: string;
  env: Record<string, string | undefined>;
  /** Aborted on Ctrl-C: `--wait` and `events --follow` stop. */
  signal?: AbortSignal;
  /** How often `--wait` and `--follow` look again (ms). */
  pollIntervalMs?: number;
  /** Standard input, for `--from-stack-outputs -`. */
  readStdin?: () => Promise<string>;
}

async function readProcessStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function processRuntime(signal?: AbortSignal): CliRuntime {
  return {
    io: {
      out: (text) => process.stdout.write(`${text}\n`),
      err: (text) => process.stderr.write(`${text}\n`),
    },
    cwd: process.cwd(),
    env: process.env,
    readStdin: readProcessStdin,
    ...(signal ? { signal } : {}),
  };
}

/** Resolves after `ms`, or at once when the signal is aborted. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((done) => {
    if (signal?.aborted) return done();
    const timer = setTimeout(finish, ms);
    function finish() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', finish);
      done();
    }
    signal?.addEventListener('abort', finish, { once: true });
  });
}
