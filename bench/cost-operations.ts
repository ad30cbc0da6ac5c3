/**
 * The operations of the cost model (docs/cost.md), each measured on its own with the local
 * runtime's cost meter (local/cost-meter.ts): real WebSocket clients, real signed HTTP requests,
 * and the queues drained inside each window so that the persister's, the fan-out worker's and
 * the presence counter's work is counted with the operation that caused it.
 *
 * Used by `npm run cost` (bench/cost.ts, which prints the table and writes
 * bench/results/cost-units.json) and by test/integration/cost-units.test.ts (which pins the
 * units). Runs are deterministic where the code is: every user, device, group and client frame
 * id has a fixed length, every body a fixed serialized size, so item sizes (and with them the
 * rounded DynamoDB units) do not move between runs.
 */
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { functions, type FunctionId } from '../lib/gateway-declaration';
import { issueClientToken } from '../lambdas/domain/client-token';
import { parseWechatAccounts, type WechatAccount } from '../lambdas/domain/wechat-accounts';
import type { CostMeter, CostSnapshot } from '../local/cost-meter';
import type { LocalGateway } from '../local/local-gateway';
import { buildCallback } from '../scripts/wechat-callback-builder';
import { adminRequest, type AdminKey } from './admin';

export type Frame = Record<string, any>;

/** One operation's measured units, in the shape the table, the JSON file and the test use. */
export interface OperationUnits {
  /** Stable key, e.g. `send.user`. */
  operation: string;
  /** What was done in the window. */
  description: string;
  dynamo: {
    readUnits: number;
    writeUnits: number;
    /** Per table: read/write units, the part on indexes, and the units the meter computed (Local reports none). */
    byTable: Record<string, { readUnits: number; writeUnits: number; requests: number; calls: Record<string, string>; indexes?: Record<string, { readUnits: number; writeUnits: number }>; computed?: { readUnits: number; writeUnits: number } & Record<string, number> }>;
  };
  sqs: { fifoRequests: number; standardRequests: number; byQueue: Record<string, Record<string, number>> };
  lambda: {
    invocations: number;
    byFunction: Record<string, number>;
    /** Local wall-clock ms of all invocations (handlers only) and GB-seconds at the declared memory. */
    localMs: number;
    localGbSeconds: number;
    /** Per function: local ms summed over its invocations. */
    msByFunction: Record<string, number>;
  };
  /** Measured runs the units were equal in (the durations are the median run's). */
  runs?: number;
  /** WebSocket payload bytes in (client frames) and out (replies and posts): data transfer out is billed by the GB. */
  bytes: { webSocketIn: number; webSocketOut: number };
  apiGateway: {
    /** WebSocket messages billed (32 KiB increments): client frames in, frames out. */
    messagesIn: number;
    messagesOut: number;
    connects: number;
    disconnects: number;
    /** HTTP API requests (512 KiB increments). */
    httpRequests: number;
    /** Management API (@connections) calls. */
    posts: number;
    gets: number;
    deletes: number;
  };
}

const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;

