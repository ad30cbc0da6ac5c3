import { SqsFifoPartialProcessorAsync, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { persistMessage, type PersistDeps } from '../domain/persist-message';
import { parseQueuedMessage } from '../domain/queued-message';
import { persistDeps } from '../runtime/dependencies';
import { observed } from '../runtime/middleware';
import { countMetric, recordDelivery, withMetrics } from '../runtime/observability';

/**
 * WeChat inbound queue consumer: each callback is stored as a message of the group
 * `wechat:{accountId}` (so an agent who was offline finds it with `sync`) and delivered to the
 * agents online, by the same idempotent persister as client messages. Partial batch failures,
 * one WeChat user's messages in order (skipGroupOnError).
 */
const processor = new SqsFifoPartialProcessorAsync();

async function storeRecord(deps: PersistDeps, record: SQSRecord): Promise<void> {
  const message = parseQueuedMessage(record.body);
  const result = await persistMessage(deps, message, Number(record.attributes.ApproximateReceiveCount) || 1);
  countMetric(result.outcome === 'stored' ? 'wechatMessagesStored' : 'redeliveriesSkipped');
  recordDelivery('late', result.lateDelivery);
}

export const handler = observed<SQSEvent, SQSBatchResponse>(async (event, context) => {
  const deps = persistDeps();
  return processPartialResponse(event, (record: SQSRecord) => storeRecord(deps, record), processor, { context, skipGroupOnError: true });
}).use(withMetrics());
