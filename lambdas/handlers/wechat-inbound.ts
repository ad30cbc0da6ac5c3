import { SqsFifoPartialProcessorAsync, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { correlationIdOf } from '../adapters/sqs-correlation';
import { persistMessage, type PersistDeps } from '../domain/persist-message';
import { parseQueuedMessage } from '../domain/queued-message';
import { persistDeps } from '../runtime/dependencies';
import { observed } from '../runtime/middleware';
import { countMetric, logger, recordDelivery, underCorrelationId, withMetrics } from '../runtime/observability';

/**
 * WeChat inbound queue consumer: each callback is stored as a message of the group
 * `wechat:{accountId}` (so an agent who was offline finds it with `sync`) and delivered to the
 * agents online, by the same idempotent persister as client messages. Partial batch failures,
 * one WeChat user's messages in order (skipGroupOnError). Each record is logged under the
 * correlation id of the callback request that queued it.
 */
const processor = new SqsFifoPartialProcessorAsync();

async function storeRecord(deps: PersistDeps, record: SQSRecord): Promise<void> {
  const attempt = Number(record.attributes.ApproximateReceiveCount) || 1;
  try {
    const message = parseQueuedMessage(record.body);
    const result = await persistMessage(deps, message, attempt);
    countMetric(result.outcome === 'stored' ? 'wechatMessagesStored' : 'redeliveriesSkipped');
    recordDelivery('late', result.lateDelivery);
    logger.debug('WeChat message persisted', { msgId: message.msgId, outcome: result.outcome, attempt });
  } catch (err) {
    logger.warn('storing a WeChat message failed; SQS will redeliver it', { messageId: record.messageId, attempt, error: err as Error });
    throw err;
  }
}

export const handler = observed<SQSEvent, SQSBatchResponse>(async (event, context) => {
  const deps = persistDeps();
  return processPartialResponse(event, (record: SQSRecord) => underCorrelationId(correlationIdOf(record), () => storeRecord(deps, record)), processor, {
    context,
    skipGroupOnError: true,
  });
}).use(withMetrics());
