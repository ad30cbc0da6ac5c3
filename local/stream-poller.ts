import { DescribeTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DescribeStreamCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type AttributeValue,
  type DynamoDBStreamsClient,
  type _Record as StreamSdkRecord,
} from '@aws-sdk/client-dynamodb-streams';
import type { AttributeValue as EventAttributeValue, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import type { FunctionId } from '../lib/gateway-declaration';
import type { LambdaInvoker } from './lambda-invoker';
import { LOCAL_REGION } from './local-names';
import { sleep } from './sleep';

/**
 * Stands in for a DynamoDB stream event source mapping (starting position TRIM_HORIZON, no
 * partial batch reporting), on DynamoDB Local's Streams API:
 *   - finds the table's latest stream and lists its shards, again on every pass, so child shards
 *     that appear over time are read too, each only after its parent was read to its end;
 *   - reads each shard from TRIM_HORIZON, following NextShardIterator (a new iterator after the
 *     last delivered sequence number if one expires), up to `batchSize` records per batch;
 *   - invokes the consumer with the event Lambda builds (`Records: [{eventID, eventName, ...,
 *     dynamodb: {Keys, NewImage, OldImage, SequenceNumber, ...}, eventSourceARN}]`);
 *   - on failure retries the SAME batch with backoff until it succeeds, and only then moves on,
 *     so a shard is never read past a failed batch (Lambda: retries until success or the records
 *     expire, blocking the shard meanwhile).
 * Shards are read one batch at a time in turn (Lambda reads shards concurrently, each in order):
 * the per-shard order, which consumers rely on, is the same.
 */
export interface StreamPollerOptions {
  dynamodb: DynamoDBClient;
  streams: DynamoDBStreamsClient;
  invoker: LambdaInvoker;
  tableName: string;
  consumer: { readonly function: string; readonly batchSize: number };
  logger: (line: string) => void;
  /** Idle wait after a pass that found no records. */
  pollWaitMs: number;
  /** First retry delay of a failed batch (doubling up to `retryMaxMs`); default 200 ms. */
  retryBaseMs?: number;
  /** Default 5 s. */
  retryMaxMs?: number;
}

interface ShardState {
  id: string;
  parentId?: string;
  iterator?: string;
  /** Sequence number of the last record delivered; a lost iterator restarts after it. */
  lastSequence?: string;
  /** Closed and read to its end. */
  done: boolean;
}

/** A Streams API attribute value as Lambda writes it in the event (binary as base64). */
export function toEventValue(value: AttributeValue): EventAttributeValue {
  const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
  if (value.B !== undefined) return { B: b64(value.B) };
  if (value.BS !== undefined) return { BS: value.BS.map(b64) };
  if (value.L !== undefined) return { L: value.L.map(toEventValue) };
  if (value.M !== undefined) return { M: toEventImage(value.M)! };
  return { ...value } as EventAttributeValue;
}

function toEventImage(image: Record<string, AttributeValue> | undefined): Record<string, EventAttributeValue> | undefined {
  if (!image) return undefined;
  return Object.fromEntries(Object.entries(image).map(([name, value]) => [name, toEventValue(value)]));
}

/** One Streams API record as a record of Lambda's DynamoDB stream event. */
export function toStreamEventRecord(record: StreamSdkRecord, streamArn: string): DynamoDBRecord {
  const d = record.dynamodb ?? {};
  const created = d.ApproximateCreationDateTime;
  return {
    eventID: record.eventID,
    eventName: record.eventName as DynamoDBRecord['eventName'],
    eventVersion: record.eventVersion ?? '1.1',
    eventSource: 'aws:dynamodb',
    awsRegion: LOCAL_REGION,
    dynamodb: {
      ...(created !== undefined ? { ApproximateCreationDateTime: Math.floor(new Date(created).getTime() / 1000) } : {}),
      Keys: toEventImage(d.Keys),
      ...(d.NewImage ? { NewImage: toEventImage(d.NewImage) } : {}),
      ...(d.OldImage ? { OldImage: toEventImage(d.OldImage) } : {}),
      SequenceNumber: d.SequenceNumber,
      SizeBytes: d.SizeBytes,
      StreamViewType: d.StreamViewType,
    },
    eventSourceARN: streamArn,
    ...(record.userIdentity ? { userIdentity: { ...record.userIdentity } } : {}),
  };
}

export class StreamPoller {
  private readonly abort = new AbortController();
  private loop?: Promise<void>;
  private busy = false;
  private streamArn?: string;
  private readonly shards = new Map<string, ShardState>();
  private lastEmptyPass?: number;
  private failures = 0;

  constructor(private readonly options: StreamPollerOptions) {}

  get tableName(): string {
    return this.options.tableName;
  }

  /** True while a batch is in hand: being invoked, or waiting to be retried. */
  get processing(): boolean {
    return this.busy;
  }

  /**
   * True when no batch is in hand and a whole pass (shard listing, then a read of every readable
   * shard) that STARTED at or after `sinceMs` found no record: everything written before
   * `sinceMs` has been delivered.
   */
  caughtUpSince(sinceMs: number): boolean {
    return !this.busy && this.lastEmptyPass !== undefined && this.lastEmptyPass >= sinceMs;
  }

  /** For drain diagnostics. */
  describe(): string {
    const open = [...this.shards.values()].filter((s) => !s.done).length;
    return `stream of ${this.options.tableName}: ${this.busy ? 'batch in hand' : 'idle'}, ${open} open shard(s), ${this.failures} failed invocation(s)`;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { logger, pollWaitMs, tableName } = this.options;
    const signal = this.abort.signal;
    while (!signal.aborted) {
      const passStart = Date.now();
      let found = false;
      try {
        this.streamArn ??= await this.latestStreamArn();
        await this.listShards();
        for (const shard of this.readyShards()) {
          if (signal.aborted) break;
          if (await this.pollShard(shard)) found = true;
        }
      } catch (err) {
        if (signal.aborted) break;
        logger(`stream poller ${tableName}: ${(err as Error).message}`);
        await sleep(1000, signal);
        continue;
      }
      if (!found) {
        this.lastEmptyPass = passStart;
        await sleep(pollWaitMs, signal);
      }
    }
  }

  private async latestStreamArn(): Promise<string> {
    const { Table } = await this.options.dynamodb.send(new DescribeTableCommand({ TableName: this.options.tableName }), { abortSignal: this.abort.signal });
    if (!Table?.LatestStreamArn) throw new Error(`table ${this.options.tableName} has no stream`);
    return Table.LatestStreamArn;
  }

  private async listShards(): Promise<void> {
    let ExclusiveStartShardId: string | undefined;
    do {
      const { StreamDescription } = await this.options.streams.send(new DescribeStreamCommand({ StreamArn: this.streamArn, ExclusiveStartShardId }), {
        abortSignal: this.abort.signal,
      });
      for (const shard of StreamDescription?.Shards ?? []) {
        if (shard.ShardId && !this.shards.has(shard.ShardId)) {
          this.shards.set(shard.ShardId, { id: shard.ShardId, parentId: shard.ParentShardId, done: false });
        }
      }
      ExclusiveStartShardId = StreamDescription?.LastEvaluatedShardId;
    } while (ExclusiveStartShardId);
  }

  /** Open shards whose parent (if still listed) has been read to its end. */
  private readyShards(): ShardState[] {
    return [...this.shards.values()].filter((s) => !s.done && (!s.parentId || !this.shards.has(s.parentId) || this.shards.get(s.parentId)!.done));
  }

  /** Reads one batch of a shard and delivers it; true when it found records (or must look again). */
  private async pollShard(shard: ShardState): Promise<boolean> {
    const { streams, consumer, logger, tableName } = this.options;
    const signal = this.abort.signal;
    if (!shard.iterator) {
      const { ShardIterator } = await streams.send(
        new GetShardIteratorCommand({
          StreamArn: this.streamArn,
          ShardId: shard.id,
          ...(shard.lastSequence ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', SequenceNumber: shard.lastSequence } : { ShardIteratorType: 'TRIM_HORIZON' }),
        }),
        { abortSignal: signal },
      );
      if (!ShardIterator) {
        shard.done = true;
        return false;
      }
      shard.iterator = ShardIterator;
    }
    let page;
    try {
      page = await streams.send(new GetRecordsCommand({ ShardIterator: shard.iterator, Limit: consumer.batchSize }), { abortSignal: signal });
    } catch (err) {
      const name = (err as Error).name;
      if (name !== 'ExpiredIteratorException' && name !== 'TrimmedDataAccessException') throw err;
      if (name === 'TrimmedDataAccessException') {
        logger(`stream poller ${tableName}: shard ${shard.id} was trimmed past the last delivered record; going on from its oldest record`);
        shard.lastSequence = undefined;
      }
      shard.iterator = undefined;
      return true; // not known to be caught up: read again
    }
    const records = page.Records ?? [];
    if (records.length > 0) {
      this.busy = true;
      try {
        const event: DynamoDBStreamEvent = { Records: records.map((r) => toStreamEventRecord(r, this.streamArn!)) };
        if (!(await this.deliver(event))) return true; // stopping: the batch stays unread
        shard.lastSequence = records[records.length - 1]!.dynamodb?.SequenceNumber ?? shard.lastSequence;
      } finally {
        this.busy = false;
      }
    }
    if (page.NextShardIterator) shard.iterator = page.NextShardIterator;
    else {
      shard.iterator = undefined;
      shard.done = true; // closed, and every record of it delivered
    }
    return records.length > 0;
  }

  /** Invokes the consumer until it succeeds; false if stopped first. */
  private async deliver(event: DynamoDBStreamEvent): Promise<boolean> {
    const { invoker, consumer, logger, tableName } = this.options;
    const base = this.options.retryBaseMs ?? 200;
    const max = this.options.retryMaxMs ?? 5000;
    const signal = this.abort.signal;
    for (let attempt = 1; !signal.aborted; attempt++) {
      try {
        await invoker.invoke(consumer.function as FunctionId, event);
        return true;
      } catch (err) {
        this.failures++;
        const delay = Math.min(max, base * 2 ** (attempt - 1));
        logger(
          `stream poller ${tableName}: ${consumer.function} failed (attempt ${attempt}) on a batch of ${event.Records.length}; ` +
            `the same batch again in ${delay} ms: ${(err as Error)?.stack ?? String(err)}`,
        );
        await sleep(delay, signal);
      }
    }
    return false;
  }
}
