import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { runFanoutTask, type FanoutDeps, type FanoutTask } from '../domain/fanout';
import { fanoutDeps } from '../runtime/dependencies';
import { observed } from '../runtime/middleware';
import { countMetric, recordDelivery, withMetrics } from '../runtime/observability';

/**
 * Fan-out queue consumer (domain/fanout.ts): one task per record. A failed task goes back to the
 * queue (partial batch failures) and, after maxReceiveCount, to the DLQ; the job then stays
 * `running` with the failed task still open, which GET /v1/jobs shows.
 */
const processor = new BatchProcessor(EventType.SQS);

async function runRecord(deps: FanoutDeps, record: SQSRecord): Promise<void> {
  const task = JSON.parse(record.body) as FanoutTask;
  const { outcome, report } = await runFanoutTask(deps, task);
  countMetric(outcome === 'completed' ? 'fanoutTasks' : 'fanoutTasksRepeated');
  recordDelivery('fanout', report);
}

export const handler = observed<SQSEvent, SQSBatchResponse>(async (event, context) => {
  const deps = fanoutDeps();
  return processPartialResponse(event, (record: SQSRecord) => runRecord(deps, record), processor, { context });
}).use(withMetrics());
