// Stands in for ./load.ts in bundles built for driver=fake (cdk/bundling.ts aliases
// `#ec2-driver` here), so those bundles carry neither the EC2 driver nor its SDK client. Such a
// bundle configured with driver=ec2 was deployed wrongly: it says so at cold start.

import { ErrorCode, StratusError } from '../../errors.ts';
import type * as Ec2Driver from './load.ts';

export const createEc2Driver: typeof Ec2Driver.createEc2Driver = () => {
  throw new StratusError(
    ErrorCode.ConfigError,
    'driver=ec2, but this bundle was built for driver=fake (without the EC2 driver): ' +
      'bundle the function with the EC2 driver (synthesize the stack with -c driver=ec2)',
  );
};
