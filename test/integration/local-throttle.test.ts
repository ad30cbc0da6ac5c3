/**
 * Local mode throttles and runs things concurrently where AWS does (real runtime, real `ws`
 * clients, the Management API through the v3 SDK with `maxAttempts: 1`, the SQS emulator):
 *
 * - the Management API's optional rate limit (a token bucket like API Gateway's account-wide
 *   throttle): a burst gets exactly `burst` calls through and 429 LimitExceededException for the
 *   rest, delivering nothing; a client paced under the rate meets no 429; POST, GET and DELETE
 *   all take tokens; `managementStats()` counts what the sockets really received; the limit
 *   changes and turns off at runtime;
 * - the queue poller runs several batches at once: up to the consumer's `maxConcurrency` on the
 *   standard fan-out queue, and on the FIFO uplink queue batches of different message groups at
 *   once while a group is never in two batches and keeps its order (fauxqs's group locking,
 *   checked here under concurrent receives).
 *
 * Both queue consumers are the held-consumer fixture, which holds each invocation until released.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Agent } from 'node:http';
import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  GetConnectionCommand,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { queues } from '../../lib/gateway-declaration';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../local/local-names';
import type { ManagementStats } from '../../local/management-api';
import { DEFAULT_POLLER_CONCURRENCY } from '../../local/queue-poller';
import type { HeldConsumerState } from './fixtures/held-consumer';
import { startTestGateway, type TestGateway } from '../support/test-gateway';
import { TestClient, eventually } from '../support/ws-test-client';

const FIXTURE = 'test/integration/fixtures/held-consumer.ts';
/** The limit the gateway starts with: 10 at once, then one every 10 s (no refill during a test). */
const START_LIMIT = { ratePerSecond: 0.1, burst: 10 };

let t: TestGateway;
let api: ApiGatewayManagementApiClient;
let sqs: SQSClient;
const clients: TestClient[] = [];

/**
 * "Fired at once": every call of a burst is held after signing, right before it goes on the
 * wire, until all of them are ready (the SDK takes a few ms per call to build and sign it, which
 * would otherwise spread the burst out over hundreds of ms on a busy machine). Resolves with the
 * time the burst was released.
 */
let gate: { expected: number; ready: number; open: () => void; opened: Promise<number> } | undefined;
function armBurst(expected: number): Promise<number> {
  let open!: () => void;
  const opened = new Promise<number>((resolve) => (open = () => resolve(performance.now())));
  gate = { expected, ready: 0, open, opened };
  return opened;
}

beforeAll(async () => {
  t = await startTestGateway({
    managementRateLimit: START_LIMIT,
    queueVisibilityTimeoutSeconds: 2,
    pollWaitMs: 50,
    sweepIntervalMs: 3_600_000,
    functionOverrides: { [queues.fanout.consumer.function]: FIXTURE, [queues.uplink.consumer.function]: FIXTURE },
  });
  api = new ApiGatewayManagementApiClient({
    endpoint: t.gateway.managementEndpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    maxAttempts: 1,
    // Enough sockets for 100 calls to be on the wire at once (the SDK's default agent keeps 50).
    // Idle sockets are dropped after 2 s, well before the server's 5 s keep-alive timeout: with
    // maxAttempts 1, reusing a socket the server is just closing would fail a call (ECONNRESET).
    requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets: 200, timeout: 2_000 }) },
  });
  api.middlewareStack.add(
    (next) => async (args) => {
      const burst = gate;
      if (burst) {
        if (++burst.ready >= burst.expected) {
          gate = undefined;
          burst.open();
        }
        await burst.opened;
      }
      return next(args);
    },
    { step: 'finalizeRequest', priority: 'low', name: 'burstGate' },
  );
  sqs = new SQSClient({ endpoint: t.gateway.sqsEndpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
}, 60_000);

afterAll(async () => {
  const held = fixture(); // undefined when no consumer ran
  if (held) {
    held.autoRelease = true;
    held.release();
  }
  for (const client of clients) if (client.isOpen) await client.close();
  api?.destroy();
  sqs?.destroy();
  await t?.stop();
}, 60_000);

const fixture = () => (globalThis as unknown as { __heldConsumer: HeldConsumerState }).__heldConsumer;

async function connectAs(userId: string): Promise<{ client: TestClient; connectionId: string }> {
  const client = await TestClient.as(t.gateway.wsUrl, userId, 'd1');
  clients.push(client);
  const rows = await eventually(
    async () =>
      (
        await t.ddb.send(
          new QueryCommand({
            TableName: t.gateway.tableNames.connections,
            IndexName: 'byUser',
            KeyConditionExpression: 'userId = :u',
            ExpressionAttributeValues: { ':u': userId },
          }),
        )
      ).Items ?? [],
    (items) => items.length === 1,
    5_000,
    `the connection row of ${userId}`,
  );
  return { client, connectionId: rows[0]!.connectionId as string };
}

