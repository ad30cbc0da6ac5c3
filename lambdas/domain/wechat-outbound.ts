import { createHash } from 'node:crypto';
import type { Clock } from './clock';
import { epochSeconds } from './clock';
import type { ConnectionRegistry } from './connection-registry';
import { connectionsOf, deliver, type DeliveryDeps } from './delivery';
import { badRequest, GatewayError } from './errors';
import type { WechatAccounts, WechatAccount } from './wechat-accounts';
import { WechatApiError, WechatNetworkError, type AccessTokens, type OutboundCall, type WechatApiReply, type WechatMessagingApi } from './wechat-api';
import { NETWORK_FAILURE, retryDecision, ruleFor, type RetryRule } from './wechat-retry-policy';

/**
 * Outbound WeChat messages (docs/wechat.md, "Answering WeChat users"): an agent's reply from a
 * WebSocket, or a backend's message from the admin API, becomes an outbound record with a
 * delivery state, and one queue message per attempt. The worker sends it with a cached access
 * token and decides by error code (wechat-retry-policy.ts) whether it is sent, failed, or tried
 * again later through the queue. Every state change is visible: `GET` on the admin API, and a
 * `status` frame to the devices of the WebSocket user who sent it.
 *
 * One attempt at a time: the worker claims the record for (state, attempt) with a conditional
 * write and a lease, so duplicate queue messages (standard queues redeliver) never send twice.
 * What cannot be made exactly-once: a worker that dies after WeChat accepted a call and before
 * it recorded `sent` leaves the claim to expire, and the message is sent again. Template
 * messages carry `client_msg_id`, which WeChat de-duplicates for 10 minutes; customer-service
 * and WeCom messages have no such key (documented as at-least-once in that window).
 */

/** How the message is sent: a customer-service / WeCom application message, a template or a subscribe message. */
export type OutboundKind = 'service' | 'template' | 'subscribe';

export type OutboundState = 'queued' | 'sending' | 'retrying' | 'sent' | 'failed';

export interface OutboundRecord {
  id: string;
  accountId: string;
  /** The WeChat user: an openId (official accounts, mini-programs) or a WeCom user id. */
  openId: string;
  kind: OutboundKind;
  /** WeChat's fields for the call, without `touser` / `agentid` (added at send time). */
  message: Record<string, unknown>;
  /** The WebSocket user who sent it (status frames go to their devices); absent for the admin API. */
  requester?: string;
  /** The admin API's idempotency key; template messages pass it to WeChat as client_msg_id. */
  clientMsgId?: string;
  state: OutboundState;
  /** The attempt the queue message in flight carries (1-based). */
  attempt: number;
  /** While `sending`: the claim's expiry. While `retrying`: when the next attempt is due. */
  untilMs: number;
  errcode?: number;
  errmsg?: string;
  createdAt: number;
  updatedAt: number;
  sentAt?: number;
}

export interface OutboundJob {
  id: string;
  attempt: number;
}

export interface OutboundStore {
  /** Creates the record unless one with this id exists; answers the record that is stored. */
  create(record: OutboundRecord, expiresAt: number): Promise<OutboundRecord>;
  get(id: string): Promise<OutboundRecord | undefined>;
  /**
   * Claims attempt `attempt` for sending until `leaseUntilMs`: only if the record is at that
   * attempt and `queued`/`retrying`, or `sending` with an expired claim (its worker died).
   */
  claim(id: string, attempt: number, nowMs: number, leaseUntilMs: number): Promise<OutboundRecord | undefined>;
  /** Ends the claimed attempt: `sent` or `failed` (final), or `retrying` at attempt + 1. Conditional on the claim. */
  settle(id: string, attempt: number, update: Pick<OutboundRecord, 'state' | 'untilMs'> & Partial<Pick<OutboundRecord, 'errcode' | 'errmsg' | 'sentAt'>>, nowMs: number): Promise<boolean>;
}

export interface OutboundQueue {
  enqueue(job: OutboundJob, delaySeconds: number): Promise<void>;
}

export interface OutboundStatusFrame {
  type: 'status';
  msgId: string;
  state: 'sent' | 'failed';
  /** WeChat's error code, when WeChat refused it. */
  errcode?: number;
  message?: string;
}

/** Thrown for a queue copy of an attempt another worker is sending: the queue retries it later. */
export class AttemptInProgressError extends Error {
  constructor(id: string, leaseUntilMs: number) {
    super(`outbound ${id}: the attempt is being sent by another worker (claim until ${new Date(leaseUntilMs).toISOString()}); retried later`);
    this.name = 'AttemptInProgressError';
  }
}

