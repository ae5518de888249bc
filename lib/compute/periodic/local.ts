// The periodic tasks as a scheduled task of the local control plane (lib/local/scheduled-tasks
// runs it every `local_tick_seconds`, where a deployment has EventBridge Scheduler).

import type { Config } from '../../config.ts';
import type { Logger } from '../runtime.ts';
import { type PeriodicDeps, composePeriodicDeps, runPeriodicTasks } from './index.ts';

const consoleLogger: Logger = {
  info: () => {},
  warn: (message, ...extra) => console.warn(`[periodic-tasks] ${message}`, ...extra),
  error: (message, ...extra) => console.error(`[periodic-tasks] ${message}`, ...extra),
};

/** Deps are composed once per configuration, like a function's cold start. */
const composed = new WeakMap<Config, PeriodicDeps>();

export const LOCAL_PERIODIC_TASKS = {
  name: 'periodic-tasks',
  async run({ config, now }: { config: Config; now: Date }): Promise<void> {
    let deps = composed.get(config);
    if (!deps) {
      deps = composePeriodicDeps(config, consoleLogger);
      composed.set(config, deps);
    }
    const reports = await runPeriodicTasks(deps, now);
    const failed = reports.filter((r) => r.errors > 0).map((r) => r.task);
    if (failed.length > 0) throw new Error(`periodic tasks with errors: ${failed.join(', ')}`);
  },
};
