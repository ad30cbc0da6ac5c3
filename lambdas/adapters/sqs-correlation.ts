import type { MessageAttributeValue } from '@aws-sdk/client-sqs';
import type { SQSRecord } from 'aws-lambda';

/**
 * The correlation id travels with a queued message as this SQS message attribute, from the
 * invocation that queued it (the `send` route, the admin API, a WeChat callback, the persister
 * handing a reply or a fan-out job on) to the consumer, which logs the record's work under it
 * (docs/architecture.md, "Following one message"). An attribute, not a field of the body: the
 * body is the message, and a consumer reads the id without parsing it, before its schema can refuse it.
 */
export const CORRELATION_ID_ATTRIBUTE = 'correlationId';

/** The longest id carried (API Gateway request ids are 16-36 characters); a longer one is not sent. */
const MAX_CORRELATION_ID_LENGTH = 128;

/** Where an adapter reads the id to send: the logger's current correlation id (runtime/observability.ts). */
export type CorrelationIdSource = () => string | undefined;

export const noCorrelationId: CorrelationIdSource = () => undefined;

/** The `MessageAttributes` of a message sent under `id`; none without one. */
export function correlationAttributes(id: string | undefined): Record<string, MessageAttributeValue> | undefined {
  if (!id || id.length > MAX_CORRELATION_ID_LENGTH) return undefined;
  return { [CORRELATION_ID_ATTRIBUTE]: { DataType: 'String', StringValue: id } };
}

/** The id a received record carries, if any. */
export function correlationIdOf(record: Pick<SQSRecord, 'messageAttributes'>): string | undefined {
  const id = record.messageAttributes?.[CORRELATION_ID_ATTRIBUTE]?.stringValue;
  return id && id.length <= MAX_CORRELATION_ID_LENGTH ? id : undefined;
}
