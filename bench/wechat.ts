/**
 * The WeChat phase of `npm run bench` (docs/performance.md, "WeChat callbacks"): how long the
 * gateway takes to answer a WeChat callback `success`, against WeChat's 5 s limit and the same
 * run's ping, and whether every answered callback reaches the agent.
 *
 * One agent socket (user `bench-wechat-agent`, a member of `wechat:{accountId}` through the signed
 * admin API) listens. N signed, encrypted (safe-mode) text callbacks, each with its own MsgId,
 * from a few WeChat users (one FIFO message group each), are posted `concurrency` at a time over
 * keep-alive HTTP to `POST /wechat/{accountId}`, the way WeChat posts them. Per callback: post ->
 * the `success` answer (the message is on the inbound FIFO queue by then), and post -> the message
 * frame on the agent's socket (matched by `body.wechat.MsgId`). The ping baseline is taken in the
 * same phase, before and after the callbacks, with as many round trips in flight as callbacks:
 * the agent's socket and idle ones ping at once, like the messaging baseline's senders.
 */
import { randomInt } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { env } from '../lib/gateway-declaration';
import { parseWechatAccounts, type WechatAccount } from '../lambdas/domain/wechat-accounts';
import type { LocalGateway } from '../local/local-gateway';
import { buildCallback } from '../scripts/wechat-callback-builder';
import { adminRequest, type AdminKey } from './admin';
import { BenchClient, nowMs } from './bench-client';
import { measurePings, REQUEST_TIMEOUT_MS } from './phases';
import { perSecond, ratio, round, summarize, type LatencySummary } from './stats';

/** WeChat answers nothing slower: after this it gives up on the attempt and retries (three tries in all). */
export const WECHAT_LIMIT_MS = 5_000;
export const WECHAT_ACCOUNT_ID = 'wxbench0000000001';
export const WECHAT_AGENT = 'bench-wechat-agent';
/** WeChat users (FromUserName) the callbacks come from, round robin: one FIFO message group each. */
const WECHAT_USERS = 10;
/** Unmeasured callbacks first: they load the callback and inbound handlers and warm their paths. */
const WARMUP_CALLBACKS = 20;
/** Ping round trips per baseline socket, before and again after the callbacks. */
const PINGS = 20;
/** The baseline pings on as many sockets at once as callbacks in flight, up to this many. */
const MAX_PING_SOCKETS = 50;
const PING_USER = 'bench-wechat-ping';
/**
 * Waiting for the agent's frames gives up once this long passes without a new one: the inbound
 * consumer may trail the answers by much more than this on a long run, but it never stalls.
 */
const DELIVERY_STALL_MS = 60_000;
const DRAIN_TIMEOUT_MS = 60_000;
const CONNECT_TIMEOUT_MS = 30_000;

export interface WechatFigures {
  accountId: string;
  mode: 'safe';
  callbacks: number;
  concurrency: number;
  wechatUsers: number;
  warmupCallbacks: number;
  /** Answered 200 `success`. */
  acked: number;
  /** Any other answer, or no answer within REQUEST_TIMEOUT_MS. */
  nonSuccess: number;
  nonSuccessExamples: string[];
  /** First post -> last answer. */
  wallSeconds: number;
  /** Acked callbacks / wall time. */
  ackedPerSecond: number;
  /** Post -> `success` answer (acked callbacks only). */
  ackMs: LatencySummary;
  /** Acked callbacks answered after WECHAT_LIMIT_MS (WeChat would have retried them). */
  overLimit: number;
  /** ackMs.p99 / WECHAT_LIMIT_MS. */
  ackP99OfLimit: number;
  /** Sockets the baseline pinged on at once: the agent's plus idle ones, as many as callbacks in flight (at most MAX_PING_SOCKETS). */
  pingSockets: number;
  /** Ping round trips on those sockets, before and after the callbacks, pooled. */
  pingMs: LatencySummary;
  pingP50BeforeMs: number;
  pingP50AfterMs: number;
  relativeToPingP50: { ackP50: number; ackP99: number; endToEndP50: number; endToEndP99: number };
  /** The messaging phase's pooled ping p50 (ten sockets pinging at once), when it ran; and the ack as multiples of it. */
  messagingPingP50Ms: number | null;
  relativeToMessagingPingP50: { ackP50: number; ackP99: number } | null;
  delivery: {
    /** Acked callbacks: each must reach the agent once. */
    expected: number;
    /** Acked callbacks whose frame the agent got (at least once) before DELIVERY_STALL_MS passed without a new frame. */
    delivered: number;
    /** expected - delivered. */
    lost: number;
    /** Extra frames for a MsgId the agent already had. */
    duplicates: number;
    /** Frames with a MsgId that was not posted in this phase as acked (e.g. a non-success answer that was queued anyway). */
    unexpected: number;
    /** Post -> first frame on the agent's socket. */
    endToEndMs: LatencySummary;
    /** Last answer -> last first frame (how far delivery trailed the answers). */
    trailSeconds: number;
    /** Delivered / (first post -> last first frame): what the inbound consumer kept up with. */
    deliveredPerSecond: number;
    lostExamples: string[];
  };
}

