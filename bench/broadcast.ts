/**
 * The broadcast phase of `npm run bench` (docs/performance.md, "Broadcast"): K real WebSocket
 * connections to the local runtime, and one frame to all of them, four ways in one run:
 *
 * 1. wxgate: a signed `POST /v1/push {"to":{"all":true}}`; a fan-out job scans the connections
 *    table and posts, paced under FANOUT_POSTS_PER_SECOND, retrying 429s.
 * 2. the naive floor: the connection ids read from the connections table beforehand, then one
 *    PostToConnection per id, all fired at once (Promise.all, `maxAttempts: 1`, no retry).
 * 3. and 4.: both again under a local Management API rate limit (a fresh, full token bucket each).
 *
 * For each: the time from the request (or the first post) to the last socket receiving the frame,
 * the sockets that got it (and lost = K - got), duplicates, and the Management API calls and 429s
 * the run made (`managementStats()` deltas).
 */
import { Agent } from 'node:http';
import { ApiGatewayManagementApiClient, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { DynamoDBClient, ScanCommand, type ScanCommandOutput } from '@aws-sdk/client-dynamodb';
import WebSocket from 'ws';
import { queues } from '../lib/gateway-declaration';
import { defaultDeliverySettings } from '../lambdas/domain/delivery';
import { fanoutSettings } from '../lambdas/domain/fanout';
import { issueClientToken } from '../lambdas/domain/client-token';
import { fanoutPostsPerSecond } from '../lambdas/runtime/config';
import type { LocalGateway } from '../local/local-gateway';
import type { ManagementStats } from '../local/management-api';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../local/local-names';
import type { RateLimit } from '../local/token-bucket';
import { adminRequest, type AdminKey } from './admin';
import { nowMs } from './bench-client';
import { ratio, round, summarize, type LatencySummary } from './stats';

/** Sockets opened at once (the integration test's batch). */
const CONNECT_BATCH = 50;
const CONNECT_TIMEOUT_MS = 30_000;
/** Sockets closed at once at the end of the phase. */
const CLOSE_BATCH = 100;
/** How often the bench asks `GET /v1/jobs/{jobId}` (each is a signed request: one nonce write). */
const JOB_POLL_MS = 100;
/** A job still not done after this is reported as such (its frames may still be on their way). */
const JOB_TIMEOUT_MS = 120_000;
/**
 * Once the job is done or the naive posts are answered (a 200 means the frame was handed to the
 * socket), frames still in flight on loopback get this long to arrive.
 */
const GRACE_MS = 5_000;
const QUIET_TIMEOUT_MS = 60_000;
/** Socket n belongs to user `bench-bc-{n}`: `$connect` closes a user's connections beyond MAX_CONNECTIONS_PER_USER (10). */
export const BROADCAST_USER = 'bench-bc';

export type ManagementDelta = Pick<ManagementStats, 'posts' | 'allowed' | 'throttled' | 'rateLimited' | 'errors' | 'delivered' | 'gone'>;

export interface BroadcastRun {
  /** `wxgate` or `naive`, with or without the rate limit. */
  name: string;
  rateLimit: RateLimit | null;
  /** Sockets that should get the frame (K). */
  sockets: number;
  /** Sockets that got it at least once. */
  received: number;
  /** sockets - received. */
  lost: number;
  /** Extra copies (a socket that got the frame twice counts once here per extra copy). */
  duplicates: number;
  /** Request (or first post) -> the last socket that got the frame; null when none did. */
  lastSocketMs: number | null;
  /** Request -> each socket's first copy. */
  arrivalMs: LatencySummary;
  /** Management API calls during the run. */
  management: ManagementDelta;
  /** wxgate: the job as `GET /v1/jobs/{jobId}` reported it last. */
  job?: {
    jobId: string;
    state: string;
    targeted: number;
    delivered: number;
    gone: number;
    failed: number;
    /** Request -> the 202 answer. */
    answeredMs: number;
    /** Request -> the first poll that saw `done` (or `failed`); null if neither within the time limit. */
    finishedMs: number | null;
  };
  /** naive: the posts fired. */
  naive?: {
    /** Reading the connection ids from the connections table (before the clock starts). */
    listMs: number;
    posts: number;
    ok: number;
    failed: number;
    /** Failed posts by error name (LimitExceededException = 429). */
    failures: Record<string, number>;
    /** First post -> the last post answered. */
    settledMs: number;
  };
}

export interface BroadcastFigures {
  connections: number;
  /** Opening the K sockets, batches of CONNECT_BATCH. */
  connectSeconds: number;
  rateLimit: RateLimit;
  /** K / rate: what any sender needs to get K posts through the limit without losing any. */
  idealThrottledSeconds: number;
  /** The fan-out settings this run used. */
  fanout: { postsPerSecond: number; scanSegments: number; scanPageSize: number; workers: number; postsInFlightPerTask: number };
  /** How the naive client was set up. */
  naiveClient: { maxAttempts: 1; maxSockets: number };
  runs: { wxgate: BroadcastRun; naive: BroadcastRun; wxgateThrottled: BroadcastRun; naiveThrottled: BroadcastRun };
  /** Times to the last socket as multiples: unthrottled over the naive floor, throttled over K / rate. */
  relative: {
    wxgateOverFloor: number | null;
    wxgateThrottledOverIdeal: number | null;
    naiveThrottledOverIdeal: number | null;
    wxgateThrottledOverFloor: number | null;
  };
}

/** One receiving socket: it only records which broadcast frames it got, and when. */
class BroadcastSocket {
  private readonly seen = new Set<string>();

  private constructor(
    private readonly socket: WebSocket,
    arrivals: Arrivals,
  ) {
    socket.on('message', (data) => {
      const atMs = nowMs();
      let frame: { type?: string; msgId?: unknown };
      try {
        frame = JSON.parse(data.toString()) as typeof frame;
      } catch {
        return;
      }
      if (frame.type !== 'message' || typeof frame.msgId !== 'string') return;
      if (this.seen.has(frame.msgId)) arrivals.duplicate(frame.msgId);
      else {
        this.seen.add(frame.msgId);
        arrivals.first(frame.msgId, atMs);
      }
    });
  }

  /** Pushes the socket to `opened` before it is open, so that a failure later still terminates it. */
  static async open(wsUrl: string, token: string, arrivals: Arrivals, opened: Array<{ terminate(): void }>): Promise<BroadcastSocket> {
    const socket = new WebSocket(`${wsUrl}/?token=${encodeURIComponent(token)}`);
    const entry = new BroadcastSocket(socket, arrivals);
    opened.push(entry);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`broadcast socket: no open after ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
      socket.once('open', () => (clearTimeout(timer), resolve()));
      socket.once('error', (err) => (clearTimeout(timer), reject(err)));
      socket.once('unexpected-response', (_req, res) => (clearTimeout(timer), reject(new Error(`upgrade refused: ${res.statusCode}`))));
    });
    return entry;
  }

  terminate(): void {
    this.socket.terminate();
  }
}

/** First-copy receive times per msgId across all sockets, and waiters for a count. */
class Arrivals {
  private readonly byMsgId = new Map<string, { times: number[]; duplicates: number }>();
  private waiters: Array<{ msgId: string; count: number; resolve: () => void }> = [];

  private entry(msgId: string) {
    let entry = this.byMsgId.get(msgId);
    if (!entry) this.byMsgId.set(msgId, (entry = { times: [], duplicates: 0 }));
    return entry;
  }

  first(msgId: string, atMs: number): void {
    const entry = this.entry(msgId);
    entry.times.push(atMs);
    this.waiters = this.waiters.filter((w) => (w.msgId === msgId && entry.times.length >= w.count ? (w.resolve(), false) : true));
  }

  duplicate(msgId: string): void {
    this.entry(msgId).duplicates++;
  }

  of(msgId: string): { times: number[]; duplicates: number } {
    return this.entry(msgId);
  }

  /** Resolves true once `count` sockets got `msgId`, false after `timeoutMs`. */
  waitFor(msgId: string, count: number, timeoutMs: number): Promise<boolean> {
    if (this.entry(msgId).times.length >= count) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      const waiter = { msgId, count, resolve: () => (clearTimeout(timer), resolve(true)) };
      this.waiters.push(waiter);
    });
  }
}

/** `GET /v1/jobs/{jobId}`'s answer. */
interface JobView {
  state: string;
  targeted: number;
  delivered: number;
  gone: number;
  failed: number;
}

/** What the phase must release whatever happens (the bench's `release` calls it). */
export interface BroadcastResources {
  sockets: Array<{ terminate(): void }>;
  destroy: Array<() => void>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const errorName = (err: unknown): string => (err instanceof Error ? err.name : String(err));

function delta(after: ManagementStats, before: ManagementStats): ManagementDelta {
  return {
    posts: after.posts - before.posts,
    allowed: after.allowed - before.allowed,
    throttled: after.throttled - before.throttled,
    rateLimited: after.rateLimited - before.rateLimited,
    errors: after.errors - before.errors,
    delivered: after.delivered - before.delivered,
    gone: after.gone - before.gone,
  };
}

export interface BroadcastContext {
  gateway: LocalGateway;
  adminKey: AdminKey;
  jwtSecret: string;
  connections: number;
  rateLimit: RateLimit;
  naiveSockets: number;
  resources: BroadcastResources;
  step: (line: string) => void;
}

export async function runBroadcastPhase(ctx: BroadcastContext): Promise<BroadcastFigures> {
  const { gateway, step } = ctx;
  const K = ctx.connections;
  const dynamo = new DynamoDBClient({ endpoint: gateway.dynamoEndpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
  ctx.resources.destroy.push(() => dynamo.destroy());
  // The naive way: the SDK's client as it comes, minus retries. All K posts are started at once;
  // the HTTP agent keeps `naiveSockets` of them on the wire (the SDK's default agent: 50) and
  // queues the rest, which on 2 cores is faster than K connections at once.
  const naiveAgent = new Agent({ keepAlive: true, maxSockets: ctx.naiveSockets });
  const naiveClient = new ApiGatewayManagementApiClient({
    endpoint: gateway.managementEndpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    maxAttempts: 1,
    requestHandler: { httpAgent: naiveAgent },
  });
  ctx.resources.destroy.push(() => (naiveClient.destroy(), naiveAgent.destroy()));
  const connectionsTable = gateway.tableNames.connections;

  const listConnectionIds = async (): Promise<string[]> => {
    const ids: string[] = [];
    let startKey: ScanCommandOutput['LastEvaluatedKey'];
    do {
      const page = await dynamo.send(new ScanCommand({ TableName: connectionsTable, ProjectionExpression: 'connectionId', ConsistentRead: true, ExclusiveStartKey: startKey }));
      for (const item of page.Items ?? []) if (item.connectionId?.S) ids.push(item.connectionId.S);
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return ids;
  };

  /** Waits until the connections table holds exactly `count` rows and (with `drain`) the runtime is idle. */
  const quiet = async (count: number, drain = true) => {
    const deadline = nowMs() + QUIET_TIMEOUT_MS;
    for (;;) {
      const rows = (await listConnectionIds()).length;
      if (rows === count) break;
      if (nowMs() > deadline) throw new Error(`broadcast: the connections table holds ${rows} rows, expected ${count}, after ${QUIET_TIMEOUT_MS} ms`);
      await sleep(100);
    }
    if (drain) await gateway.drainQueues(QUIET_TIMEOUT_MS);
  };

  const arrivals = new Arrivals();
  const admin = (method: string, path: string, payload?: unknown) => adminRequest(gateway.httpUrl, ctx.adminKey, method, path, payload);

  const runWxgate = async (name: string, rateLimit: RateLimit | null, sockets: number): Promise<BroadcastRun> => {
    if (rateLimit) gateway.setManagementRateLimit(rateLimit); // a fresh, full bucket
    const before = gateway.managementStats();
    const startMs = nowMs();
    const started = await admin('POST', '/v1/push', { to: { all: true }, body: { bench: 'broadcast', run: name } });
    const answeredMs = nowMs() - startMs;
    if (started.status !== 202) throw new Error(`broadcast ${name}: POST /v1/push answered ${started.status} ${JSON.stringify(started.body)}`);
    const { jobId, msgId } = started.body as { jobId: string; msgId: string };
    let job: JobView | undefined;
    let finishedMs: number | null = null;
    for (;;) {
      const polled = await admin('GET', `/v1/jobs/${jobId}`);
      if (polled.status === 200) job = polled.body as JobView;
      if (job?.state === 'done' || job?.state === 'failed') {
        finishedMs = nowMs() - startMs;
        break;
      }
      if (nowMs() - startMs > JOB_TIMEOUT_MS) break;
      await sleep(JOB_POLL_MS);
    }
    // A done job has had every post answered: its frames are at most on the loopback by now.
    if (finishedMs !== null) await arrivals.waitFor(msgId, sockets, GRACE_MS);
    return {
      ...arrivalFigures(name, rateLimit, sockets, arrivals.of(msgId), startMs),
      management: delta(gateway.managementStats(), before),
      job: {
        jobId,
        state: job?.state ?? 'unknown',
        targeted: job?.targeted ?? 0,
        delivered: job?.delivered ?? 0,
        gone: job?.gone ?? 0,
        failed: job?.failed ?? 0,
        answeredMs: round(answeredMs),
        finishedMs: finishedMs === null ? null : round(finishedMs),
      },
    };
  };

  let naiveRuns = 0;
  const runNaive = async (name: string, rateLimit: RateLimit | null, sockets: number): Promise<BroadcastRun> => {
    const listStart = nowMs();
    const ids = await listConnectionIds();
    const listMs = nowMs() - listStart;
    const msgId = `naive-${++naiveRuns}-${Date.now()}`;
    const payload = JSON.stringify({ type: 'message', msgId, from: 'admin/naive', to: { push: 'all' }, body: { bench: 'broadcast', run: name }, ts: Date.now() });
    if (rateLimit) gateway.setManagementRateLimit(rateLimit); // a fresh, full bucket
    const before = gateway.managementStats();
    const startMs = nowMs();
    const outcomes = await Promise.all(
      ids.map((ConnectionId) =>
        naiveClient.send(new PostToConnectionCommand({ ConnectionId, Data: payload })).then(
          () => 'ok',
          (err: unknown) => errorName(err),
        ),
      ),
    );
    const settledMs = nowMs() - startMs;
    const management = delta(gateway.managementStats(), before);
    const ok = outcomes.filter((o) => o === 'ok').length;
    const failures: Record<string, number> = {};
    for (const outcome of outcomes) if (outcome !== 'ok') failures[outcome] = (failures[outcome] ?? 0) + 1;
    await arrivals.waitFor(msgId, ok, GRACE_MS);
    return {
      ...arrivalFigures(name, rateLimit, sockets, arrivals.of(msgId), startMs),
      management,
      naive: { listMs: round(listMs), posts: ids.length, ok, failed: ids.length - ok, failures, settledMs: round(settledMs) },
    };
  };

  // The messaging phase's sockets are closed by now: wait for their rows to go, so the broadcast
  // reaches exactly the K sockets opened here. Then one unmeasured broadcast to nobody, which
  // loads the fan-out worker and warms the scan and completion paths, and one naive post to an
  // unknown id (a 410), which sets up the client's first connection.
  await quiet(0);
  const warm = await admin('POST', '/v1/push', { to: { all: true }, body: { bench: 'warm-up' } });
  if (warm.status !== 202) throw new Error(`broadcast warm-up: POST /v1/push answered ${warm.status} ${JSON.stringify(warm.body)}`);
  for (let i = 0; ; i++) {
    const job = await admin('GET', `/v1/jobs/${warm.body.jobId}`);
    if (job.body?.state === 'done') break;
    if (i * JOB_POLL_MS > QUIET_TIMEOUT_MS) throw new Error(`broadcast warm-up: job ${warm.body.jobId} still ${job.body?.state}`);
    await sleep(JOB_POLL_MS);
  }
  await naiveClient.send(new PostToConnectionCommand({ ConnectionId: 'bench-warm-up', Data: '{}' })).catch(() => undefined);

  step(`broadcast: opening ${K} sockets (${CONNECT_BATCH} at a time)...`);
  const connectStart = nowMs();
  for (let i = 0; i < K; i += CONNECT_BATCH) {
    await Promise.all(
      Array.from({ length: Math.min(CONNECT_BATCH, K - i) }, async (_, j) => {
        const { token } = await issueClientToken({ userId: `${BROADCAST_USER}-${i + j}`, deviceId: `b${i + j}`, ttlSeconds: 3600 }, ctx.jwtSecret);
        await BroadcastSocket.open(gateway.wsUrl, token, arrivals, ctx.resources.sockets);
      }),
    );
  }
  const connectSeconds = round((nowMs() - connectStart) / 1000);
  await quiet(K);
  step(`broadcast: ${K} sockets open in ${connectSeconds} s`);

  const limit = ctx.rateLimit;
  const label = `${limit.ratePerSecond}/s, burst ${limit.burst}`;
  step('broadcast: wxgate, no rate limit...');
  const wxgate = await runWxgate('wxgate', null, K);
  await gateway.drainQueues(QUIET_TIMEOUT_MS);
  step('broadcast: naive, no rate limit...');
  const naive = await runNaive('naive', null, K);
  await gateway.drainQueues(QUIET_TIMEOUT_MS);
  let wxgateThrottled: BroadcastRun;
  let naiveThrottled: BroadcastRun;
  try {
    step(`broadcast: wxgate, Management API limited to ${label}...`);
    wxgateThrottled = await runWxgate('wxgate, limited', limit, K);
    await gateway.drainQueues(QUIET_TIMEOUT_MS);
    step(`broadcast: naive, Management API limited to ${label}...`);
    naiveThrottled = await runNaive('naive, limited', limit, K);
  } finally {
    gateway.setManagementRateLimit(undefined);
  }
  await gateway.drainQueues(QUIET_TIMEOUT_MS);

  // Close the sockets a batch at a time, waiting for their `$disconnect`s: K at once would queue
  // K DynamoDB deletes behind each other on DynamoDB Local while the gateway stops.
  step('broadcast: closing the sockets...');
  const sockets = ctx.resources.sockets.splice(0);
  for (let i = 0; i < sockets.length; i += CLOSE_BATCH) {
    for (const socket of sockets.slice(i, i + CLOSE_BATCH)) socket.terminate();
    await quiet(Math.max(0, sockets.length - i - CLOSE_BATCH), false);
  }
  await gateway.drainQueues(QUIET_TIMEOUT_MS);

  const idealThrottledSeconds = round(K / limit.ratePerSecond, 3);
  const ratioOr = (value: number | null, unit: number | null) => (value === null || unit === null || unit <= 0 ? null : ratio(value, unit));
  return {
    connections: K,
    connectSeconds,
    rateLimit: limit,
    idealThrottledSeconds,
    fanout: {
      postsPerSecond: fanoutPostsPerSecond(),
      scanSegments: fanoutSettings.scanSegments,
      scanPageSize: fanoutSettings.scanPageSize,
      workers: queues.fanout.consumer.maxConcurrency,
      postsInFlightPerTask: defaultDeliverySettings.concurrency,
    },
    naiveClient: { maxAttempts: 1, maxSockets: ctx.naiveSockets },
    runs: { wxgate, naive, wxgateThrottled, naiveThrottled },
    relative: {
      wxgateOverFloor: ratioOr(wxgate.lastSocketMs, naive.lastSocketMs),
      wxgateThrottledOverIdeal: ratioOr(wxgateThrottled.lastSocketMs, idealThrottledSeconds * 1000),
      naiveThrottledOverIdeal: ratioOr(naiveThrottled.lastSocketMs, idealThrottledSeconds * 1000),
      wxgateThrottledOverFloor: ratioOr(wxgateThrottled.lastSocketMs, naive.lastSocketMs),
    },
  };
}

function arrivalFigures(name: string, rateLimit: RateLimit | null, sockets: number, got: { times: number[]; duplicates: number }, startMs: number) {
  const arrival = got.times.map((t) => t - startMs);
  return {
    name,
    rateLimit,
    sockets,
    received: got.times.length,
    lost: sockets - got.times.length,
    duplicates: got.duplicates,
    lastSocketMs: arrival.length ? round(Math.max(...arrival)) : null,
    arrivalMs: summarize(arrival),
  };
}

/** Problems worth a non-zero exit: wxgate must reach every socket and finish its job, with or without the limit. */
export function broadcastProblems(f: BroadcastFigures): string[] {
  const problems: string[] = [];
  for (const run of [f.runs.wxgate, f.runs.wxgateThrottled]) {
    if (run.lost > 0) problems.push(`broadcast "${run.name}": ${run.lost} of ${run.sockets} sockets never got the frame`);
    if (run.job && run.job.state !== 'done') problems.push(`broadcast "${run.name}": job ${run.job.jobId} is ${run.job.state}, not done, after ${JOB_TIMEOUT_MS / 1000} s`);
    if (run.job && run.job.failed > 0) problems.push(`broadcast "${run.name}": job counted ${run.job.failed} failed posts`);
  }
  return problems;
}

/** Worth saying, not a failure of wxgate: the floor itself lost frames with nothing throttling it. */
export function broadcastNotes(f: BroadcastFigures): string[] {
  const { naive } = f.runs;
  return naive.lost > 0 ? [`broadcast "naive" without a limit lost ${naive.lost} frames (${JSON.stringify(naive.naive?.failures)}): its time is not a clean floor`] : [];
}
