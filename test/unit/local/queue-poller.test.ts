import { describe, expect, test } from '@jest/globals';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import type { LambdaInvoker } from '../../../local/lambda-invoker';
import { DEFAULT_POLLER_CONCURRENCY, pollerConcurrency, QueuePoller } from '../../../local/queue-poller';

/**
 * The poller's concurrency against an in-memory standard queue and a consumer the test holds:
 * how many batches run at once, `processing`, deletes, idle polling and stop().
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(probe: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error('until: timed out');
    await sleep(2);
  }
}

class FakeQueue {
  private visible: Message[] = [];
  readonly inFlight = new Map<string, Message>();
  readonly deleted: string[] = [];
  receives = 0;
  private seq = 0;

  push(n: number): void {
    for (let i = 0; i < n; i++) {
      const id = `m${++this.seq}`;
      this.visible.push({ MessageId: id, ReceiptHandle: `rh-${id}`, Body: JSON.stringify({ n: this.seq }), Attributes: { ApproximateReceiveCount: '1' } });
    }
  }

  readonly client = {
    send: async (command: unknown) => {
      await Promise.resolve();
      if (command instanceof ReceiveMessageCommand) {
        this.receives++;
        const batch = this.visible.splice(0, command.input.MaxNumberOfMessages ?? 1);
        for (const m of batch) this.inFlight.set(m.ReceiptHandle!, m);
        return { Messages: batch };
      }
      if (command instanceof DeleteMessageBatchCommand) {
        for (const entry of command.input.Entries ?? []) {
          const m = this.inFlight.get(entry.ReceiptHandle!);
          if (m) this.deleted.push(m.MessageId!);
          this.inFlight.delete(entry.ReceiptHandle!);
        }
        return { Successful: command.input.Entries?.map((e) => ({ Id: e.Id })), Failed: [] };
      }
      throw new Error(`unexpected command ${String(command)}`);
    },
  };
}

/** A consumer whose invocations wait until the test releases them. */
class HeldConsumer {
  running = 0;
  maxRunning = 0;
  invocations = 0;
  private gates: Array<() => void> = [];

  readonly invoker = {
    invoke: async (_id: string, _event: SQSEvent) => {
      this.invocations++;
      this.running++;
      this.maxRunning = Math.max(this.maxRunning, this.running);
      await new Promise<void>((resolve) => this.gates.push(resolve));
      this.running--;
      return { batchItemFailures: [] };
    },
  };

  releaseAll(): void {
    for (const open of this.gates.splice(0)) open();
  }
}

function poller(queue: FakeQueue, consumer: HeldConsumer, maxConcurrency?: number, pollWaitMs = 5) {
  return new QueuePoller({
    sqs: queue.client as unknown as SQSClient,
    invoker: consumer.invoker as unknown as LambdaInvoker,
    queueUrl: 'http://queue/fanout',
    queueName: 'fanout',
    consumer: { function: 'fanoutWorker', batchSize: 1, ...(maxConcurrency ? { maxConcurrency } : {}) },
    logger: () => undefined,
    pollWaitMs,
  });
}

describe('QueuePoller concurrency', () => {
  test('the default is the consumer maxConcurrency, else 5', () => {
    expect(DEFAULT_POLLER_CONCURRENCY).toBe(5);
    expect(pollerConcurrency({ function: 'x', batchSize: 1 })).toBe(5);
    expect(pollerConcurrency({ function: 'x', batchSize: 1, maxConcurrency: 2 })).toBe(2);
    expect(() => poller(new FakeQueue(), new HeldConsumer(), 0.5)).toThrow(RangeError);
  });

  test('runs up to maxConcurrency batches at once, never more; processing while any runs', async () => {
    const queue = new FakeQueue();
    const consumer = new HeldConsumer();
    const p = poller(queue, consumer, 2);
    queue.push(7);
    p.start();
    try {
      await until(() => consumer.running === 2);
      expect(p.processing).toBe(true);
      expect(p.batchesInFlight).toBe(2);
      await sleep(50); // ten poll periods: no third batch starts while two are held
      expect(consumer.maxRunning).toBe(2);
      expect(queue.inFlight.size).toBe(2);
      while (queue.deleted.length < 7) {
        consumer.releaseAll();
        await sleep(5);
      }
      await until(() => !p.processing);
      expect(consumer.maxRunning).toBe(2);
      expect(consumer.invocations).toBe(7);
      expect(new Set(queue.deleted).size).toBe(7);
    } finally {
      consumer.releaseAll();
      await p.stop();
    }
  });

  test('without maxConcurrency, five batches run at once', async () => {
    const queue = new FakeQueue();
    const consumer = new HeldConsumer();
    const p = poller(queue, consumer);
    queue.push(12);
    p.start();
    try {
      await until(() => consumer.running === 5);
      await sleep(30);
      expect(consumer.maxRunning).toBe(5);
    } finally {
      while (queue.deleted.length < 12) {
        consumer.releaseAll();
        await sleep(5);
      }
      await p.stop();
    }
  });

  test('messages that arrive while a batch is held are picked up by another loop', async () => {
    const queue = new FakeQueue();
    const consumer = new HeldConsumer();
    const p = poller(queue, consumer, 3);
    p.start();
    try {
      await sleep(30); // every loop has found the queue empty; the extra ones sleep
      queue.push(1);
      await until(() => consumer.running === 1);
      queue.push(1); // the first batch is still held: a second loop must take this one
      await until(() => consumer.running === 2);
      queue.push(1);
      await until(() => consumer.running === 3);
    } finally {
      while (queue.deleted.length < 3) {
        consumer.releaseAll();
        await sleep(5);
      }
      await p.stop();
    }
  });

  test('an idle queue is polled by one loop only', async () => {
    const queue = new FakeQueue();
    const consumer = new HeldConsumer();
    const p = poller(queue, consumer, 5, 10);
    p.start();
    await sleep(20);
    const before = queue.receives;
    await sleep(200);
    const during = queue.receives - before;
    await p.stop();
    // One loop every 10 ms is ~20 receives; five loops would be ~100.
    expect(during).toBeLessThanOrEqual(30);
    expect(during).toBeGreaterThanOrEqual(5);
  });

  test('stop() ends idle and sleeping loops at once and waits for batches in flight', async () => {
    const queue = new FakeQueue();
    const consumer = new HeldConsumer();
    const p = poller(queue, consumer, 3, 60_000);
    queue.push(2);
    p.start();
    await until(() => consumer.running === 2);
    let stopped = false;
    const stopping = p.stop().then(() => (stopped = true));
    await sleep(30);
    expect(stopped).toBe(false); // two batches are still held
    consumer.releaseAll();
    await stopping;
    expect(p.processing).toBe(false);
    expect(queue.deleted).toHaveLength(2);
    const receives = queue.receives;
    await sleep(30);
    expect(queue.receives).toBe(receives);
  });
});
