import { createHash } from 'node:crypto';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Recipient } from '../domain/frames';
import type { QueuedMessage, UplinkQueue } from '../domain/messaging-ports';

/**
 * The FIFO uplink queue. One message group per conversation keeps each conversation in
 * order while different conversations are stored in parallel; the de-duplication id is the
 * msgId, so a client retry that re-queues the same msgId within 5 minutes is dropped by SQS.
 */
export function conversationOf(from: string, to: Recipient): string {
  let key: string;
  if ('user' in to) key = `u:${[from, to.user].sort().join('|')}`;
  else if ('group' in to) key = `g:${to.group}`;
  else key = `w:${to.wechat.accountId}:${to.wechat.openId}`;
  // MessageGroupId allows at most 128 characters.
  return key.length <= 128 ? key : `h:${createHash('sha256').update(key).digest('hex')}`;
}

export class SqsUplinkQueue implements UplinkQueue {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
  ) {}

  async enqueue(message: QueuedMessage): Promise<void> {
    await this.client.send(
      new SendMessageCommand({
        QueueUrl: this.queueUrl,
        MessageBody: JSON.stringify(message),
        MessageGroupId: conversationOf(message.from, message.to),
        MessageDeduplicationId: message.msgId,
      }),
    );
  }
}
