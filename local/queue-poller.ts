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
 * Concurrency, as Lambda's: up to `concurrency` batches run at once, each in its own
 * receive -> invoke -> delete loop. The default is the consumer's `maxConcurrency` (the event
 * source mapping's maximum concurrency) or else `DEFAULT_POLLER_CONCURRENCY` (5: Lambda starts
 * polling a queue with five concurrent batches and only scales up from there). This holds for
 * FIFO queues too: Lambda runs batches of different message groups concurrently, and SQS never
 * hands out a message of a group that has a message in flight, so one group is in at most one
 * batch at a time and keeps its order (the emulator, fauxqs, locks groups the same way; the
 * integration test local-throttle.test.ts checks it with concurrent receives).
 *
 * Idle cost: only the first loop polls an idle queue (every `pollWaitMs`); the others sleep
 * until a receive finds messages, and keep polling while any batch of the queue is running.
 */
export const DEFAULT_POLLER_CONCURRENCY = 5;

/** Concurrent batches for a consumer: its `maxConcurrency`, else `DEFAULT_POLLER_CONCURRENCY`. */
export function pollerConcurrency(consumer: QueueConsumerDeclaration): number {
  return consumer.maxConcurrency ?? DEFAULT_POLLER_CONCURRENCY;
}

export interface QueuePollerOptions {
  sqs: SQSClient;
  invoker: LambdaInvoker;
  queueUrl: string;
  queueName: string;
  consumer: QueueConsumerDeclaration;
  logger: (line: string) => void;
  /** Idle wait after an empty receive. */
  pollWaitMs: number;
  /** Batches processed at once (integer >= 1); default `pollerConcurrency(consumer)`. */
  concurrency?: number;
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
  private loops?: Promise<void>;
  /** Loops currently processing a batch. */
  private busyLoops = 0;
  /** Loops sleeping until a receive finds messages. */
  private dormant: Array<() => void> = [];
  /** Bumped whenever a receive finds messages, so a loop never sleeps through a wake-up it raced with. */
  private wakeGeneration = 0;
  readonly concurrency: number;

  constructor(private readonly options: QueuePollerOptions) {
    this.concurrency = options.concurrency ?? pollerConcurrency(options.consumer);
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) {
      throw new RangeError(`poller ${options.queueName}: concurrency must be an integer >= 1, got ${this.concurrency}`);
    }
  }

  /** The queue this poller consumes. */
  get queueUrl(): string {
    return this.options.queueUrl;
  }

  /** True while any received batch is being processed (invocation and deletes). */
  get processing(): boolean {
    return this.busyLoops > 0;
  }

  /** Batches being processed right now. */
  get batchesInFlight(): number {
    return this.busyLoops;
  }

  start(): void {
    this.loops ??= Promise.all(Array.from({ length: this.concurrency }, (_, index) => this.run(index))).then(() => undefined);
  }

  private wakeDormant(): void {
    this.wakeGeneration++;
    for (const wake of this.dormant.splice(0)) wake();
  }

  /** Resolves on the next wake-up or on stop. */
  private sleepUntilWoken(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        signal.removeEventListener('abort', done);
        this.dormant = this.dormant.filter((wake) => wake !== done);
        resolve();
      };
      signal.addEventListener('abort', done, { once: true });
      this.dormant.push(done);
    });
  }

  private async run(index: number): Promise<void> {
    const { sqs, queueUrl, consumer, pollWaitMs, logger } = this.options;
    const signal = this.abort.signal;
    while (!signal.aborted) {
      const generation = this.wakeGeneration;
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
        // The first loop keeps polling an idle queue; the others poll while a batch runs (more
        // may come) and otherwise sleep until some receive finds messages.
        if (index === 0 || this.busyLoops > 0) await sleep(pollWaitMs, signal);
        else if (generation === this.wakeGeneration) await this.sleepUntilWoken(signal);
        continue;
      }
      this.wakeDormant();
      this.busyLoops++;
      try {
        await this.process(messages);
      } finally {
        this.busyLoops--;
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

  /** Stops receiving; resolves once every batch already received has been processed. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loops;
  }
}
