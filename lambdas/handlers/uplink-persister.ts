import { SqsFifoPartialProcessorAsync, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { correlationIdOf } from '../adapters/sqs-correlation';
import { parseQueuedMessage } from '../domain/queued-message';
import { persistMessage, type PersistDeps } from '../domain/persist-message';
import { adminStore, fanoutQueue, persistDeps } from '../runtime/dependencies';
import { outboundSubmitDeps } from '../runtime/wechat-dependencies';
import { observed } from '../runtime/middleware';
import { countMetric, logger, recordDelivery, underCorrelationId, withMetrics } from '../runtime/observability';

/**
 * Uplink queue consumer. Partial batch failures: a failed record is retried by SQS (and goes
 * to the DLQ after maxReceiveCount); with `skipGroupOnError` the later records of the same
 * conversation are handed back too, so a conversation is never stored out of order, while
 * other conversations in the batch go on. Each record is handled, and logged, under the
 * correlation id it carries from the request that queued it (the send, an admin push), so one
 * search finds the whole trail of a message (docs/architecture.md, "Following one message").
 */
const processor = new SqsFifoPartialProcessorAsync();

async function storeRecord(deps: PersistDeps, record: SQSRecord): Promise<void> {
  const attempt = Number(record.attributes.ApproximateReceiveCount) || 1;
  try {
    const message = parseQueuedMessage(record.body);
    const result = await persistMessage(deps, message, attempt);
    countMetric(result.outcome === 'stored' ? 'messagesStored' : 'redeliveriesSkipped');
    recordDelivery('late', result.lateDelivery);
    logger.debug('message persisted', { msgId: message.msgId, outcome: result.outcome, attempt, lateDelivery: { ...result.lateDelivery }, jobId: result.jobId });
  } catch (err) {
    // SQS hands the record back (and, after maxReceiveCount, to the DLQ): say so under its id.
    logger.warn('storing a queued message failed; SQS will redeliver it', { messageId: record.messageId, attempt, error: err as Error });
    throw err;
  }
}

export const handler = observed<SQSEvent, SQSBatchResponse>(async (event, context) => {
  const deps = { ...persistDeps(), outbound: outboundSubmitDeps(), fanout: { jobs: adminStore(), queue: fanoutQueue() } };
  return processPartialResponse(event, (record: SQSRecord) => underCorrelationId(correlationIdOf(record), () => storeRecord(deps, record)), processor, {
    context,
    skipGroupOnError: true,
  });
}).use(withMetrics());
