import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { FanoutQueue, FanoutTask } from '../domain/fanout';
import { correlationAttributes, noCorrelationId, type CorrelationIdSource } from './sqs-correlation';

/**
 * The fan-out queue (standard; tasks are idempotent): SendMessageBatch in tens, failed entries
 * re-sent. Each task carries the correlation id of the invocation that queued it (sqs-correlation.ts).
 */
export class SqsFanoutQueue implements FanoutQueue {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
    private readonly correlationId: CorrelationIdSource = noCorrelationId,
  ) {}

  async enqueue(tasks: readonly FanoutTask[]): Promise<void> {
    const MessageAttributes = correlationAttributes(this.correlationId());
    for (let i = 0; i < tasks.length; i += 10) {
      let pending = tasks.slice(i, i + 10).map((task, j) => ({ Id: String(j), MessageBody: JSON.stringify(task), MessageAttributes }));
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt >= 5) throw new Error(`SendMessageBatch left ${pending.length} fan-out tasks unsent after ${attempt} attempts`);
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, Math.random() * 100 * 2 ** attempt));
        const out = await this.client.send(new SendMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: pending }));
        const failed = new Set((out.Failed ?? []).map((f) => f.Id));
        pending = pending.filter((entry) => failed.has(entry.Id));
      }
    }
  }
}
