import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { OutboundJob, OutboundQueue } from '../domain/wechat-outbound';
import { correlationAttributes, noCorrelationId, type CorrelationIdSource } from './sqs-correlation';

/** The standard `wechatOutbound` queue: one message per attempt; a retry's wait is the message's DelaySeconds (at most 900). */
export class SqsWechatOutboundQueue implements OutboundQueue {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
    /** The id of the request (admin API) or record (persister, a retry) that queued the attempt (sqs-correlation.ts). */
    private readonly correlationId: CorrelationIdSource = noCorrelationId,
  ) {}

  async enqueue(job: OutboundJob, delaySeconds: number): Promise<void> {
    await this.client.send(
      new SendMessageCommand({
        QueueUrl: this.queueUrl,
        MessageBody: JSON.stringify(job),
        DelaySeconds: Math.min(900, Math.max(0, Math.round(delaySeconds))),
        MessageAttributes: correlationAttributes(this.correlationId()),
      }),
    );
  }
}
