// Builds the EC2 driver for a deployment. The client retries in the SDK's adaptive mode
// (client-side rate limiting on top of backoff, for the bursts of a fleet-wide fan-out;
// reference §5 RequestLimitExceeded); the driver adds its own bounded retries after that.

import { EC2Client } from '@aws-sdk/client-ec2';
import { ServiceQuotasClient } from '@aws-sdk/client-service-quotas';
import type { Config } from '../../config.ts';
import type { LifecycleEventSink } from '../events.ts';
import { Ec2Driver, type Ec2DriverOptions } from './driver.ts';
import { quotaCodesOf, serviceQuotaReader } from './quotas.ts';

export { Ec2Driver, type Ec2DriverOptions } from './driver.ts';
export { observationOf, clientToken, EC2_CAPABILITIES, HOST_NODE_PREFIX } from './driver.ts';
export * from './errors.ts';
export * from './power-state.ts';
export * from './settings.ts';
export * from './tags.ts';

/** An EC2 client for the driver's settings: adaptive retries, the configured region. */
export function createEc2Client(config: Pick<Config, 'ec2'>): EC2Client {
  return new EC2Client({
    retryMode: 'adaptive',
    maxAttempts: config.ec2.max_attempts,
    ...(config.ec2.region ? { region: config.ec2.region } : {}),
  });
}

/** The deployment's EC2 driver: deployment = config.prefix, settings = config.ec2. */
export function createEc2Driver(
  config: Pick<Config, 'prefix' | 'ec2'>,
  sink: LifecycleEventSink,
  client?: EC2Client,
  extra: Pick<Ec2DriverOptions, 'logger' | 'quotaReader' | 'clock'> = {},
): Ec2Driver {
  // Pools sized by the vCPU quota read it from Service Quotas (in the driver's region).
  const quotaReader =
    extra.quotaReader ??
    (quotaCodesOf(config.ec2).length > 0
      ? serviceQuotaReader(
          new ServiceQuotasClient({ ...(config.ec2.region ? { region: config.ec2.region } : {}) }),
        )
      : undefined);
  return new Ec2Driver({
    client: client ?? createEc2Client(config),
    settings: config.ec2,
    deployment: config.prefix,
    sink,
    ...extra,
    ...(quotaReader ? { quotaReader } : {}),
  });
}