/**
 * Claims outlive the worker's 60 s timeout (lib/gateway-declaration.ts), so a live worker never
 * loses its claim mid-call; the worst job (a 12 s wait for another caller's token refresh, a 5 s
 * token call, a 5 s send, a refresh and a second send) stays well inside that timeout. The queue's
 * visibility timeout (360 s) is longer than the claim, so a redelivered copy finds it expired.
 */
export const SEND_LEASE_MS = 90_000;
/** Outbound records are kept this long for `GET` (and de-duplication of clientMsgId). */
export const OUTBOUND_RECORD_TTL_SECONDS = 7 * 86_400;

export interface SubmitDeps {
  store: OutboundStore;
  queue: OutboundQueue;
  clock: Clock;
}

/** What a sender submits: the record's identity and content, before any delivery state. */
export type OutboundRequest = Pick<OutboundRecord, 'id' | 'accountId' | 'openId' | 'kind' | 'message' | 'requester' | 'clientMsgId'>;

/** Whole seconds from `nowMs` until `untilMs` (0 once it has passed): a queue delay. */
const secondsUntil = (untilMs: number, nowMs: number): number => Math.max(0, Math.ceil((untilMs - nowMs) / 1000));

/**
 * Records the message (idempotently: the same id answers the record already stored) and queues
 * its first attempt. Queueing again for an existing record is harmless (the claim drops a second
 * copy) and is what makes a retried submission after a crash between the two steps safe.
 */
export async function submitOutbound(deps: SubmitDeps, request: OutboundRequest): Promise<OutboundRecord> {
  const now = deps.clock.nowMs();
  const record = await deps.store.create(
    { ...request, state: 'queued', attempt: 1, untilMs: 0, createdAt: now, updatedAt: now },
    epochSeconds(now) + OUTBOUND_RECORD_TTL_SECONDS,
  );
  // A retrying record keeps its wait (a 45011 minute, a backoff): its attempt is queued no sooner than it is due.
  if (record.state === 'queued' || record.state === 'retrying') await deps.queue.enqueue({ id: record.id, attempt: record.attempt }, secondsUntil(record.untilMs, now));
  return record;
}

/** WeChat's customer-service message from a client's `body`: `{"text":"…"}`, or WeChat's own fields `{"msgtype":"image","image":{…}}`. */
export function serviceMessageOf(body: unknown): Record<string, unknown> {
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
    const fields = body as Record<string, unknown>;
    if (typeof fields.text === 'string' && Object.keys(fields).length === 1) {
      if (fields.text.length === 0) throw badRequest('body.text must not be empty');
      return { msgtype: 'text', text: { content: fields.text } };
    }
    // Own fields only: {"msgtype":"__proto__"} must not pass on the inherited Object.prototype,
    // nor on an own "__proto__" member (JSON.parse makes one), which a store round trip turns into a prototype.
    if (
      typeof fields.msgtype === 'string' &&
      /^[a-z_]{1,32}$/.test(fields.msgtype) &&
      fields.msgtype !== '__proto__' &&
      Object.hasOwn(fields, fields.msgtype) &&
      typeof fields[fields.msgtype] === 'object' &&
      fields[fields.msgtype] !== null
    ) {
      const addressing = ADDRESSING_FIELDS.filter((field) => Object.hasOwn(fields, field));
      if (addressing.length > 0) throw badRequest(`body must not carry ${addressing.join(', ')}: the gateway addresses the message to the one user named by openId`);
      return fields;
    }
  }
  throw badRequest('a message to a WeChat user needs body {"text":"…"} or WeChat fields {"msgtype":"<type>","<type>":{…}}');
}

/**
 * Fields that address a message. The gateway sets `touser` (and WeCom's `agentid`) from the
 * record; WeCom's `toparty` / `totag` would send an application message to a whole department or
 * tag, beside the one user an agent answers.
 */
const ADDRESSING_FIELDS = ['touser', 'agentid', 'toparty', 'totag'] as const;

const MAX_OPEN_ID = 128;
/**
 * One WeChat user: an openId (official accounts, mini-programs: letters, digits, `_`, `-`) or a
 * WeCom user id (letters, digits, `_-@.`, starting with a letter or digit). Never WeCom's `@all`
 * nor a `|`-separated list, which would send one application message to many people.
 */
