import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { z } from 'zod';
import { processOutbound, type OutboundWorkerDeps } from '../domain/wechat-outbound';
import { observed } from '../runtime/middleware';
import { countMetric, logger, withMetrics } from '../runtime/observability';
import { outboundWorkerDeps } from '../runtime/wechat-dependencies';

/**
 * WeChat outbound queue consumer: one attempt per record (domain/wechat-outbound.ts). A retry
 * the error code allows is a new, delayed queue message; a record fails back to the queue
 * (partial batch failures, then the DLQ) only for infrastructure errors, never for WeChat's
 * answers, which end in a state the sender sees.
 */
const processor = new BatchProcessor(EventType.SQS);
const jobSchema = z.strictObject({ id: z.string().min(1).max(128), attempt: z.number().int().min(1).max(100) });

async function runRecord(deps: OutboundWorkerDeps, record: SQSRecord): Promise<void> {
  const job = jobSchema.parse(JSON.parse(record.body));
  const outcome = await processOutbound(deps, job);
  countMetric(`wechatOutbound_${outcome}`);
  if (outcome === 'failed') logger.warn('WeChat outbound message failed', { id: job.id, attempt: job.attempt });
}

export const handler = observed<SQSEvent, SQSBatchResponse>(async (event, context) => {
  const deps = outboundWorkerDeps();
  return processPartialResponse(event, (record: SQSRecord) => runRecord(deps, record), processor, { context });
}).use(withMetrics());
