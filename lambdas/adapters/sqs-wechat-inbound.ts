import { createHash } from 'node:crypto';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { QueuedMessage } from '../domain/messaging-ports';
import { correlationAttributes, noCorrelationId, type CorrelationIdSource } from './sqs-correlation';
import { toSqsBody } from './sqs-uplink-queue';

/**
 * The FIFO `wechatInbound` queue. The de-duplication id is derived from WeChat's own retry key
 * (never from the msgId minted per attempt), so WeChat's retries of one callback are queued once
 * even when they reach different Lambda instances at the same moment, for SQS's 5-minute window
 * (WeChat retries three times within about 15 seconds). A failed send leaves nothing behind, so
 * the retry WeChat makes after our error answer is queued normally.
 */
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

export class SqsWechatInbound {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
    /** The callback's request id travels with the message (sqs-correlation.ts). */
    private readonly correlationId: CorrelationIdSource = noCorrelationId,
  ) {}

  async enqueue(message: QueuedMessage, accountId: string, openId: string, dedupKey: string): Promise<void> {
    await this.client.send(
      new SendMessageCommand({
        QueueUrl: this.queueUrl,
        MessageBody: toSqsBody(message),
        // One WeChat user's messages stay in order; different users are stored in parallel.
        MessageGroupId: `w:${sha256(`${accountId}\n${openId}`)}`,
        MessageDeduplicationId: sha256(`${accountId}\n${dedupKey}`),
        MessageAttributes: correlationAttributes(this.correlationId()),
      }),
    );
  }
}

