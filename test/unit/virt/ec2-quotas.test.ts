import { GetServiceQuotaCommand, ServiceQuotasClient } from '@aws-sdk/client-service-quotas';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { QUOTA_TTL_MS, quotaCodesOf, serviceQuotaReader } from '../../../lib/virt/ec2/quotas.ts';

const quotas = mockClient(ServiceQuotasClient);

beforeEach(() => quotas.reset());

describe('serviceQuotaReader', () => {
  it('reads the EC2 quota by code and keeps it for QUOTA_TTL_MS', async () => {
    quotas.on(GetServiceQuotaCommand).resolves({ Quota: { Value: 640 } });
    let now = 0;
    const read = serviceQuotaReader(new ServiceQuotasClient({ region: 'us-east-1' }), () => now);

    expect(await read('L-1216C47A')).toBe(640);
    now += QUOTA_TTL_MS - 1;
    expect(await read('L-1216C47A')).toBe(640);
    expect(quotas.commandCalls(GetServiceQuotaCommand)).toHaveLength(1);
    expect(quotas.commandCalls(GetServiceQuotaCommand)[0]!.args[0].input).toEqual({
      ServiceCode: 'ec2',
      QuotaCode: 'L-1216C47A',
    });

    quotas.on(GetServiceQuotaCommand).resolves({ Quota: { Value: 1280 } });
    now += 2;
    expect(await read('L-1216C47A')).toBe(1280);
  });

  it('says which quota had no value instead of sizing a node at 0', async () => {
    quotas.on(GetServiceQuotaCommand).resolves({ Quota: {} });
    const read = serviceQuotaReader(new ServiceQuotasClient({ region: 'us-east-1' }));
    await expect(read('L-1216C47A')).rejects.toMatchObject({
      novaException: 'VirtDriverNotReady',
      message: expect.stringContaining('L-1216C47A'),
    });
  });
});

describe('quotaCodesOf', () => {
  it('lists the distinct codes of quota-sized pools only', () => {
    expect(
      quotaCodesOf({
        pools: [
          { vcpus: 'quota', quota_code: 'L-1216C47A' },
          { vcpus: 'quota', quota_code: 'L-1216C47A' },
          { vcpus: 64, quota_code: 'L-1216C47A' },
          { vcpus: 'quota', quota_code: 'L-7295265B' },
        ],
      }),
    ).toEqual(['L-1216C47A', 'L-7295265B']);
  });
});