const WECHAT_USER_ID = /^[A-Za-z0-9_-][A-Za-z0-9_.@-]*$/;
export const isWechatUserId = (value: unknown): value is string => typeof value === 'string' && value.length <= MAX_OPEN_ID && WECHAT_USER_ID.test(value);
const OPEN_ID_RULE = `openId must be one WeChat user: an openId or WeCom user id of 1-${MAX_OPEN_ID} characters of [A-Za-z0-9_.@-], not starting with "@" or "."`;

/** Parses the admin API's `POST /v1/wechat/{accountId}/messages` body into a request (without id). */
export function adminOutboundOf(body: unknown): { openId: string; kind: OutboundKind; message: Record<string, unknown>; clientMsgId?: string } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('body must be a JSON object');
  const { openId, clientMsgId, ...fields } = body as Record<string, unknown>;
  if (!isWechatUserId(openId)) throw badRequest(OPEN_ID_RULE);
  if (clientMsgId !== undefined && (typeof clientMsgId !== 'string' || !/^[A-Za-z0-9_-]{1,32}$/.test(clientMsgId))) {
    throw badRequest('clientMsgId must be 1-32 characters of [A-Za-z0-9_-]');
  }
  const msgtype = fields.msgtype;
  if (msgtype === 'template' || msgtype === 'subscribe') {
    const spec = fields[msgtype];
    if (Object.keys(fields).length !== 2 || typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
      throw badRequest(`a ${msgtype} message is {"openId","msgtype":"${msgtype}","${msgtype}":{"template_id","data",…}}`);
    }
    const s = spec as Record<string, unknown>;
    if (typeof s.template_id !== 'string' || s.template_id.length === 0) throw badRequest(`${msgtype}.template_id is required`);
    if (typeof s.data !== 'object' || s.data === null) throw badRequest(`${msgtype}.data must be an object`);
    if ('touser' in s || 'client_msg_id' in s) throw badRequest(`${msgtype} must not carry touser or client_msg_id: use openId and clientMsgId`);
    return { openId, kind: msgtype, message: s, clientMsgId: clientMsgId as string | undefined };
  }
  return { openId, kind: 'service', message: serviceMessageOf(fields), clientMsgId: clientMsgId as string | undefined };
}

/** The record id of an admin submission with a clientMsgId: the same key names the same record. */
export const outboundIdOf = (accountId: string, clientMsgId: string): string =>
  'c' + createHash('sha256').update(`${accountId}\n${clientMsgId}`).digest('hex').slice(0, 25);

/** What `GET /v1/wechat/{accountId}/messages/{messageId}` shows. */
export function outboundView(record: OutboundRecord) {
  const { id, accountId, openId, kind, state, attempt, errcode, errmsg, createdAt, updatedAt, sentAt, clientMsgId } = record;
  // `attempt` is the attempt in flight or next; `attempts` counts those made (or being made).
  const attempts = state === 'queued' || state === 'retrying' ? attempt - 1 : attempt;
  return { messageId: id, accountId, openId, kind, state, attempts, clientMsgId, errcode, errmsg, createdAt, updatedAt, sentAt };
}

export interface OutboundWorkerDeps {
  store: OutboundStore;
  queue: OutboundQueue;
  accounts: () => Promise<WechatAccounts>;
  tokens: AccessTokens;
  api: WechatMessagingApi;
  clock: Clock;
  random: () => number;
  /** Tells the requester's devices; failures are the caller's to log, never a reason to resend. */
  notify: (record: OutboundRecord, frame: OutboundStatusFrame) => Promise<void>;
}

export type OutboundOutcome = 'sent' | 'failed' | 'retrying' | 'skipped';

/** The call and its payload for an account; a WeCom account sends application messages with its AgentId. */
/**
 * The message types each API takes (WeChat's customer-service message API and WeCom's application
 * message API), so a message the account cannot send is refused when it is submitted (400 at the
 * admin API, a `failed` status for a reply) instead of failing at WeChat with 40008.
 */
const SERVICE_MSGTYPES: Readonly<Record<WechatAccount['kind'], ReadonlySet<string>>> = {
  oa: new Set(['text', 'image', 'voice', 'video', 'music', 'news', 'mpnews', 'mpnewsarticle', 'msgmenu', 'wxcard', 'miniprogrampage']),
  wecom: new Set(['text', 'image', 'voice', 'video', 'file', 'textcard', 'news', 'mpnews', 'markdown', 'miniprogram_notice', 'template_card']),
};

