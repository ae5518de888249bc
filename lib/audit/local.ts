// The usage audit's fan-out as a scheduled task of the local control plane: every
// `local_tick_seconds` instead of EventBridge Scheduler's rate; the shard worker consumes the
// shard queue like every other function there.

import type { Config } from '../config.ts';
import { composeFanOutDeps } from './compose.ts';
import { type FanOutDeps, fanOutAudit } from './fan-out.ts';

/** Composed once per configuration, like a function's cold start. */
const composed = new WeakMap<Config, FanOutDeps>();

export const LOCAL_USAGE_AUDIT = {
  name: 'usage-audit',
  async run({ config, now }: { config: Config; now: Date }): Promise<void> {
    let deps = composed.get(config);
    if (!deps) {
      deps = composeFanOutDeps(config);
      composed.set(config, deps);
    }
    await fanOutAudit(deps, now);
  },
};
