// The one door from lib/compose.ts to the EC2 driver, imported as `#ec2-driver` (package.json
// `imports`). Bundles built for driver=fake replace it with ./absent.ts (cdk/bundling.ts), so
// the EC2 driver and @aws-sdk/client-ec2 (~1.4 MB minified) stay out of them. Import the
// driver's modules anywhere else in code that fake-driver functions bundle and that saving is
// lost (bench/run.ts fails the build when it happens).

export { createEc2Driver } from './index.ts';