/** What must be equal between runs of an operation: everything but local durations. */
/** JSON with every object's keys sorted, so equal values give equal text whatever their insertion order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

export function deterministicPart(u: OperationUnits) {
  return { dynamo: u.dynamo, sqs: u.sqs, invocations: u.lambda.byFunction, apiGateway: u.apiGateway, bytes: u.bytes };
}

export function unitsOf(operation: string, description: string, usage: CostSnapshot): OperationUnits {
  const byTable: OperationUnits['dynamo']['byTable'] = {};
  for (const [id, t] of Object.entries(usage.dynamodb)) {
    if (!t) continue;
    const indexes = Object.keys(t.indexes).length ? t.indexes : undefined;
    const events = Object.fromEntries(Object.entries(t.computed).filter(([k, v]) => k !== 'readUnits' && k !== 'writeUnits' && v > 0));
    const computed = t.computed.readUnits || t.computed.writeUnits ? { readUnits: t.computed.readUnits, writeUnits: t.computed.writeUnits, ...events } : undefined;
    const calls = Object.fromEntries(Object.entries(t.byOperation).map(([op, u]) => [op, `${u.requests} calls, ${u.readUnits}/${u.writeUnits}`]));
    byTable[id] = { readUnits: t.readUnits, writeUnits: t.writeUnits, requests: t.requests, calls, ...(indexes ? { indexes } : {}), ...(computed ? { computed } : {}) };
  }
  const byQueue: Record<string, Record<string, number>> = {};
  for (const [id, q] of Object.entries(usage.sqs)) {
    if (!q || q.requests === 0) continue;
    byQueue[id] = Object.fromEntries(Object.entries(q.byAction).map(([action, a]) => [action, a.billed]));
  }
  const byFunction: Record<string, number> = {};
  const msByFunction: Record<string, number> = {};
  for (const [id, l] of Object.entries(usage.lambda)) {
    if (!l) continue;
    byFunction[id] = l.invocations;
    msByFunction[id] = round(l.totalMs, 1);
  }
  return {
    operation,
    description,
    dynamo: { readUnits: usage.totals.dynamoReadUnits, writeUnits: usage.totals.dynamoWriteUnits, byTable },
    sqs: { fifoRequests: usage.totals.sqsFifoRequests, standardRequests: usage.totals.sqsStandardRequests, byQueue },
    lambda: {
      invocations: usage.totals.lambdaInvocations,
      byFunction,
      localMs: round(Object.values(usage.lambda).reduce((s, l) => s + (l?.totalMs ?? 0), 0), 1),
      localGbSeconds: round(usage.totals.lambdaGbSeconds, 6),
      msByFunction,
    },
    bytes: { webSocketIn: usage.websocket.bytesIn, webSocketOut: usage.websocket.bytesOut },
    apiGateway: {
      messagesIn: usage.websocket.messagesIn,
      messagesOut: usage.websocket.messagesOut,
      connects: usage.websocket.connects,
      disconnects: usage.websocket.disconnects,
      httpRequests: usage.totals.httpRequests,
      posts: usage.management.posts,
      gets: usage.management.gets,
      deletes: usage.management.deletes,
    },
  };
}

/** A JSON body whose serialized size is exactly `bytes` (>= 12 + tag), its text starting with `tag`. */
export function bodyOfSize(bytes: number, tag = ''): { text: string } {
  const overhead = JSON.stringify({ text: '' }).length;
  return { text: tag + 'x'.repeat(bytes - overhead - tag.length) };
}

/** A WebSocket client that records every frame and waits by predicate. */
export class CostClient {
  readonly frames: Frame[] = [];
  private waiters: Array<{ pred: (f: Frame) => boolean; resolve: (f: Frame) => void }> = [];
  private readonly closed: Promise<void>;

