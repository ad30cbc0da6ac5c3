import {
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  type Message,
  type MessageAttributeValue,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSMessageAttributes, SQSRecord } from 'aws-lambda';
import type { FunctionId, QueueConsumerDeclaration } from '../lib/gateway-declaration';
import type { LambdaInvoker } from './lambda-invoker';
import { LOCAL_ACCOUNT_ID, LOCAL_REGION } from './local-names';
import { sleep } from './sleep';

/**
 * Stands in for an SQS event source mapping with `ReportBatchItemFailures`: receive up to
 * `batchSize` records, invoke the consumer with the same event shape Lambda builds, then delete
 * every record except those in `batchItemFailures` (none if the handler throws, or if it names an
 * id that is not in the batch, as Lambda treats that as a failed batch). Records left behind
 * come back after the visibility timeout; the queue's redrive policy moves them to the DLQ after
 * `maxReceiveCount` receives (the emulator implements redrive).
 *
 * One batch at a time per queue (Lambda runs several for standard queues and one per message
 * group for FIFO queues): simpler, and FIFO order holds trivially.
 */
export interface QueuePollerOptions {
  sqs: SQSClient;
  invoker: LambdaInvoker;
  queueUrl: string;
  queueName: string;
  consumer: QueueConsumerDeclaration;
  logger: (line: string) => void;
  /** Idle wait after an empty receive. */
  pollWaitMs: number;
}

function eventAttributes(attributes: Record<string, MessageAttributeValue> | undefined): SQSMessageAttributes {
  const out: SQSMessageAttributes = {};
  const b64 = (value: Uint8Array) => Buffer.from(value).toString('base64');
  for (const [name, value] of Object.entries(attributes ?? {})) {
    out[name] = {
      ...(value.StringValue !== undefined ? { stringValue: value.StringValue } : {}),
      ...(value.BinaryValue !== undefined ? { binaryValue: b64(value.BinaryValue) } : {}),
      stringListValues: value.StringListValues ?? [],
      binaryListValues: (value.BinaryListValues ?? []).map(b64),
      dataType: value.DataType ?? 'String',
    };
  }
  return out;
}

const SYSTEM_ATTRIBUTES = [
  'ApproximateReceiveCount',
  'SentTimestamp',
  'SenderId',
  'ApproximateFirstReceiveTimestamp',
  'SequenceNumber',
  'MessageGroupId',
  'MessageDeduplicationId',
  'AWSTraceHeader',
  'DeadLetterQueueSourceArn',
] as const;

/** One received message as a Lambda SQS event record. */
export function toRecord(message: Message, queueName: string): SQSRecord {
  const attributes: Record<string, string> = {};
  for (const name of SYSTEM_ATTRIBUTES) {
    const value = message.Attributes?.[name];
    if (value !== undefined) attributes[name] = value;
  }
  return {
    messageId: message.MessageId!,
    receiptHandle: message.ReceiptHandle!,
    body: message.Body ?? '',
    attributes: attributes as unknown as SQSRecord['attributes'],
    messageAttributes: eventAttributes(message.MessageAttributes),
    md5OfBody: message.MD5OfBody ?? '',
    ...(message.MD5OfMessageAttributes ? { md5OfMessageAttributes: message.MD5OfMessageAttributes } : {}),
    eventSource: 'aws:sqs',
    eventSourceARN: `arn:aws:sqs:${LOCAL_REGION}:${LOCAL_ACCOUNT_ID}:${queueName}`,
    awsRegion: LOCAL_REGION,
  };
}

/** Records to delete after an invocation: all but the reported failures; none on an invalid report. */
export function recordsToDelete(records: SQSRecord[], result: unknown): SQSRecord[] {
  const failures = (result as Partial<SQSBatchResponse> | undefined)?.batchItemFailures;
  if (failures === undefined || failures === null) return records;
  if (!Array.isArray(failures)) return [];
  const ids = new Set(records.map((r) => r.messageId));
  const failed = new Set<string>();
  for (const failure of failures) {
    const id = (failure as { itemIdentifier?: unknown })?.itemIdentifier;
    if (typeof id !== 'string' || !ids.has(id)) return []; // Lambda: the whole batch failed
    failed.add(id);
  }
  return records.filter((r) => !failed.has(r.messageId));
}

export class QueuePoller {
  private readonly abort = new AbortController();
  private loop?: Promise<void>;
  private busy = false;

  constructor(private readonly options: QueuePollerOptions) {}

  /** The queue this poller consumes. */
  get queueUrl(): string {
    return this.options.queueUrl;
  }

  /** True while a received batch is being processed (invocation and deletes). */
  get processing(): boolean {
    return this.busy;
  }

  start(): void {
    this.loop ??= this.run();
  }

  private async run(): Promise<void> {
    const { sqs, queueUrl, consumer, pollWaitMs, logger } = this.options;
    const signal = this.abort.signal;
    while (!signal.aborted) {
      let messages: Message[] = [];
      try {
        const received = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: consumer.batchSize,
            WaitTimeSeconds: 0,
            MessageSystemAttributeNames: ['All'],
            MessageAttributeNames: ['All'],
          }),
          { abortSignal: signal },
        );
        messages = received.Messages ?? [];
      } catch (err) {
        if (signal.aborted) break;
        logger(`poller ${this.options.queueName}: receive failed: ${(err as Error).message}`);
        await sleep(1000, signal);
        continue;
      }
      if (messages.length === 0) {
        await sleep(pollWaitMs, signal);
        continue;
      }
      this.busy = true;
      try {
        await this.process(messages);
      } finally {
        this.busy = false;
      }
    }
  }

  private async process(messages: Message[]): Promise<void> {
    const { sqs, invoker, queueUrl, queueName, consumer, logger } = this.options;
    const records = messages.map((m) => toRecord(m, queueName));
    const event: SQSEvent = { Records: records };
    let toDelete: SQSRecord[];
    try {
      const result = await invoker.invoke(consumer.function as FunctionId, event);
      toDelete = recordsToDelete(records, result);
      if (toDelete.length < records.length) logger(`poller ${queueName}: ${records.length - toDelete.length} of ${records.length} records failed; they return after the visibility timeout`);
    } catch (err) {
      logger(`poller ${queueName}: ${consumer.function} failed, whole batch of ${records.length} returns after the visibility timeout: ${(err as Error)?.stack ?? String(err)}`);
      toDelete = [];
    }
    for (let i = 0; i < toDelete.length; i += 10) {
      const chunk = toDelete.slice(i, i + 10);
      try {
        const out = await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: chunk.map((r, j) => ({ Id: String(j), ReceiptHandle: r.receiptHandle })) }));
        if (out.Failed?.length) logger(`poller ${queueName}: ${out.Failed.length} deletes failed: ${JSON.stringify(out.Failed)}`);
      } catch (err) {
        logger(`poller ${queueName}: delete failed: ${(err as Error).message}`);
      }
    }
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }
}