type Outcome = 'ok' | { name: string; status?: number };
const outcome = (promise: Promise<unknown>): Promise<Outcome> =>
  promise.then(
    () => 'ok' as const,
    (err: { name: string; $metadata?: { httpStatusCode?: number } }) => ({ name: err.name, status: err.$metadata?.httpStatusCode }),
  );
const post = (connectionId: string, frame: object) =>
  outcome(api.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: new TextEncoder().encode(JSON.stringify(frame)) })));
const get = (connectionId: string) => outcome(api.send(new GetConnectionCommand({ ConnectionId: connectionId })));
const del = (connectionId: string) => outcome(api.send(new DeleteConnectionCommand({ ConnectionId: connectionId })));
const THROTTLED = { name: 'LimitExceededException', status: 429 };
const countOk = (outcomes: Outcome[]) => outcomes.filter((o) => o === 'ok').length;

/** The change of every counter between two snapshots. */
function delta(before: ManagementStats, after: ManagementStats): ManagementStats {
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k as keyof ManagementStats]])) as unknown as ManagementStats;
}

/** Waits until a marker posted now (with the limit lifted for it) arrives: every earlier frame has arrived too. */
async function flush(client: TestClient, connectionId: string, restore: { ratePerSecond: number; burst: number } | undefined): Promise<void> {
  const marker = `flush-${Math.random().toString(36).slice(2)}`;
  t.gateway.setManagementRateLimit(undefined);
  expect(await post(connectionId, { type: 'flush', marker })).toBe('ok');
  t.gateway.setManagementRateLimit(restore);
  await client.waitFor((f) => f.type === 'flush' && f.marker === marker, 5_000, 'the flush marker');
}