export function callFor(account: WechatAccount, record: Pick<OutboundRecord, 'kind' | 'openId' | 'message' | 'id' | 'clientMsgId'>): { call: OutboundCall; payload: Record<string, unknown> } {
  if (!account.appSecret) throw new GatewayError('bad_request', `account "${account.accountId}" has no appSecret configured, which sending needs (access tokens)`);
  // Whatever a record holds, a call reaches one user (see ADDRESSING_FIELDS).
  if (!isWechatUserId(record.openId)) throw badRequest(OPEN_ID_RULE);
  if (Object.hasOwn(record.message, 'toparty') || Object.hasOwn(record.message, 'totag')) throw badRequest('a message must not carry toparty or totag');
  if (record.kind === 'service' && !SERVICE_MSGTYPES[account.kind].has(String(record.message.msgtype))) {
    throw badRequest(`msgtype "${String(record.message.msgtype).slice(0, 32)}" is not one ${account.kind === 'wecom' ? 'a WeCom application' : 'an official account'} can send; it takes ${[...SERVICE_MSGTYPES[account.kind]].join(', ')}`);
  }
  if (account.kind === 'wecom') {
    if (record.kind !== 'service') throw new GatewayError('bad_request', `WeCom account "${account.accountId}" sends application messages only, not ${record.kind} messages`);
    if (account.agentId === undefined) throw new GatewayError('bad_request', `WeCom account "${account.accountId}" has no agentId configured`);
    return { call: 'wecom/message/send', payload: { ...record.message, touser: record.openId, agentid: account.agentId } };
  }
  if (record.kind === 'template') {
    // WeChat drops a second template send with the same client_msg_id: the crash window above is closed for templates.
    return { call: 'template/send', payload: { ...record.message, touser: record.openId, client_msg_id: record.clientMsgId ?? record.id } };
  }
  if (record.kind === 'subscribe') return { call: 'subscribe/send', payload: { ...record.message, touser: record.openId } };
  return { call: 'custom/send', payload: { ...record.message, touser: record.openId } };
}

type CallResult = { ok: true } | { ok: false; rule: RetryRule; errcode?: number; errmsg: string };

const failureOf = (err: unknown): CallResult => {
  if (err instanceof WechatApiError) return { ok: false, rule: ruleFor(err.errcode), errcode: err.errcode, errmsg: err.errmsg };
  if (err instanceof WechatNetworkError) return { ok: false, rule: NETWORK_FAILURE, errmsg: err.message };
  throw err;
};

/**
 * WeCom's message/send answers errcode 0 when some recipients are not reached, listing them
 * (`invaliduser`: not in the application's visible range or unknown; `unlicenseduser`: no
 * licence). Our one recipient listed there was not sent the message.
 */
const WECOM_UNREACHED = ['invaliduser', 'unlicenseduser'] as const;

const replyResult = (reply: WechatApiReply): CallResult => {
  if (reply.errcode !== 0) return { ok: false, rule: ruleFor(reply.errcode), errcode: reply.errcode, errmsg: reply.errmsg };
  const unreached = WECOM_UNREACHED.find((field) => typeof reply[field] === 'string' && reply[field] !== '');
  if (unreached) {
    return { ok: false, rule: { action: 'permanent', reason: "WeCom did not send it to this user (not in the application's visible range, unknown, or unlicensed)" }, errmsg: `WeCom answered ok but listed the user in ${unreached}` };
  }
  return { ok: true };
};

/**
 * A token call's own refusal. An invalid-token code there is about the credentials, not a stale
 * token: WeCom's gettoken answers 40001 for a wrong corpsecret. Reported as such, never retried.
 */
const tokenFailureOf = (err: unknown): CallResult => {
  const result = failureOf(err);
  if (result.ok || result.rule.action !== 'refresh-token') return result;
  return { ...result, rule: { action: 'permanent', reason: "the token endpoint refused the account's credentials (WeCom answers 40001 for a wrong corpsecret): fix appSecret / receiveId" } };
};