/** What must be released whatever happens. */
export interface WechatResources {
  clients: BenchClient[];
  destroy: Array<() => void>;
  /** The temporary accounts file's folder, removed at the end. */
  tempDir?: string;
}

/** The accounts file the gateway is started with (its handler env names it): one official account with a fresh key. */
export interface WechatSetup {
  account: WechatAccount;
  handlerEnv: Record<string, string>;
}

const alphanumeric = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const randomAlphanumeric = (length: number) => Array.from({ length }, () => alphanumeric[randomInt(alphanumeric.length)]).join('');

/** Writes the temporary accounts file into os.tmpdir(); `resources.tempDir` is set first, so it is removed whatever happens. */
export async function prepareWechat(resources: WechatResources): Promise<WechatSetup> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wxgate-bench-wechat-'));
  resources.tempDir = dir;
  const file = path.join(dir, 'accounts.json');
  const raw = JSON.stringify({ [WECHAT_ACCOUNT_ID]: { kind: 'oa', token: randomAlphanumeric(32), encodingAESKey: randomAlphanumeric(43) } });
  await writeFile(file, raw, { mode: 0o600 });
  const account = parseWechatAccounts(raw, file).get(WECHAT_ACCOUNT_ID)!;
  return { account, handlerEnv: { [env.wechatAccountsFile]: file } };
}

export async function releaseWechat(resources: WechatResources): Promise<void> {
  for (const client of resources.clients.splice(0)) client.terminate();
  for (const destroy of resources.destroy.splice(0)) destroy();
  const dir = resources.tempDir;
  resources.tempDir = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
}

export interface WechatContext {
  gateway: LocalGateway;
  adminKey: AdminKey;
  jwtSecret: string;
  setup: WechatSetup;
  callbacks: number;
  concurrency: number;
  /** The messaging phase's pooled ping p50, if it ran. */
  messagingPingP50Ms: number | null;
  resources: WechatResources;
  step: (line: string) => void;
}

interface Posted {
  seq: number;
  msgId: string;
  sentAtMs: number;
  answeredAtMs: number;
}

interface Answer {
  status: number;
  text: string;
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export async function runWechatPhase(ctx: WechatContext): Promise<WechatFigures> {
  const { gateway, setup, step } = ctx;
  const { account } = setup;
  const group = `wechat:${account.accountId}`;
  const added = await adminRequest(gateway.httpUrl, ctx.adminKey, 'PUT', `/v1/groups/${group}/members`, { add: [WECHAT_AGENT] });
  if (added.status !== 200) throw new Error(`wechat: PUT /v1/groups/${group}/members answered ${added.status} ${JSON.stringify(added.body)}`);
  const agent = await BenchClient.connect(gateway.wsUrl, WECHAT_AGENT, 'console', ctx.jwtSecret, CONNECT_TIMEOUT_MS);
  ctx.resources.clients.push(agent);
  await agent.request({ action: 'ping' }, REQUEST_TIMEOUT_MS);
  // The baseline has as many round trips in flight as the callbacks: the agent's socket and idle
  // ones of a user outside the group (they get no frames).
  const pingSockets = [agent];
  for (let i = 1; i < Math.min(ctx.concurrency, MAX_PING_SOCKETS); i++) {
    const socket = await BenchClient.connect(gateway.wsUrl, PING_USER, `p${i}`, ctx.jwtSecret, CONNECT_TIMEOUT_MS);
    ctx.resources.clients.push(socket);
    pingSockets.push(socket);
    await socket.request({ action: 'ping' }, REQUEST_TIMEOUT_MS);
  }

  // Frames by WeChat MsgId (the gateway's msgId is its own), and a waiter for a set of them.
  const arrivals = new Map<string, number[]>();
  let waiter: { missing: Set<string>; arrived: () => void } | undefined;
  agent.onMessage = (frame, atMs) => {
    const msgId = frame.body?.wechat?.MsgId;
    if (typeof msgId !== 'string') return;
    const times = arrivals.get(msgId);
    if (times) times.push(atMs);
    else arrivals.set(msgId, [atMs]);
    if (waiter?.missing.delete(msgId)) waiter.arrived();
  };
  /** Resolves once the agent has every one of `msgIds` (at least once), or when `stallMs` pass without one of them arriving. */
  const waitForAll = (msgIds: string[], stallMs: number): Promise<void> => {
    const missing = new Set(msgIds.filter((id) => !arrivals.has(id)));
    if (missing.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      let timer = setTimeout(done, stallMs);
      function done() {
        clearTimeout(timer);
        waiter = undefined;
        resolve();
      }
      waiter = {
        missing,
        arrived: () => {
          if (missing.size === 0) return done();
          clearTimeout(timer);
          timer = setTimeout(done, stallMs);
        },
      };
    });
  };

