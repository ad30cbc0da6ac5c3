import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { DeliveryReport } from '../domain/delivery';

/**
 * One logger and metrics emitter per process; the service name comes from
 * POWERTOOLS_SERVICE_NAME. Metrics go out as CloudWatch embedded metric format in the
 * function's log (disabled in local mode).
 *
 * No Powertools tracer: it brings the X-Ray SDK (with semver and cls-hooked, about 120 KB of
 * every bundle, loaded at every cold start) and no handler adds a segment, annotation or
 * metadata of its own. X-Ray still records every invocation: the functions run with Lambda's
 * active tracing, and in Lambda the AWS SDK itself sends the invocation's trace header with
 * every request, so SQS keeps it with a queued message and X-Ray links the consumer's trace to
 * the sender's. What is lost is a subsegment per SDK call (docs/architecture.md, "Following one
 * message"; the sizes and load times in docs/performance.md, "Cold start").
 *
 * The correlation id of a log line is `correlation_id`: the API Gateway request id of the
 * request (set by `observed`, middleware.ts), or, in a queue consumer, the id the message
 * carried from the request that queued it (`underCorrelationId`). docs/architecture.md,
 * "Following one message", shows the search.
 */
export const logger = new Logger({ serviceName: 'wxgate' });
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
export const metrics = /* @__PURE__ */ new Metrics({ namespace: 'wxgate', serviceName: 'wxgate', logger: metricsWarnings });

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

/** The correlation id the logger writes now (the request's, or the record's being handled), if any. */
export function currentCorrelationId(): string | undefined {
  const id = logger.getCorrelationId();
  return typeof id === 'string' && id !== '' ? id : undefined;
}

/**
 * Runs the work of one queue record with the logger's correlation id set to the id the record
 * carried, and puts back what was there before (nothing, in a queue consumer), so the next
 * record of the batch does not log under this one's id. Messages queued during the work carry
 * the id on (the queue adapters read `currentCorrelationId`). For records handled one at a time
 * only (FIFO batches are; `processInParallel: false` elsewhere): the logger's keys are shared.
 */
export async function underCorrelationId<T>(id: string | undefined, work: () => Promise<T>): Promise<T> {
  if (!id) return work();
  const outer = currentCorrelationId();
  logger.setCorrelationId(id);
  try {
    return await work();
  } finally {
    if (outer === undefined) logger.removeKeys(['correlation_id']);
    else logger.setCorrelationId(outer);
  }
}