describe('Management API rate limit', () => {
  test('the limit given at start applies to GET from the first call: exactly the burst passes', async () => {
    const { connectionId } = await connectAs('throttle-start');
    const before = t.gateway.managementStats();
    const released = armBurst(20);
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => get(connectionId)));
    // At 0.1/s a token comes back only if the burst took over 10 s.
    expect(performance.now() - (await released)).toBeLessThan(10_000);
    expect(countOk(outcomes)).toBe(START_LIMIT.burst);
    for (const o of outcomes.filter((o) => o !== 'ok')) expect(o).toEqual(THROTTLED);
    expect(delta(before, t.gateway.managementStats())).toMatchObject({ gets: 20, allowed: 10, throttled: 10, rateLimited: 10, delivered: 0 });
  }, 30_000);

  test('100 posts at once at 50/s, burst 10: the burst is delivered, the rest answer 429 and deliver nothing', async () => {
    const { client, connectionId } = await connectAs('throttle-burst');
    // Open enough keep-alive sockets first, so the 100 posts reach the server together.
    t.gateway.setManagementRateLimit(undefined);
    expect(countOk(await Promise.all(Array.from({ length: 100 }, () => get(connectionId))))).toBe(100);

    const limit = { ratePerSecond: 50, burst: 10 };
    t.gateway.setManagementRateLimit(limit);
    const before = t.gateway.managementStats();
    const released = armBurst(100);
    const outcomes = await Promise.all(Array.from({ length: 100 }, (_, n) => post(connectionId, { type: 'burst', n })));
    const windowMs = performance.now() - (await released);
    const okCount = countOk(outcomes);
    // Exactly the burst, plus the tokens that came back while the burst was arriving: one per
    // 20 ms at 50/s, so one at most when the server takes the 100 calls within 20 ms (on a loaded
    // machine it may take longer: the calls reached the server between release and last answer).
    const refilled = Math.floor((windowMs * limit.ratePerSecond) / 1000) + 1;
    expect(okCount).toBeGreaterThanOrEqual(limit.burst);
    if (okCount > limit.burst + Math.max(1, refilled)) {
      throw new Error(`${okCount} of 100 posts went through in ${windowMs.toFixed(1)} ms: more than burst ${limit.burst} + ${refilled} refilled`);
    }
    for (const o of outcomes.filter((o) => o !== 'ok')) expect(o).toEqual(THROTTLED);

    await flush(client, connectionId, limit);
    const received = client.frames.filter((f) => f.type === 'burst').map((f) => f.n as number);
    const accepted = outcomes.flatMap((o, n) => (o === 'ok' ? [n] : []));
    expect([...received].sort((a, b) => a - b)).toEqual(accepted);
    const counted = delta(before, t.gateway.managementStats());
    expect(counted).toMatchObject({ throttled: 100 - okCount, rateLimited: 100 - okCount, errors: 0, gone: 0 });
    // The flush marker is one more post, delivered.
    expect(counted.posts).toBe(101);
    expect(counted.delivered).toBe(received.length + 1);
    expect(counted.allowed).toBe(received.length + 1);
  }, 30_000);

  test('a client pacing itself at 40/s for 2 s meets no 429; one sending 80/s does; the counts match the socket', async () => {
    const { client, connectionId } = await connectAs('throttle-paced');
    const limit = { ratePerSecond: 50, burst: 10 };
    /** Posts `count` frames; `nextAt(n, lastSentAt)` is when post n may go. */
    const run = async (tag: string, count: number, nextAt: (n: number, lastSentAt: number) => number) => {
      t.gateway.setManagementRateLimit(limit); // a fresh, full bucket
      const before = t.gateway.managementStats();
      const pending: Array<Promise<Outcome>> = [];
      let lastSentAt = -Infinity;
      for (let n = 0; n < count; n++) {
        const wait = nextAt(n, lastSentAt) - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        lastSentAt = performance.now();
        pending.push(post(connectionId, { type: tag, n }));
      }
      const outcomes = await Promise.all(pending);
      await flush(client, connectionId, limit);
      const received = client.frames.filter((f) => f.type === tag).length;
      return { outcomes, received, counted: delta(before, t.gateway.managementStats()) };
    };

    // Paced as a sender should pace: at least 25 ms between two posts, never catching up after
    // a late timer (catching up would send a burst).
    const paced = await run('paced40', 80, (_, lastSentAt) => lastSentAt + 25);
    expect(paced.outcomes.filter((o) => o !== 'ok')).toEqual([]);
    expect(paced.received).toBe(80);
    expect(paced.counted).toMatchObject({ posts: 81, delivered: 81, throttled: 0 });

    // 80/s on a fixed schedule for 2 s: at most 10 + 50/s * ~2 s of the 160 can pass.
    const start = performance.now();
    const fast = await run('fast80', 160, (n) => start + n * 12.5);
    const throttled = fast.outcomes.filter((o) => o !== 'ok');
    expect(throttled.length).toBeGreaterThan(0);
    for (const o of throttled) expect(o).toEqual(THROTTLED);
    expect(fast.received).toBe(160 - throttled.length);
    expect(fast.counted).toMatchObject({ posts: 161, delivered: fast.received + 1, throttled: throttled.length, rateLimited: throttled.length });
  }, 60_000);

  test('GET and DELETE take tokens too: a throttled DELETE closes nothing', async () => {
    const { client, connectionId } = await connectAs('throttle-methods');
    t.gateway.setManagementRateLimit({ ratePerSecond: 0.1, burst: 1 }); // one call, then one per 10 s
    expect(await get(connectionId)).toBe('ok');
    expect(await get(connectionId)).toEqual(THROTTLED);
    expect(await del(connectionId)).toEqual(THROTTLED);
    expect(await post(connectionId, { type: 'after-delete' })).toEqual(THROTTLED);
    expect(client.isOpen).toBe(true);
    t.gateway.setManagementRateLimit(undefined);
    expect(await del(connectionId)).toBe('ok');
    expect((await client.whenClosed()).code).toBe(1000);
    expect(client.frames.filter((f) => f.type === 'after-delete')).toEqual([]);
  });

  test('turned off at runtime, 100 posts at once all go through', async () => {
    const { client, connectionId } = await connectAs('throttle-off');
    t.gateway.setManagementRateLimit({ ratePerSecond: 50, burst: 10 });
    t.gateway.setManagementRateLimit(undefined);
    const before = t.gateway.managementStats();
    const outcomes = await Promise.all(Array.from({ length: 100 }, (_, n) => post(connectionId, { type: 'free', n })));
    expect(outcomes.filter((o) => o !== 'ok')).toEqual([]);
    await client.waitFor(() => client.frames.filter((f) => f.type === 'free').length === 100, 5_000, '100 frames');
    expect(delta(before, t.gateway.managementStats())).toMatchObject({ posts: 100, allowed: 100, delivered: 100, throttled: 0 });
  });

  test('the fault switch throttle answers the same 429 and is counted as throttled, not rate-limited', async () => {
    const { connectionId } = await connectAs('throttle-fault');
    t.gateway.setManagementRateLimit(undefined);
    const before = t.gateway.managementStats();
    t.gateway.setManagementFaults({ throttleRatio: 1 });
    try {
      expect(await post(connectionId, { type: 'faulted' })).toEqual(THROTTLED);
    } finally {
      t.gateway.setManagementFaults(undefined);
    }
    expect(delta(before, t.gateway.managementStats())).toMatchObject({ posts: 1, throttled: 1, rateLimited: 0, allowed: 0, delivered: 0 });
  });

  test('bad limits are refused', () => {
    expect(() => t.gateway.setManagementRateLimit({ ratePerSecond: 0, burst: 10 })).toThrow(/ratePerSecond/);
    expect(() => t.gateway.setManagementRateLimit({ ratePerSecond: 10, burst: 0 })).toThrow(/burst/);
    t.gateway.setManagementRateLimit(undefined);
  });
});