  // Keep-alive HTTP, as many connections as callbacks in flight: WeChat's servers keep theirs too.
  const httpAgent = new Agent({ keepAlive: true, maxSockets: ctx.concurrency });
  ctx.resources.destroy.push(() => httpAgent.destroy());
  const base = new URL(gateway.httpUrl);
  const post = (pathAndQuery: string, body: string): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const req = httpRequest(
        {
          agent: httpAgent,
          hostname: base.hostname,
          port: base.port,
          method: 'POST',
          path: pathAndQuery,
          headers: { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(body) },
          timeout: REQUEST_TIMEOUT_MS,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer after ${REQUEST_TIMEOUT_MS} ms`)));
      req.on('error', reject);
      req.end(body);
    });

  // MsgIds as WeChat's look (64-bit decimal), unique to this run.
  const runBase = BigInt(Date.now()) * 1_000_000n;
  const msgIdOf = (seq: number) => String(runBase + BigInt(seq));
  const fromOf = (seq: number) => `oBenchUser${String(seq % WECHAT_USERS).padStart(2, '0')}`;

  /** Posts callbacks first..first+count-1, `concurrency` in flight. */
  const postAll = async (first: number, count: number) => {
    const posted: Posted[] = [];
    const failures: string[] = [];
    let next = first;
    const end = first + count;
    const worker = async () => {
      while (next < end) {
        const seq = next++;
        const msgId = msgIdOf(seq);
        // Built (signed, encrypted) just before it is sent, outside the clock: its timestamp stays fresh.
        const callback = buildCallback(account, { mode: 'safe', text: `bench callback ${seq}`, from: fromOf(seq), msgId });
        const sentAtMs = nowMs();
        try {
          const answer = await post(callback.pathAndQuery, callback.body!);
          const answeredAtMs = nowMs();
          if (answer.status === 200 && answer.text === 'success') posted.push({ seq, msgId, sentAtMs, answeredAtMs });
          else failures.push(`MsgId ${msgId}: ${answer.status} ${answer.text.slice(0, 200)}`);
        } catch (err) {
          failures.push(`MsgId ${msgId}: ${errorText(err)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(ctx.concurrency, count) }, worker));
    return { posted, failures };
  };

  const warmup = await postAll(0, WARMUP_CALLBACKS);
  if (warmup.failures.length > 0) throw new Error(`wechat warm-up: ${warmup.failures.length} callbacks not answered success: ${warmup.failures.slice(0, 3).join('; ')}`);
  await waitForAll(
    warmup.posted.map((p) => p.msgId),
    DELIVERY_STALL_MS,
  );
  await gateway.drainQueues(DRAIN_TIMEOUT_MS);
  step(`wechat: warm-up: ${WARMUP_CALLBACKS} callbacks (not counted)`);

  const pingsBefore = await measurePings(pingSockets, PINGS);
  step(`wechat: posting ${ctx.callbacks} signed safe-mode callbacks, ${ctx.concurrency} in flight...`);
  const startMs = nowMs();
  const run = await postAll(WARMUP_CALLBACKS, ctx.callbacks);
  const endMs = nowMs();
  step(`wechat: ${run.posted.length} answered success in ${round((endMs - startMs) / 1000)} s; waiting for the agent's frames...`);
  await waitForAll(
    run.posted.map((p) => p.msgId),
    DELIVERY_STALL_MS,
  );
  await gateway.drainQueues(DRAIN_TIMEOUT_MS);
  const pingsAfter = await measurePings(pingSockets, PINGS);

  const expected = new Set(run.posted.map((p) => p.msgId));
  const warmupIds = new Set(warmup.posted.map((p) => p.msgId));
  const endToEnd: number[] = [];
  const lostExamples: string[] = [];
  let delivered = 0;
  let duplicates = 0;
  let unexpected = 0;
  let lastFirstMs = 0;
  for (const p of run.posted) {
    const times = arrivals.get(p.msgId);
    if (!times) {
      if (lostExamples.length < 10) lostExamples.push(`MsgId ${p.msgId} from ${fromOf(p.seq)}`);
      continue;
    }
    delivered++;
    endToEnd.push(times[0]! - p.sentAtMs);
    lastFirstMs = Math.max(lastFirstMs, times[0]!);
  }
  for (const [msgId, times] of arrivals) {
    if (expected.has(msgId) || warmupIds.has(msgId)) duplicates += times.length - 1;
    else unexpected += times.length;
  }

  const ackMs = summarize(run.posted.map((p) => p.answeredAtMs - p.sentAtMs));
  const pingMs = summarize([...pingsBefore, ...pingsAfter]);
  const endToEndMs = summarize(endToEnd);
  const messagingPing = ctx.messagingPingP50Ms;
  return {
    accountId: account.accountId,
    mode: 'safe',
    callbacks: ctx.callbacks,
    concurrency: ctx.concurrency,
    wechatUsers: Math.min(WECHAT_USERS, ctx.callbacks),
    warmupCallbacks: WARMUP_CALLBACKS,
    acked: run.posted.length,
    nonSuccess: run.failures.length,
    nonSuccessExamples: run.failures.slice(0, 10),
    wallSeconds: round((endMs - startMs) / 1000, 3),
    ackedPerSecond: perSecond(run.posted.length, endMs - startMs),
    ackMs,
    overLimit: run.posted.filter((p) => p.answeredAtMs - p.sentAtMs > WECHAT_LIMIT_MS).length,
    ackP99OfLimit: round(ackMs.p99 / WECHAT_LIMIT_MS, 4),
    pingSockets: pingSockets.length,
    pingMs,
    pingP50BeforeMs: summarize(pingsBefore).p50,
    pingP50AfterMs: summarize(pingsAfter).p50,
    relativeToPingP50: {
      ackP50: ratio(ackMs.p50, pingMs.p50),
      ackP99: ratio(ackMs.p99, pingMs.p50),
      endToEndP50: ratio(endToEndMs.p50, pingMs.p50),
      endToEndP99: ratio(endToEndMs.p99, pingMs.p50),
    },
    messagingPingP50Ms: messagingPing,
    relativeToMessagingPingP50: messagingPing ? { ackP50: ratio(ackMs.p50, messagingPing), ackP99: ratio(ackMs.p99, messagingPing) } : null,
    delivery: {
      expected: expected.size,
      delivered,
      lost: expected.size - delivered,
      duplicates,
      unexpected,
      endToEndMs,
      trailSeconds: round(Math.max(0, lastFirstMs - endMs) / 1000, 3),
      deliveredPerSecond: perSecond(delivered, Math.max(lastFirstMs, endMs) - startMs),
      lostExamples,
    },
  };
}

