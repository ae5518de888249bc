// Powertools singletons, created once per cold start and shared by a function's handler.
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';

export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'stratus' });
export const metrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'Stratus',
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'stratus',
});
