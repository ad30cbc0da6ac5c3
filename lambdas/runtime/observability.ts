import { Logger } from '@aws-lambda-powertools/logger';
import { search } from '@aws-lambda-powertools/logger/correlationId';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { Tracer } from '@aws-lambda-powertools/tracer';
import type { DeliveryReport } from '../domain/delivery';

/**
 * One logger, tracer and metrics emitter per process; the service name comes from
 * POWERTOOLS_SERVICE_NAME. `search` (JMESPath) resolves the correlation id path. Metrics go
 * out as CloudWatch embedded metric format in the function's log (disabled in local mode).
 */
export const logger = new Logger({ serviceName: 'wxgate', correlationIdSearchFn: search });
export const tracer = new Tracer({ serviceName: 'wxgate' });
/**
 * Where the metrics emitter's own warnings go. Local mode runs every handler in one process with
 * metrics disabled, so concurrent invocations share this emitter and one flush can empty
 * another's buffer; the "no application metrics" warning that follows means nothing there and
 * is dropped. In AWS (one invocation per instance at a time) every warning passes.
 */
const metricsWarnings = {
  debug: (...args: unknown[]) => console.debug(...args),
  info: (...args: unknown[]) => console.info(...args),
  error: (...args: unknown[]) => console.error(...args),
  warn: (...args: unknown[]) => {
    if (process.env.POWERTOOLS_METRICS_DISABLED === 'true' && String(args[0]).startsWith('No application metrics')) return;
    console.warn(...args);
  },
};
export const metrics = new Metrics({ namespace: 'wxgate', serviceName: 'wxgate', logger: metricsWarnings });

/**
 * Middy middleware that flushes metrics once per invocation. Only for handlers that record a
 * metric on every invocation: Powertools warns about every empty flush.
 */
export const withMetrics = () => logMetrics(metrics, { throwOnEmptyMetrics: false });

export function countMetric(name: string, value = 1): void {
  metrics.addMetric(name, MetricUnit.Count, value);
}

/** Every delivery outcome is counted: `{stage}Delivered`, `{stage}Gone`, `{stage}Failed`. */
export function recordDelivery(stage: 'live' | 'late' | 'fanout', report: DeliveryReport): void {
  if (report.targeted === 0) return;
  metrics.addMetric(`${stage}Delivered`, MetricUnit.Count, report.delivered);
  metrics.addMetric(`${stage}Gone`, MetricUnit.Count, report.gone);
  metrics.addMetric(`${stage}Failed`, MetricUnit.Count, report.failed);
  if (report.failed > 0) logger.warn('some deliveries failed after retries', { stage, ...report });
}