/** Worth a non-zero exit: a callback not answered `success` (WeChat would retry it), or an answered one the agent never got. */
export function wechatFailures(f: WechatFigures): string[] {
  const problems: string[] = [];
  if (f.nonSuccess > 0) problems.push(`wechat: ${f.nonSuccess} of ${f.callbacks} callbacks not answered success: ${f.nonSuccessExamples.join('; ')}`);
  if (f.delivery.lost > 0) problems.push(`wechat: ${f.delivery.lost} callbacks answered success never reached the agent (no new frame for ${DELIVERY_STALL_MS / 1000} s): ${f.delivery.lostExamples.join('; ')}`);
  return problems;
}

/** Every problem to print: the failures, and what de-duplication should have prevented. */
export function wechatProblems(f: WechatFigures): string[] {
  const problems = wechatFailures(f);
  if (f.delivery.duplicates > 0) problems.push(`wechat: ${f.delivery.duplicates} duplicate frames (one MsgId twice on the agent; each callback was posted once)`);
  if (f.delivery.unexpected > 0) problems.push(`wechat: ${f.delivery.unexpected} frames for MsgIds that were not answered success`);
  if (f.overLimit > 0) problems.push(`wechat: ${f.overLimit} callbacks answered after WeChat's ${WECHAT_LIMIT_MS} ms (WeChat would have retried them)`);
  return problems;
}