/** One call with a token; on an invalid-token code, one refreshed token and one more call. */
async function sendOnce(deps: OutboundWorkerDeps, account: WechatAccount, call: OutboundCall, payload: Record<string, unknown>): Promise<CallResult> {
  let token: string;
  try {
    token = await deps.tokens.get(account);
  } catch (err) {
    return tokenFailureOf(err);
  }
  let result = await deps.api.call(account, call, token, payload).then(replyResult, failureOf);
  if (!result.ok && result.rule.action === 'refresh-token') {
    try {
      token = await deps.tokens.refreshAfterInvalid(account, token);
    } catch (err) {
      return tokenFailureOf(err);
    }
    result = await deps.api.call(account, call, token, payload).then(replyResult, failureOf);
  }
  return result;
}

/** The worker's step for one queue message. Throws only for infrastructure errors (the queue redelivers). */
export async function processOutbound(deps: OutboundWorkerDeps, job: OutboundJob): Promise<OutboundOutcome> {
  const record = await deps.store.get(job.id);
  if (!record || record.state === 'sent' || record.state === 'failed') return 'skipped';
  if (job.attempt < record.attempt) {
    // A worker recorded the retry and died before queueing it: this older copy queues it again.
    if (record.state === 'retrying' && job.attempt === record.attempt - 1) {
      await deps.queue.enqueue({ id: record.id, attempt: record.attempt }, secondsUntil(record.untilMs, deps.clock.nowMs()));
    }
    return 'skipped';
  }
  const now = deps.clock.nowMs();
  const claimed = await deps.store.claim(job.id, job.attempt, now, now + SEND_LEASE_MS);
  if (!claimed) {
    // Another worker holds this attempt: hand the copy back to the queue rather than drop it, so
    // that if the holder dies the attempt is taken over once its lease ends (never left `sending`).
    const current = await deps.store.get(job.id);
    if (current?.state === 'sending' && current.attempt === job.attempt) throw new AttemptInProgressError(job.id, current.untilMs);
    return 'skipped'; // settled meanwhile, or moved on to a later attempt
  }

  const account = (await deps.accounts()).get(claimed.accountId);
  let result: CallResult;
  if (!account) {
    result = { ok: false, rule: { action: 'permanent', reason: 'unknown account' }, errmsg: `account "${claimed.accountId}" is not configured` };
  } else {
    let request: ReturnType<typeof callFor> | undefined;
    try {
      request = callFor(account, claimed);
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err;
      result = { ok: false, rule: { action: 'permanent', reason: 'configuration' }, errmsg: err.message };
    }
    result ??= await sendOnce(deps, account, request!.call, request!.payload);
  }

  const settledAt = deps.clock.nowMs();
  if (result.ok) {
    await settle(deps, claimed, { state: 'sent', untilMs: 0, sentAt: settledAt }, settledAt, { type: 'status', msgId: claimed.id, state: 'sent' });
    return 'sent';
  }
  const decision = retryDecision(result.rule, claimed.attempt, deps.random);
  if (decision.retry) {
    const next = { state: 'retrying' as const, untilMs: settledAt + decision.delaySeconds * 1000, errcode: result.errcode, errmsg: result.errmsg };
    if (await deps.store.settle(claimed.id, claimed.attempt, next, settledAt)) await deps.queue.enqueue({ id: claimed.id, attempt: claimed.attempt + 1 }, decision.delaySeconds);
    return 'retrying';
  }
  await settle(deps, claimed, { state: 'failed', untilMs: 0, errcode: result.errcode, errmsg: result.errmsg }, settledAt, {
    type: 'status',
    msgId: claimed.id,
    state: 'failed',
    ...(result.errcode !== undefined ? { errcode: result.errcode } : {}),
    message: result.errcode !== undefined ? `WeChat error ${result.errcode}: ${result.rule.reason}` : `${result.errmsg} (${result.rule.reason})`,
  });
  return 'failed';
}

async function settle(
  deps: OutboundWorkerDeps,
  record: OutboundRecord,
  update: Parameters<OutboundStore['settle']>[2],
  nowMs: number,
  frame: OutboundStatusFrame,
): Promise<void> {
  if (!(await deps.store.settle(record.id, record.attempt, update, nowMs))) return; // the claim was lost: the other worker reports
  await deps.notify({ ...record, ...update }, frame);
}

/** The status frame goes to every online device of the user who sent the message. */
export async function notifyRequester(deps: { registry: ConnectionRegistry; delivery: DeliveryDeps; clock: Clock }, record: OutboundRecord, frame: OutboundStatusFrame): Promise<void> {
  if (!record.requester) return;
  const targets = await connectionsOf(deps.registry, [record.requester], deps.clock.nowMs());
  await deliver(deps.delivery, targets, JSON.stringify(frame));
}
