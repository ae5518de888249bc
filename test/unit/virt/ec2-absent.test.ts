// Driver selection: lib/compose.ts reaches the EC2 driver through `#ec2-driver` only, and the
// stub that fake-driver bundles get in its place (cdk/bundling.ts) refuses with a clear error.

import { describe, expect, it } from 'vitest';
import { bundleAliases, EC2_DRIVER_MODULE } from '../../../cdk/bundling.ts';
import { awsClients, createDriver } from '../../../lib/compose.ts';
import { loadConfig } from '../../../lib/config.ts';
import { ErrorCode, StratusError } from '../../../lib/errors.ts';
import { createEc2Driver as absent } from '../../../lib/virt/ec2/absent.ts';
import { Ec2Driver } from '../../../lib/virt/ec2/driver.ts';
import { InMemoryLifecycleSink } from '../../../lib/virt/events.ts';
import { FakeDriver } from '../../../lib/virt/fake/driver.ts';

describe('driver selection', () => {
  it('composes the EC2 driver for driver=ec2 and the fake one otherwise', () => {
    const clients = awsClients();
    const ec2 = loadConfig({ STRATUS_DRIVER: 'ec2', STRATUS_EC2: '{"region":"eu-west-1"}' });
    expect(createDriver(ec2, clients, {})).toBeInstanceOf(Ec2Driver);
    expect(createDriver(loadConfig({}), clients, {})).toBeInstanceOf(FakeDriver);
  });

  it('aliases the EC2 driver to the stub in fake bundles only', () => {
    expect(bundleAliases('fake')[EC2_DRIVER_MODULE]).toMatch(/lib\/virt\/ec2\/absent\.ts$/);
    expect(bundleAliases('ec2')).not.toHaveProperty(EC2_DRIVER_MODULE);
    // Both keep the Lambda credential provider substitution.
    expect(bundleAliases('ec2')).toHaveProperty('@aws-sdk/credential-provider-node');
    expect(bundleAliases('fake')).toHaveProperty('@aws-sdk/credential-provider-node');
  });

  it('refuses driver=ec2 in a bundle built for driver=fake, saying how to fix it', () => {
    const config = loadConfig({ STRATUS_DRIVER: 'ec2' });
    let error: unknown;
    try {
      absent(config, new InMemoryLifecycleSink());
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StratusError);
    expect(error).toMatchObject({ code: ErrorCode.ConfigError });
    expect((error as Error).message).toMatch(/built for driver=fake.*-c driver=ec2/);
  });
});
