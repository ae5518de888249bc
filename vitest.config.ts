import { defineConfig } from 'vitest/config';

// Three projects: `unit` needs nothing but Node; `integration` runs against real emulators
// (DynamoDB Local, fauxqs, moto_server) that its global setup starts on free loopback ports;
// `live` talks to a real AWS account and skips itself (loudly) unless STRATUS_LIVE_AWS=1.
export default defineConfig({
  test: {
    env: { POWERTOOLS_DEV: 'true', POWERTOOLS_LOG_LEVEL: 'SILENT', AWS_REGION: 'us-east-1' },
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts', 'test/cdk/**/*.test.ts'],
          // Synthesizing the whole stack (~40 functions) takes seconds on a loaded 2-core machine.
          testTimeout: 120_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'live',
          include: ['test/live/**/*.test.ts'],
          // The test's own env decides the region; the shared AWS_REGION default stays.
          testTimeout: 1_800_000,
          hookTimeout: 120_000,
        },
      },
    ],
    coverage: {
      provider: 'v8',
      include: ['lib/**', 'functions/**'],
    },
  },
});
