import { createHash } from 'node:crypto';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { QueuedMessage, UplinkQueue } from '../domain/messaging-ports';
import { correlationAttributes, noCorrelationId, type CorrelationIdSource } from './sqs-correlation';

/**
 * The FIFO uplink queue. One message group per conversation keeps each conversation in
 * order while different conversations are stored in parallel; the de-duplication id is the
 * msgId, so a client retry that re-queues the same msgId within 5 minutes is dropped by SQS.
 */
export function conversationOf(from: string, to: QueuedMessage['to']): string {
  let key: string;
  if ('users' in to) key = `p:${from}`;
  else if ('user' in to) key = `u:${[from, to.user].sort().join('|')}`;
  else if ('group' in to) key = `g:${to.group}`;
  else key = `w:${to.wechat.accountId}:${to.wechat.openId}`;
  // MessageGroupId allows at most 128 characters.
  return key.length <= 128 ? key : `h:${createHash('sha256').update(key).digest('hex')}`;
}

/**
 * JSON text that SQS accepts for any JSON value. SQS message bodies may hold only #x9, #xA, #xD,
 * #x20-#xD7FF, #xE000-#xFFFD and #x10000-#x10FFFF. JSON.stringify already escapes control
 * characters and lone surrogates, so the only characters it can emit outside that set are
 * U+FFFE and U+FFFF; those are written as \uXXXX escapes. Characters above U+FFFF (emoji) are
 * escaped too, as surrogate pairs: real SQS accepts them raw, but the local SQS emulator does
 * not, and one encoding for both keeps local mode honest. JSON.parse restores every one.
 */
export function toSqsBody(value: unknown): string {
  return JSON.stringify(value).replace(/[\uFFFE\uFFFF]|[\uD800-\uDBFF][\uDC00-\uDFFF]/g, (chars) =>
    [...Array(chars.length).keys()].map((i) => `\\u${chars.charCodeAt(i).toString(16).padStart(4, '0')}`).join(''),
  );
}

/** Each message carries the correlation id of the invocation that queued it (sqs-correlation.ts). */
export class SqsUplinkQueue implements UplinkQueue {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
    private readonly correlationId: CorrelationIdSource = noCorrelationId,
  ) {}

  async enqueue(message: QueuedMessage): Promise<void> {
    await this.client.send(
      new SendMessageCommand({
        QueueUrl: this.queueUrl,
        MessageBody: toSqsBody(message),
        MessageGroupId: conversationOf(message.from, message.to),
        MessageDeduplicationId: message.msgId,
        MessageAttributes: correlationAttributes(this.correlationId()),
      }),
    );
  }
}
