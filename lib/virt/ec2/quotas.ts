// The account's EC2 quotas from Service Quotas, for pools sized `"vcpus": "quota"` (reference
// §3: the On-Demand vCPU quota is the real ceiling of a region pool). Quotas change rarely and
// Service Quotas allows few requests per second, so each value is kept for a while and every
// cold start asks once.

import { GetServiceQuotaCommand, type ServiceQuotasClient } from '@aws-sdk/client-service-quotas';
import { DriverError } from '../errors.ts';

/** How long a quota value is trusted before it is read again. */
export const QUOTA_TTL_MS = 10 * 60_000;

export function serviceQuotaReader(
  client: ServiceQuotasClient,
  now: () => number = Date.now,
): (quotaCode: string) => Promise<number> {
  const cache = new Map<string, { value: number; until: number }>();
  return async (quotaCode) => {
    const hit = cache.get(quotaCode);
    if (hit && hit.until > now()) return hit.value;
    const out = await client.send(
      new GetServiceQuotaCommand({ ServiceCode: 'ec2', QuotaCode: quotaCode }),
    );
    const value = out.Quota?.Value;
    if (value === undefined || !Number.isFinite(value) || value < 0) {
      throw new DriverError(
        'VirtDriverNotReady',
        `Service Quotas returned no value for EC2 quota ${quotaCode}.`,
      );
    }
    cache.set(quotaCode, { value: Math.floor(value), until: now() + QUOTA_TTL_MS });
    return Math.floor(value);
  };
}

/** The quota codes a deployment's pools read (none: no Service Quotas client is needed). */
export function quotaCodesOf(settings: {
  pools: readonly { vcpus?: number | 'quota'; quota_code: string }[];
}): string[] {
  return [...new Set(settings.pools.filter((p) => p.vcpus === 'quota').map((p) => p.quota_code))];
}
