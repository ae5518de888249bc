// How the EC2 driver's modules reach EC2: one context object (client, deployment, settings,
// clock) handed to free functions, the throttling retry every call goes through, and the
// translation of a failed call into the error of the Nova operation that made it.

import type { EC2Client } from '@aws-sdk/client-ec2';
import { type Ec2Operation, ec2ErrorCode, isThrottling, translateEc2Error } from './errors.ts';
import type { Ec2Settings } from './settings.ts';

/** Minimal structured logger; the driver logs call names and EC2 codes, never parameters. */
export interface Ec2Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

/** One EC2 call, named for logs, retried on throttling (see `callWithBackoff`). */
export type Ec2Call = <T>(name: string, fn: () => Promise<T>) => Promise<T>;

/** What the driver's modules need to talk to EC2 for one deployment. */
export interface Ec2Context {
  readonly client: EC2Client;
  /** Whose resources these are: filters every read, tags every create (tags.ts). */
  readonly deployment: string;
  readonly settings: Ec2Settings;
  readonly call: Ec2Call;
  readonly sleep: (ms: number) => Promise<void>;
  readonly now: () => Date;
  readonly logger: Ec2Logger | undefined;
}

const THROTTLE_BASE_MS = 200;
const THROTTLE_CAP_MS = 5_000;

/**
 * One EC2 call. The SDK (adaptive retry mode) already retried throttling and 5xx; a burst
 * that outlasts it is retried here with capped exponential backoff and full jitter, up to
 * `throttleRetries` more times, then the throttling error propagates (SQS redelivers).
 */
export async function callWithBackoff<T>(
  name: string,
  fn: () => Promise<T>,
  options: {
    throttleRetries: number;
    sleep: (ms: number) => Promise<void>;
    logger: Ec2Logger | undefined;
  },
): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await fn();
    } catch (error) {
      if (!isThrottling(error) || attempt > options.throttleRetries) throw error;
      const ceiling = Math.min(THROTTLE_CAP_MS, THROTTLE_BASE_MS * 2 ** (attempt - 1));
      const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
      options.logger?.warn('EC2 call throttled; backing off', {
        call: name,
        code: ec2ErrorCode(error),
        attempt,
        delay_ms: delay,
      });
      await options.sleep(delay);
    }
  }
}

/** Runs `fn`, translating an EC2 failure for `operation` (errors.ts). */
export async function attempt<T>(
  operation: Ec2Operation,
  context: { instanceId?: string; node?: string | null; secrets?: (string | null)[] },
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw translateEc2Error(error, { operation, ...context });
  }
}
