import { SqsFifoPartialProcessorAsync, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { parseQueuedMessage } from '../domain/queued-message';
import { persistMessage, type PersistDeps } from '../domain/persist-message';
import { adminStore, fanoutQueue, persistDeps } from '../runtime/dependencies';
import { outboundSubmitDeps } from '../runtime/wechat-dependencies';
import { observed } from '../runtime/middleware';
import { countMetric, logger, recordDelivery, withMetrics } from '../runtime/observability';

/**
 * Uplink queue consumer. Partial batch failures: a failed record is retried by SQS (and goes
 * to the DLQ after maxReceiveCount); with `skipGroupOnError` the later records of the same
 * conversation are handed back too, so a conversation is never stored out of order, while
 * other conversations in the batch go on.
 */
const processor = new SqsFifoPartialProcessorAsync();

async function storeRecord(deps: PersistDeps, record: SQSRecord): Promise<void> {
  const message = parseQueuedMessage(record.body);
  const attempt = Number(record.attributes.ApproximateReceiveCount) || 1;
  const result = await persistMessage(deps, message, attempt);
  countMetric(result.outcome === 'stored' ? 'messagesStored' : 'redeliveriesSkipped');
  recordDelivery('late', result.lateDelivery);
  logger.debug('message persisted', { msgId: message.msgId, outcome: result.outcome, attempt, lateDelivery: { ...result.lateDelivery }, jobId: result.jobId });
}

export const handler = observed<SQSEvent, SQSBatchResponse>(async (event, context) => {
  const deps = { ...persistDeps(), outbound: outboundSubmitDeps(), fanout: { jobs: adminStore(), queue: fanoutQueue() } };
  return processPartialResponse(event, (record: SQSRecord) => storeRecord(deps, record), processor, { context, skipGroupOnError: true });
}).use(withMetrics());
