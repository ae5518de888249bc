// What EC2 says an instance type is (vCPUs, memory), for capacity reporting and diagnostics.
// Instance types do not change, so an answer is cached for the driver's lifetime.

import { DescribeInstanceTypesCommand } from '@aws-sdk/client-ec2';
import type { Ec2Context } from './calls.ts';
import { ec2ErrorCode } from './errors.ts';

export interface InstanceTypeInfo {
  vcpus: number;
  memory_mb: number;
}

/** The driver's cache of DescribeInstanceTypes answers, by instance type. */
export type InstanceTypeCache = Map<string, InstanceTypeInfo>;

/** The type's vCPUs and memory, or null for a type EC2 does not know. */
export async function instanceTypeInfo(
  ec2: Ec2Context,
  cache: InstanceTypeCache,
  instanceType: string,
): Promise<InstanceTypeInfo | null> {
  const cached = cache.get(instanceType);
  if (cached) return cached;
  try {
    const out = await ec2.call('DescribeInstanceTypes', () =>
      ec2.client.send(new DescribeInstanceTypesCommand({ InstanceTypes: [instanceType as never] })),
    );
    const info = out.InstanceTypes?.[0];
    if (!info) return null;
    const result = {
      vcpus: info.VCpuInfo?.DefaultVCpus ?? 0,
      memory_mb: info.MemoryInfo?.SizeInMiB ?? 0,
    };
    cache.set(instanceType, result);
    return result;
  } catch (error) {
    if (ec2ErrorCode(error)?.startsWith('InvalidInstanceType')) return null;
    throw error;
  }
}
