import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { correlationIdOf } from '../adapters/sqs-correlation';
import { processOutbound, type OutboundWorkerDeps } from '../domain/wechat-outbound';
import * as z from '../domain/validation';
import { observed } from '../runtime/middleware';
import { countMetric, logger, withMetrics } from '../runtime/observability';
import { outboundQueueUnder, outboundWorkerDeps } from '../runtime/wechat-dependencies';

/**
 * WeChat outbound queue consumer: one attempt per record (domain/wechat-outbound.ts). A retry
 * the error code allows is a new, delayed queue message; a record fails back to the queue
 * (partial batch failures, then the DLQ) only for infrastructure errors, never for WeChat's
 * answers, which end in a state the sender sees.
 *
 * Records are handled in parallel, so the logger's shared correlation id cannot be the record's:
 * the id the record carries goes on its own log lines and on the retry it queues, explicitly.
 */
const processor = new BatchProcessor(EventType.SQS);
const jobSchema = /* @__PURE__ */ z.lazySchema(() =>
  z.strictObject({ id: z.string().check(z.minLength(1), z.maxLength(128)), attempt: z.number().check(z.int(), z.gte(1), z.lte(100)) }),
);

async function runRecord(deps: OutboundWorkerDeps, record: SQSRecord): Promise<void> {
  const correlationId = correlationIdOf(record);
  const job = z.parse(jobSchema(), JSON.parse(record.body));
  const outcome = await processOutbound(correlationId ? { ...deps, queue: outboundQueueUnder(correlationId) } : deps, job);
  countMetric(`wechatOutbound_${outcome}`);
  const line = { id: job.id, attempt: job.attempt, outcome, ...(correlationId ? { correlation_id: correlationId } : {}) };
  if (outcome === 'failed') logger.warn('WeChat outbound message failed', line);
  else logger.debug('WeChat outbound attempt done', line);
}

export const handler = observed<SQSEvent, SQSBatchResponse>(async (event, context) => {
  const deps = outboundWorkerDeps();
  return processPartialResponse(event, (record: SQSRecord) => runRecord(deps, record), processor, { context });
}).use(withMetrics());