  private constructor(
    readonly userId: string,
    readonly deviceId: string,
    readonly socket: WebSocket,
  ) {
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as Frame;
      this.frames.push(frame);
      this.waiters = this.waiters.filter((w) => (w.pred(frame) ? (w.resolve(frame), false) : true));
    });
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static async connect(wsUrl: string, jwtSecret: string, userId: string, deviceId: string): Promise<CostClient> {
    const { token } = await issueClientToken({ userId, deviceId, ttlSeconds: 3600 }, jwtSecret);
    const socket = new WebSocket(`${wsUrl}/?token=${encodeURIComponent(token)}`);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`connect ${userId}/${deviceId}: no open after 30 s`)), 30_000);
      socket.once('open', () => (clearTimeout(timer), resolve()));
      socket.once('error', (err) => (clearTimeout(timer), reject(err)));
      socket.once('unexpected-response', (_req, res) => (clearTimeout(timer), reject(new Error(`connect ${userId}/${deviceId}: upgrade refused ${res.statusCode}`))));
    });
    return new CostClient(userId, deviceId, socket);
  }

  waitFor(pred: (f: Frame) => boolean, what: string, timeoutMs = 30_000): Promise<Frame> {
    const seen = this.frames.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.userId}/${this.deviceId}: no ${what} after ${timeoutMs} ms; last frames ${JSON.stringify(this.frames.slice(-3)).slice(0, 500)}`)), timeoutMs);
      this.waiters.push({ pred, resolve: (f) => (clearTimeout(timer), resolve(f)) });
    });
  }

  /** Sends a frame with this `id` and waits for the reply that echoes it. */
  async request(frame: Frame, what = String(frame.action)): Promise<Frame> {
    this.socket.send(JSON.stringify(frame));
    return this.waitFor((f) => f.id === frame.id && f.type !== 'message', `reply to ${what} ${frame.id}`);
  }

  hasMessage(msgId: string): Promise<Frame> {
    return this.waitFor((f) => f.type === 'message' && f.msgId === msgId, `message ${msgId}`);
  }

  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.close();
    await this.closed;
  }
}

export interface CostRunOptions {
  gateway: LocalGateway;
  jwtSecret: string;
  adminKey: AdminKey;
  /** The accounts file the gateway was started with (WXGATE_WECHAT_ACCOUNTS) and the account to call back. */
  wechat?: { accountsFile: string; accountId: string };
  /** Group sizes to measure (default 10 and 100). */
  groupSizes?: readonly number[];
  /** Broadcast sizes (connections online; default 10 and 100). */
  broadcastSizes?: readonly number[];
  /** Messages of 32 KiB in the inbox of the limit=500 sync (default 500; 0 skips it). */
  bigInboxMessages?: number;
  /** Measure the outbound WeChat reply (needs the fake WeChat API behind WXGATE_WECHAT_API_BASE). */
  wechatReply?: boolean;
  /** Run every operation once unrecorded first (default true): first calls load modules and caches. */
  warmUp?: boolean;
  /**
   * Measured runs per operation (default 1). The units of every run must be equal (else the run
   * fails: the model assumes they are deterministic); local durations are the median run's.
   */
  repeats?: number;
  log?: (line: string) => void;
}

/** Body sizes of the model (serialized JSON): a chat message, and the largest body the protocol accepts. */
export const SMALL_BODY_BYTES = 200;
export const LARGE_BODY_BYTES = 32 * 1024;

/** `cu-` + 7 characters: every user id of the run has the same length. */
const user = (kind: string, n: number) => `cu-${kind}${String(n).padStart(7 - kind.length, '0')}`;
const pad3 = (n: number) => String(n).padStart(3, '0');

async function inBatches<T, R>(items: readonly T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

async function until(probe: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Runs every operation and returns its units, in a fixed order. The gateway must have been started
 * with `costMeter: true`, a TTL sweeper that does not run during the run, and (for the WeChat
 * operations) the accounts file and the fake WeChat API.
 */
export async function measureOperations(options: CostRunOptions): Promise<OperationUnits[]> {
  const { gateway, jwtSecret, adminKey } = options;
  const meter: CostMeter | undefined = gateway.costMeter;
  if (!meter) throw new Error('measureOperations: start the gateway with costMeter: true');
  const log = options.log ?? (() => undefined);
  const groupSizes = options.groupSizes ?? [10, 100];
  const broadcastSizes = options.broadcastSizes ?? [10, 100];
  const bigInbox = options.bigInboxMessages ?? 500;
  const warmUp = options.warmUp ?? true;
  const results: OperationUnits[] = [];
  const clients: CostClient[] = [];
  const connect = async (userId: string, deviceId: string) => {
    const c = await CostClient.connect(gateway.wsUrl, jwtSecret, userId, deviceId);
    clients.push(c);
    return c;
  };
  const admin = async (method: string, path: string, payload?: unknown, expected = [200]) => {
    const r = await adminRequest(gateway.httpUrl, adminKey, method, path, payload);
    if (!expected.includes(r.status)) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const settle = () => gateway.drainQueues(120_000);
  let frameCounter = 0;
  /** Client frame ids of fixed length. */
  const frameId = () => `f-${String(++frameCounter).padStart(6, '0')}`;

  const repeats = Math.max(1, options.repeats ?? 1);
  /** Measures `op` (warm-up first, unrecorded, if asked): reset, run, drain, snapshot; `repeats` times. */
  const measure = async (operation: string, description: string, op: () => Promise<void>, opts: { warm?: () => Promise<void> } = {}) => {
    if (warmUp && opts.warm) {
      await opts.warm();
      await settle();
    }
    const runs: OperationUnits[] = [];
    for (let i = 0; i < repeats; i++) {
      await settle();
      meter.reset();
      await op();
      await settle();
      runs.push(unitsOf(operation, description, meter.snapshot()));
    }
    // Keys sorted: concurrent handlers may make the same calls in another order, which is not a difference in units.
    const key = (u: OperationUnits) => canonicalJson(deterministicPart(u));
    const distinct = new Set(runs.map(key));
    if (distinct.size > 1) throw new Error(`${operation}: the units differ between runs:\n${[...distinct].join('\n')}`);
    // Durations: the run with the median total local time.
    const byTime = [...runs].sort((a, b) => a.lambda.localMs - b.lambda.localMs);
    const units = byTime[Math.floor((byTime.length - 1) / 2)]!;
    units.runs = runs.length;
    results.push(units);
    log(`${operation}: ${units.dynamo.readUnits} RRU, ${units.dynamo.writeUnits} WRU, ${units.sqs.fifoRequests + units.sqs.standardRequests} SQS, ${units.lambda.invocations} invocations, ${units.apiGateway.messagesIn}+${units.apiGateway.messagesOut} WS messages, ${units.lambda.localMs} local ms (${runs.length} run${runs.length > 1 ? 's' : ''})`);
    return units;
  };

  try {
    // ---- connect, ping, disconnect (a fresh user each time) ----
    const lonely: CostClient[] = [];
    let lonelyUsers = 0;
    const connectOnce = async () => {
      lonely.push(await connect(user('conn', ++lonelyUsers), 'd1'));
    };
    const disconnectOnce = async () => {
      const before = meter.snapshot().lambda.wsDisconnect?.invocations ?? 0;
      await lonely.pop()!.close();
      await until(() => (meter.snapshot().lambda.wsDisconnect?.invocations ?? 0) > before, '$disconnect');
    };
    const ping = async () => {
      await lonely.at(-1)!.request({ action: 'ping', id: frameId() });
    };
    await measure('connect', "open a WebSocket for a user with no other connection (authorizer, $connect, the presence counter's stream batch)", connectOnce, {
      warm: async () => {
        await connectOnce();
        await ping();
        await disconnectOnce();
      },
    });
    await measure('ping', 'one ping -> pong', ping);
    await measure('disconnect', "close that WebSocket ($disconnect, the presence counter's stream batch)", disconnectOnce);

    // ---- the population: a sender, a recipient with 2 devices, group members ----
    const maxGroup = Math.max(0, ...groupSizes);
    const sender = await connect(user('send', 1), 'd1');
    const recipientDevices = [await connect(user('recp', 1), 'd1'), await connect(user('recp', 1), 'd2')];
    const members = await inBatches(
      Array.from({ length: Math.max(0, maxGroup - 1) }, (_, i) => i + 1),
      25,
      (i) => connect(user('memb', i), 'd1'),
    );
    for (const size of groupSizes) {
      await admin('PUT', `/v1/groups/cg-${pad3(size)}/members`, { add: [sender.userId, ...members.slice(0, size - 1).map((m) => m.userId)] });
    }
    await settle();

    // ---- send to a user with 2 devices ----
    const sendToUser = async () => {
      const ack = await sender.request({ action: 'send', id: frameId(), to: { user: user('recp', 1) }, body: bodyOfSize(SMALL_BODY_BYTES) });
      if (ack.type !== 'ack') throw new Error(`send: ${JSON.stringify(ack)}`);
      await Promise.all(recipientDevices.map((d) => d.hasMessage(ack.msgId)));
    };
    await measure('send.user', `send a ${SMALL_BODY_BYTES}-byte body to a user with 2 devices online (sender: 1 device)`, sendToUser, { warm: sendToUser });

    // ---- send to groups ----
    for (const size of groupSizes) {
      const sendToGroup = async () => {
        const ack = await sender.request({ action: 'send', id: frameId(), to: { group: `cg-${pad3(size)}` }, body: bodyOfSize(SMALL_BODY_BYTES) });
        if (ack.type !== 'ack') throw new Error(`group send: ${JSON.stringify(ack)}`);
        await Promise.all(members.slice(0, size - 1).map((m) => m.hasMessage(ack.msgId)));
      };
      await measure(`send.group${size}`, `send a ${SMALL_BODY_BYTES}-byte body to a group of ${size} (the sender and ${size - 1} members, each with 1 device online)`, sendToGroup, { warm: sendToGroup });
    }

    // ---- admin push to a user ----
    const push = async () => {
      const body = await admin('POST', '/v1/push', { to: { users: [user('recp', 1)] }, body: bodyOfSize(SMALL_BODY_BYTES) });
      await Promise.all(recipientDevices.map((d) => d.hasMessage(body.msgId)));
    };
    await measure('push.user', `admin POST /v1/push of a ${SMALL_BODY_BYTES}-byte body to 1 user with 2 devices online`, push, { warm: push });

    // ---- sync: a 20-message inbox ----
    const reader = user('sync', 20);
    for (let i = 0; i < 20; i++) await admin('POST', '/v1/push', { to: { users: [reader] }, body: bodyOfSize(SMALL_BODY_BYTES) });
    await settle();
    const readerClient = await connect(reader, 'd1');
    const sync20 = async () => {
      const reply = await readerClient.request({ action: 'sync', id: frameId(), limit: 100 });
      if (reply.type !== 'sync' || reply.messages.length !== 20) throw new Error(`sync of 20: ${JSON.stringify(reply).slice(0, 300)}`);
    };
    await measure('sync.20', `sync (no cursor, limit 100) of an inbox of 20 messages of ${SMALL_BODY_BYTES} bytes: one page`, sync20, { warm: sync20 });

    // ---- sync: limit=500 over 32 KiB bodies ----
    if (bigInbox > 0) {
      const bigReader = user('sync', 500);
      log(`filling an inbox with ${bigInbox} messages of ${LARGE_BODY_BYTES} bytes ...`);
      await inBatches(
        Array.from({ length: bigInbox }, (_, i) => i),
        8,
        () => admin('POST', '/v1/push', { to: { users: [bigReader] }, body: bodyOfSize(LARGE_BODY_BYTES) }),
      );
      await settle();
      const bigClient = await connect(bigReader, 'd1');
      const sync500 = async () => {
        const reply = await bigClient.request({ action: 'sync', id: frameId(), limit: 500 });
        if (reply.type !== 'sync') throw new Error(`sync limit 500: ${JSON.stringify(reply).slice(0, 300)}`);
      };
      await measure('sync.500x32k', `sync (no cursor, limit 500) of an inbox of ${bigInbox} messages of ${LARGE_BODY_BYTES} bytes: one page (the reply stops at 120 KiB)`, sync500, { warm: sync500 });
    }

    // ---- WeChat: a callback to an agent, and the agent's reply ----
    if (options.wechat) {
      const accounts = parseWechatAccounts(readFileSync(options.wechat.accountsFile, 'utf8'), options.wechat.accountsFile);
      const account = accounts.get(options.wechat.accountId) as WechatAccount | undefined;
      if (!account) throw new Error(`no WeChat account ${options.wechat.accountId} in ${options.wechat.accountsFile}`);
      const agentId = user('agnt', 1);
      await admin('PUT', `/v1/groups/${encodeURIComponent(`wechat:${account.accountId}`)}/members`, { add: [agentId] });
      const agent = await connect(agentId, 'd1');
      let msgCounter = 0;
      const callback = async () => {
        const msgId = String(7_000_000_000_000_000 + ++msgCounter); // 16 digits
        const request = buildCallback(account, { text: 'x'.repeat(100), from: 'oCostUser000000000000001', msgId, nonce: String(100_000_000 + msgCounter) });
        const response = await fetch(gateway.httpUrl + request.pathAndQuery, { method: request.method, body: request.body, headers: { 'content-type': 'text/xml' } });
        const text = await response.text();
        if (response.status !== 200 || text !== 'success') throw new Error(`WeChat callback: ${response.status} ${text}`);
        await agent.waitFor((f) => f.type === 'message' && String(f.body?.wechat?.MsgId) === msgId, `WeChat message ${msgId}`);
      };
      await measure('wechat.callback', 'a signed safe-mode WeChat text callback (100 characters) answered success, stored and pushed to 1 agent online', callback, { warm: callback });

      if (options.wechatReply) {
        const replyOnce = async () => {
          const ack = await agent.request({ action: 'send', id: frameId(), to: { wechat: { accountId: account.accountId, openId: 'oCostUser000000000000001' } }, body: { text: 'y'.repeat(100) } });
          if (ack.type !== 'ack') throw new Error(`WeChat reply: ${JSON.stringify(ack)}`);
          const status = await agent.waitFor((f) => f.type === 'status' && f.msgId === ack.msgId, `status of ${ack.msgId}`);
          if (status.state !== 'sent') throw new Error(`WeChat reply: ${JSON.stringify(status)}`);
        };
        await measure('wechat.reply', "an agent's 100-character reply to a WeChat user: queued, stored, sent with a cached access token, status frame", replyOnce, { warm: replyOnce });
      }
    }

    // ---- broadcast: only the broadcast's own connections in the table ----
    if (broadcastSizes.length > 0) {
      await inBatches([...clients], 50, (c) => c.close());
      clients.length = 0;
      await settle();
      const audience: CostClient[] = [];
      let pushes = 0;
      const broadcast = async () => {
        const tag = `bc-${String(++pushes).padStart(4, '0')}-`;
        const body = await admin('POST', '/v1/push', { to: { all: true }, body: bodyOfSize(SMALL_BODY_BYTES, tag) }, [200, 202]);
        await Promise.all(audience.map((c) => c.waitFor((f) => f.type === 'message' && String(f.body?.text).startsWith(tag), `broadcast ${body.jobId}`)));
      };
      for (const size of [...broadcastSizes].sort((a, b) => a - b)) {
        const more = await inBatches(
          Array.from({ length: size - audience.length }, (_, i) => audience.length + i),
          25,
          (i) => connect(user('bcst', Math.floor(i / 10)), `d${i % 10}`),
        );
        audience.push(...more);
        await settle();
        await measure(`broadcast.${size}`, `admin POST /v1/push to all, ${size} connections online (and no others)`, broadcast, { warm: broadcast });
      }
    }
    return results;
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()));
  }
}

/** Functions the declaration names, for printing in a fixed order. */
export const functionIds = Object.keys(functions) as FunctionId[];