describe('queue poller concurrency', () => {
  const queueNameOf = (url: string) => url.split('/').pop()!;
  const reset = () => {
    const state = fixture();
    state.autoRelease = false;
    state.invocations.length = 0;
    state.done.length = 0;
    state.groupOverlaps.length = 0;
    state.running = {};
    state.maxRunning = {};
  };
  const running = (queue: string) => fixture()?.running[queue] ?? 0;

  test('the fan-out queue runs its maxConcurrency batches at once, never more', async () => {
    // The fixture module loads on the first invocation; its state exists from then on.
    const fanout = queueNameOf(t.gateway.queueUrls.fanout);
    const max = queues.fanout.consumer.maxConcurrency;
    expect(max).toBe(2);
    if (fixture()) reset();
    for (let n = 0; n < 5; n++) await sqs.send(new SendMessageCommand({ QueueUrl: t.gateway.queueUrls.fanout, MessageBody: JSON.stringify({ task: n }) }));
    await eventually(async () => running(fanout), (r) => r === max, 10_000, `${max} fan-out batches in flight`);
    // Several poll periods with two batches held and three messages waiting: no third batch.
    await new Promise((r) => setTimeout(r, 500));
    expect(running(fanout)).toBe(max);
    expect(fixture().maxRunning[fanout]).toBe(max);
    expect(fixture().invocations).toHaveLength(max);

    fixture().autoRelease = true;
    fixture().release();
    await t.gateway.drainQueues(20_000);
    expect(fixture().maxRunning[fanout]).toBe(max);
    const tasks = fixture().done.map((r) => r.body.task as number);
    expect([...tasks].sort()).toEqual([0, 1, 2, 3, 4]);
  }, 40_000);

  test('the FIFO uplink queue runs batches of different groups at once; a group is never in two, and keeps its order', async () => {
    const uplink = queueNameOf(t.gateway.queueUrls.uplink);
    reset();
    let dedup = 0;
    const send = (group: string, seq: number, extra: object = {}) =>
      sqs.send(
        new SendMessageCommand({
          QueueUrl: t.gateway.queueUrls.uplink,
          MessageBody: JSON.stringify({ group, seq, ...extra }),
          MessageGroupId: group,
          MessageDeduplicationId: `d${++dedup}-${Date.now()}`,
        }),
      );
    const sendGroup = async (group: string, failOnce?: number) => {
      for (let seq = 1; seq <= 5; seq++) await send(group, seq, seq === failOnce ? { fail: 'once' } : {});
    };

    // Group A's first message is taken and held; group B arriving meanwhile runs at once beside
    // it, while the rest of A (and of B) waits for its group's message in flight.
    await sendGroup('A');
    await eventually(async () => running(uplink), (r) => r === 1, 10_000, 'the first uplink batch');
    await sendGroup('B');
    await eventually(async () => running(uplink), (r) => r === 2, 10_000, 'a second uplink batch beside the first');
    await new Promise((r) => setTimeout(r, 500));
    expect(running(uplink)).toBe(2);
    const held = fixture().invocations.flat().map((r) => `${r.group}${r.body.seq}`);
    expect(held.sort()).toEqual(['A1', 'B1']);
    expect(fixture().groupOverlaps).toEqual([]);

    // Release everything; more groups arrive, one message fails once (back after the visibility timeout).
    fixture().autoRelease = true;
    fixture().release();
    await Promise.all([sendGroup('C', 3), sendGroup('D'), sendGroup('E')]);
    await t.gateway.drainQueues(30_000);

    expect(fixture().groupOverlaps).toEqual([]);
    expect(fixture().maxRunning[uplink]).toBeGreaterThanOrEqual(2);
    expect(fixture().maxRunning[uplink]).toBeLessThanOrEqual(DEFAULT_POLLER_CONCURRENCY);
    for (const group of ['A', 'B', 'C', 'D', 'E']) {
      const order = fixture()
        .done.filter((r) => r.group === group)
        .map((r) => r.body.seq);
      expect({ group, order }).toEqual({ group, order: [1, 2, 3, 4, 5] });
    }
    // C3 really failed once and came back.
    expect(fixture().invocations.flat().filter((r) => r.group === 'C' && r.body.seq === 3)).toHaveLength(2);
  }, 60_000);
});
