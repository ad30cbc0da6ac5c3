import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { correlationIdOf } from '../adapters/sqs-correlation';
import { runFanoutTask, type FanoutDeps, type FanoutTask } from '../domain/fanout';
import { fanoutDeps } from '../runtime/dependencies';
import { observed } from '../runtime/middleware';
import { countMetric, logger, recordDelivery, underCorrelationId, withMetrics } from '../runtime/observability';

/**
 * Fan-out queue consumer (domain/fanout.ts): one task per record. A failed task goes back to the
 * queue (partial batch failures) and, after maxReceiveCount, to the DLQ; the job then stays
 * `running` with the failed task still open, which GET /v1/jobs shows. A task is logged under the
 * correlation id of the push or send that started its job; records are handled one at a time
 * (the batch size is 1 anyway), so the logger's id is never another task's.
 */
const processor = new BatchProcessor(EventType.SQS);

async function runRecord(deps: FanoutDeps, record: SQSRecord): Promise<void> {
  const task = JSON.parse(record.body) as FanoutTask;
  const { outcome, report } = await runFanoutTask(deps, task);
  countMetric(outcome === 'completed' ? 'fanoutTasks' : 'fanoutTasksRepeated');
  recordDelivery('fanout', report);
  logger.debug('fan-out task done', { outcome, ...report });
}

export const handler = observed<SQSEvent, SQSBatchResponse>(async (event, context) => {
  const deps = fanoutDeps();
  return processPartialResponse(event, (record: SQSRecord) => underCorrelationId(correlationIdOf(record), () => runRecord(deps, record)), processor, {
    context,
    processInParallel: false,
  });
}).use(withMetrics());
