/**
 * Tries to break the outbound worker (lambdas/domain/wechat-outbound.ts): every case drives
 * processOutbound with the house fakes (FakeOutboundStore holds the DynamoDB adapter's
 * conditions, proven by test/integration/outbound-store-contract.test.ts), a scripted WeChat
 * messaging API and access tokens the test controls, and checks everything the worker leaves
 * behind: the record, the calls WeChat saw, the queue jobs and their delays, the status frames.
 */
import { GatewayError } from '../../../lambdas/domain/errors';
import type { WechatAccount } from '../../../lambdas/domain/wechat-accounts';
import {
  WechatApiError,
  WechatNetworkError,
  type AccessTokens,
  type OutboundCall,
  type WechatApiReply,
  type WechatMessagingApi,
} from '../../../lambdas/domain/wechat-api';
import {
  adminOutboundOf,
  AttemptInProgressError,
  callFor,
  notifyRequester,
  outboundIdOf,
  outboundView,
  processOutbound,
  SEND_LEASE_MS,
  OUTBOUND_RECORD_TTL_SECONDS,
  serviceMessageOf,
  submitOutbound,
  type OutboundRecord,
  type OutboundRequest,
  type OutboundStatusFrame,
  type OutboundWorkerDeps,
} from '../../../lambdas/domain/wechat-outbound';
import { BASE_BACKOFF_SECONDS, MAX_ATTEMPTS, ruleFor } from '../../../lambdas/domain/wechat-retry-policy';
import {
  connectionRecord,
  FakeConnectionRegistry,
  FakeConnectionSender,
  fakeDeliveryDeps,
  FakeOutboundQueue,
  FakeOutboundStore,
  ManualClock,
} from '../../support/fakes';

const NOW = Date.UTC(2026, 0, 1, 12);

const OA: WechatAccount = { accountId: 'oa1', kind: 'oa', token: 'tok123', receiveId: 'wx0123456789', appSecret: 'secret' };
const WECOM: WechatAccount = { accountId: 'wc1', kind: 'wecom', token: 'tok123', encodingAESKey: 'a'.repeat(43), receiveId: 'ww0123', appSecret: 'secret', agentId: 1000002 };
const WECOM_NO_AGENT: WechatAccount = { accountId: 'wc2', kind: 'wecom', token: 'tok123', encodingAESKey: 'a'.repeat(43), receiveId: 'ww0124', appSecret: 'secret' };

// --- Fakes of the WeChat ports ---

type Step = { errcode: number; errmsg?: string } | 'network' | 'hang';

interface ApiCall {
  accountId: string;
  call: OutboundCall;
  token: string;
  payload: Record<string, unknown>;
}

/** WeChat's messaging API answering a programmed sequence; an unscripted call fails the test. */
class ScriptedMessagingApi implements WechatMessagingApi {
  readonly calls: ApiCall[] = [];
  private readonly steps: Step[] = [];

  script(...steps: Step[]): this {
    this.steps.push(...steps);
    return this;
  }

  get remaining(): number {
    return this.steps.length;
  }

  async call(account: WechatAccount, call: OutboundCall, accessToken: string, payload: Record<string, unknown>): Promise<WechatApiReply> {
    this.calls.push({ accountId: account.accountId, call, token: accessToken, payload: structuredClone(payload) });
    await Promise.resolve();
    const step = this.steps.shift();
    if (step === undefined) throw new Error(`unscripted WeChat call #${this.calls.length}: ${call}`);
    if (step === 'network') throw new WechatNetworkError('socket hang up', call);
    if (step === 'hang') return new Promise<never>(() => undefined); // the worker dies here
    return { errcode: step.errcode, errmsg: step.errmsg ?? (step.errcode === 0 ? 'ok' : `error ${step.errcode}`) };
  }
}

const ok: Step = { errcode: 0 };

/** Tokens the test controls: `token-1`, then `token-2` after a refresh of the current one. */
class FakeAccessTokens implements AccessTokens {
  private generation = 1;
  gets = 0;
  readonly refreshes: string[] = [];
  getError?: Error;
  refreshError?: Error;

  get current(): string {
    return `token-${this.generation}`;
  }

  async get(_account: WechatAccount): Promise<string> {
    this.gets++;
    await Promise.resolve();
    if (this.getError) throw this.getError;
    return this.current;
  }

  async refreshAfterInvalid(_account: WechatAccount, staleToken: string): Promise<string> {
    this.refreshes.push(staleToken);
    await Promise.resolve();
    if (this.refreshError) throw this.refreshError;
    if (staleToken === this.current) this.generation++;
    return this.current;
  }
}

// --- The rig ---

function rig(accountList: WechatAccount[] = [OA, WECOM, WECOM_NO_AGENT]) {
  const clock = new ManualClock(NOW);
  const store = new FakeOutboundStore();
  const queue = new FakeOutboundQueue();
  const api = new ScriptedMessagingApi();
  const tokens = new FakeAccessTokens();
  const accounts = new Map(accountList.map((a) => [a.accountId, a]));
  const notified: Array<{ record: OutboundRecord; frame: OutboundStatusFrame }> = [];
  let accountLoads = 0;
  const deps: OutboundWorkerDeps = {
    store,
    queue,
    accounts: async () => {
      accountLoads++;
      return accounts;
    },
    tokens,
    api,
    clock,
    random: () => 0.5,
    notify: async (record, frame) => {
      notified.push({ record: structuredClone(record), frame: structuredClone(frame) });
    },
  };
  let ids = 0;
  const submit = async (overrides: Partial<OutboundRequest> = {}) =>
    submitOutbound(
      { store, queue, clock },
      {
        id: `m${++ids}`,
        accountId: OA.accountId,
        openId: 'oUser_abc-123',
        kind: 'service',
        message: { msgtype: 'text', text: { content: '您好 hello' } },
        requester: 'agent-7',
        ...overrides,
      },
    );
  /** Runs the oldest queued job after its delay; answers its outcome. */
  const runNext = async () => {
    const next = queue.next();
    if (!next) throw new Error('no job queued');
    clock.advance(next.delaySeconds * 1000);
    return { job: next.job, delaySeconds: next.delaySeconds, outcome: await processOutbound(deps, next.job) };
  };
  /** Runs queued jobs until none is left (at most `limit`). */
  const drain = async (limit = 20) => {
    const outcomes: string[] = [];
    while (queue.pending.length > 0 && outcomes.length < limit) outcomes.push((await runNext()).outcome);
    return outcomes;
  };
  return { clock, store, queue, api, tokens, accounts, notified, deps, submit, runNext, drain, accountLoads: () => accountLoads };
}

const jobsOf = (queue: FakeOutboundQueue) => queue.sent.map((entry) => ({ ...entry.job, delaySeconds: entry.delaySeconds }));
const framesOf = (notified: Array<{ frame: OutboundStatusFrame }>) => notified.map((n) => n.frame);

/** The backoff window of `attempt` that failed (wechat-retry-policy.ts). */
const windowAfter = (attempt: number) => BASE_BACKOFF_SECONDS * 2 ** (attempt - 1);

describe('processOutbound', () => {
  it('success: one call with the token and touser, the record is sent, one sent frame, no more jobs', async () => {
    const t = rig();
    t.api.script(ok);
    const record = await t.submit();
    expect(record).toMatchObject({ state: 'queued', attempt: 1 });
    t.clock.advance(250);
    await expect(processOutbound(t.deps, t.queue.next()!.job)).resolves.toBe('sent');

    expect(t.store.record(record.id)).toStrictEqual({
      ...record,
      state: 'sent',
      attempt: 1,
      untilMs: 0,
      updatedAt: NOW + 250,
      sentAt: NOW + 250,
    });
    expect(t.api.calls).toEqual([
      { accountId: 'oa1', call: 'custom/send', token: 'token-1', payload: { msgtype: 'text', text: { content: '您好 hello' }, touser: 'oUser_abc-123' } },
    ]);
    expect(t.tokens.gets).toBe(1);
    expect(t.tokens.refreshes).toEqual([]);
    expect(jobsOf(t.queue)).toEqual([{ id: record.id, attempt: 1, delaySeconds: 0 }]);
    expect(framesOf(t.notified)).toEqual([{ type: 'status', msgId: record.id, state: 'sent' }]);
    expect(t.notified[0]!.record).toMatchObject({ id: record.id, requester: 'agent-7', state: 'sent' });
  });

  it('WeCom: an application message with agentid and touser, to wecom/message/send', async () => {
    const t = rig();
    t.api.script(ok);
    const record = await t.submit({ accountId: WECOM.accountId, openId: 'ZhangSan' });
    await expect(t.runNext()).resolves.toMatchObject({ outcome: 'sent' });
    expect(t.api.calls).toEqual([
      { accountId: 'wc1', call: 'wecom/message/send', token: 'token-1', payload: { msgtype: 'text', text: { content: '您好 hello' }, touser: 'ZhangSan', agentid: 1000002 } },
    ]);
    expect(t.store.record(record.id).state).toBe('sent');
  });

  it('template: client_msg_id is the clientMsgId (WeChat de-duplicates on it), else the record id', async () => {
    const t = rig();
    t.api.script(ok, ok);
    const message = { template_id: 'T1', data: { k: { value: 'v' } }, url: 'https://example.com' };
    const withKey = await t.submit({ kind: 'template', message, clientMsgId: 'order-42' });
    const withoutKey = await t.submit({ kind: 'template', message });
    await t.drain();
    expect(t.api.calls.map((c) => [c.call, c.payload])).toEqual([
      ['template/send', { ...message, touser: 'oUser_abc-123', client_msg_id: 'order-42' }],
      ['template/send', { ...message, touser: 'oUser_abc-123', client_msg_id: withoutKey.id }],
    ]);
    expect(t.store.record(withKey.id).state).toBe('sent');
    expect(t.store.record(withoutKey.id).state).toBe('sent');
  });

  it('subscribe: subscribe/send with touser and no client_msg_id', async () => {
    const t = rig();
    t.api.script(ok);
    await t.submit({ kind: 'subscribe', message: { template_id: 'S1', data: { thing1: { value: 'x' } }, page: 'index' } });
    await t.drain();
    expect(t.api.calls.map((c) => [c.call, c.payload])).toEqual([['subscribe/send', { template_id: 'S1', data: { thing1: { value: 'x' } }, page: 'index', touser: 'oUser_abc-123' }]]);
  });

  it('40001: exactly one refreshAfterInvalid with the stale token, one retry with the fresh one, sent', async () => {
    const t = rig();
    t.api.script({ errcode: 40001, errmsg: 'invalid credential' }, ok);
    const record = await t.submit();
    await expect(t.runNext()).resolves.toMatchObject({ outcome: 'sent' });
    expect(t.tokens.gets).toBe(1);
    expect(t.tokens.refreshes).toEqual(['token-1']);
    expect(t.api.calls.map((c) => c.token)).toEqual(['token-1', 'token-2']);
    expect(t.api.calls[1]!.payload).toEqual(t.api.calls[0]!.payload);
    const stored = t.store.record(record.id);
    expect(stored).toMatchObject({ state: 'sent', attempt: 1 });
    expect(stored).not.toHaveProperty('errcode');
    expect(jobsOf(t.queue)).toHaveLength(1);
    expect(framesOf(t.notified)).toEqual([{ type: 'status', msgId: record.id, state: 'sent' }]);
  });

  it.each([40014, 42001])('%i is an invalid token too: one refresh, one retry', async (code) => {
    const t = rig();
    t.api.script({ errcode: code }, ok);
    await t.submit();
    await expect(t.runNext()).resolves.toMatchObject({ outcome: 'sent' });
    expect(t.tokens.refreshes).toEqual(['token-1']);
    expect(t.api.calls).toHaveLength(2);
  });

  it('40001 twice: failed with errcode 40001, one refresh, no third call, no retry job', async () => {
    const t = rig();
    t.api.script({ errcode: 40001, errmsg: 'invalid credential' }, { errcode: 40001, errmsg: 'invalid credential' });
    const record = await t.submit();
    await expect(t.runNext()).resolves.toMatchObject({ outcome: 'failed' });
    expect(t.api.calls).toHaveLength(2);
    expect(t.tokens.refreshes).toEqual(['token-1']);
    expect(t.store.record(record.id)).toMatchObject({ state: 'failed', attempt: 1, errcode: 40001, errmsg: 'invalid credential', untilMs: 0 });
    expect(jobsOf(t.queue)).toHaveLength(1);
    expect(framesOf(t.notified)).toEqual([{ type: 'status', msgId: record.id, state: 'failed', errcode: 40001, message: expect.stringContaining('40001') }]);
    // A redelivered copy changes nothing.
    await expect(processOutbound(t.deps, { id: record.id, attempt: 1 })).resolves.toBe('skipped');
    expect(t.api.calls).toHaveLength(2);
  });

  it('-1: retrying at attempt 2 with a job delayed within the backoff window; that job then sends', async () => {
    const t = rig();
    t.api.script({ errcode: -1, errmsg: 'system error' }, ok);
    const record = await t.submit();
    await expect(t.runNext()).resolves.toMatchObject({ outcome: 'retrying' });

    const [first, retry] = jobsOf(t.queue);
    expect(first).toEqual({ id: record.id, attempt: 1, delaySeconds: 0 });
    expect(retry).toMatchObject({ id: record.id, attempt: 2 });
    expect(retry!.delaySeconds).toBeGreaterThanOrEqual(Math.ceil(windowAfter(1) / 2));
    expect(retry!.delaySeconds).toBeLessThanOrEqual(windowAfter(1));
    expect(t.store.record(record.id)).toMatchObject({ state: 'retrying', attempt: 2, errcode: -1, errmsg: 'system error', untilMs: NOW + retry!.delaySeconds * 1000 });
    expect(t.notified).toEqual([]); // retrying is not final: no frame

    await expect(t.runNext()).resolves.toMatchObject({ outcome: 'sent', job: { attempt: 2 } });
    const sent = t.store.record(record.id);
    expect(sent).toMatchObject({ state: 'sent', attempt: 2, untilMs: 0, sentAt: NOW + retry!.delaySeconds * 1000 });
    expect(sent).not.toHaveProperty('errcode');
    expect(sent).not.toHaveProperty('errmsg');
    expect(t.api.calls).toHaveLength(2);
    expect(t.api.calls[1]!.payload).toEqual(t.api.calls[0]!.payload);
    expect(jobsOf(t.queue)).toHaveLength(2);
    expect(framesOf(t.notified)).toEqual([{ type: 'status', msgId: record.id, state: 'sent' }]);
  });

  it('network error: retrying at attempt 2 (no errcode), a delayed job, which then sends', async () => {
    const t = rig();
    t.api.script('network', ok);
    const record = await t.submit();
    await expect(t.runNext()).resolves.toMatchObject({ outcome: 'retrying' });
    const retry = t.queue.sent[1]!;
    expect(retry.job).toEqual({ id: record.id, attempt: 2 });
    expect(retry.delaySeconds).toBeGreaterThanOrEqual(1);
    expect(retry.delaySeconds).toBeLessThanOrEqual(windowAfter(1));
    const retrying = t.store.record(record.id);
    expect(retrying).toMatchObject({ state: 'retrying', attempt: 2, errmsg: expect.stringContaining('socket hang up') });
    expect(retrying).not.toHaveProperty('errcode');
    await expect(t.runNext()).resolves.toMatchObject({ outcome: 'sent' });
    expect(t.store.record(record.id)).toMatchObject({ state: 'sent', attempt: 2 });
    expect(framesOf(t.notified)).toEqual([{ type: 'status', msgId: record.id, state: 'sent' }]);
  });

  it('45011: waits at least a minute before the next attempt', async () => {
    for (const random of [0, 0.5, 0.999]) {
      const t = rig();
      t.deps.random = () => random;
      t.api.script({ errcode: 45011, errmsg: 'api freq out of limit' });
      const record = await t.submit();
      await expect(t.runNext()).resolves.toMatchObject({ outcome: 'retrying' });
      const retry = t.queue.sent[1]!;
      expect(retry.job).toEqual({ id: record.id, attempt: 2 });
      expect(retry.delaySeconds).toBeGreaterThanOrEqual(60);
      expect(retry.delaySeconds).toBeLessThanOrEqual(900);
      expect(t.store.record(record.id)).toMatchObject({ state: 'retrying', errcode: 45011, untilMs: NOW + retry.delaySeconds * 1000 });
    }
  });

  it('45015: failed at once, with a status frame naming the code', async () => {
    const t = rig();
    t.api.script({ errcode: 45015, errmsg: 'response out of time limit or subscription is canceled' });
    const record = await t.submit();
    await expect(t.runNext()).resolves.toMatchObject({ outcome: 'failed' });
    expect(t.store.record(record.id)).toMatchObject({ state: 'failed', attempt: 1, errcode: 45015, untilMs: 0 });
    expect(t.api.calls).toHaveLength(1);
    expect(t.tokens.refreshes).toEqual([]);
    expect(jobsOf(t.queue)).toHaveLength(1);
    expect(framesOf(t.notified)).toEqual([{ type: 'status', msgId: record.id, state: 'failed', errcode: 45015, message: expect.stringContaining('45015') }]);
    expect(t.notified[0]!.frame.message).toContain(ruleFor(45015).reason);
  });

  it('an unknown error code is permanent: failed after one call', async () => {
    const t = rig();
    t.api.script({ errcode: 48001, errmsg: 'api unauthorized' });
    const record = await t.submit();
    await t.drain();
    expect(t.store.record(record.id)).toMatchObject({ state: 'failed', errcode: 48001 });
    expect(t.api.calls).toHaveLength(1);
  });

  it(`MAX_ATTEMPTS (${MAX_ATTEMPTS}) transient failures: retried with growing delays, then failed with the last code`, async () => {
    const t = rig();
    t.api.script(...Array.from({ length: MAX_ATTEMPTS }, () => ({ errcode: -1, errmsg: 'system error' })));
    const record = await t.submit();
    const outcomes = await t.drain();
    expect(outcomes).toEqual([...Array.from({ length: MAX_ATTEMPTS - 1 }, () => 'retrying'), 'failed']);
    expect(t.api.calls).toHaveLength(MAX_ATTEMPTS);
    const jobs = jobsOf(t.queue);
    expect(jobs.map((j) => j.attempt)).toEqual(Array.from({ length: MAX_ATTEMPTS }, (_, i) => i + 1));
    for (const [i, job] of jobs.slice(1).entries()) {
      expect(job.delaySeconds).toBeGreaterThanOrEqual(Math.ceil(windowAfter(i + 1) / 2));
      expect(job.delaySeconds).toBeLessThanOrEqual(windowAfter(i + 1));
    }
    expect(t.store.record(record.id)).toMatchObject({ state: 'failed', attempt: MAX_ATTEMPTS, errcode: -1, untilMs: 0 });
    expect(framesOf(t.notified)).toEqual([{ type: 'status', msgId: record.id, state: 'failed', errcode: -1, message: expect.stringContaining('-1') }]);
  });

  it('a final network failure after a WeChat code: the record and the frame both show no code', async () => {
    const t = rig();
    t.api.script({ errcode: -1, errmsg: 'system error' }, ...Array.from({ length: MAX_ATTEMPTS - 1 }, () => 'network' as const));
    const record = await t.submit();
    await t.drain();
    const stored = t.store.record(record.id);
    expect(stored).toMatchObject({ state: 'failed', attempt: MAX_ATTEMPTS, errmsg: expect.stringContaining('socket hang up') });
    expect(stored).not.toHaveProperty('errcode'); // not -1 from attempt 1 beside attempt 6's network message
    expect(framesOf(t.notified)).toEqual([{ type: 'status', msgId: record.id, state: 'failed', message: expect.stringContaining('network') }]);
    expect(outboundView(stored)).toMatchObject({ state: 'failed', attempts: MAX_ATTEMPTS, errcode: undefined });
  });

  it('duplicate copies of one job processed concurrently: exactly one WeChat call, one frame; the other copy goes back to the queue and is then skipped', async () => {
    const t = rig();
    t.api.script(ok);
    const record = await t.submit();
    const job = t.queue.next()!.job;
    const results = await Promise.allSettled([processOutbound(t.deps, job), processOutbound(t.deps, { ...job })]);
    const sent = results.filter((r) => r.status === 'fulfilled' && r.value === 'sent');
    const others = results.filter((r) => !(r.status === 'fulfilled' && r.value === 'sent'));
    expect(sent).toHaveLength(1);
    expect(others).toHaveLength(1);
    // The loser found the attempt held: it throws so the queue redelivers it (or, had the
    // winner settled first, it skips).
    const loser = others[0]!;
    if (loser.status === 'rejected') expect(loser.reason).toBeInstanceOf(AttemptInProgressError);
    else expect(loser.value).toBe('skipped');
    await expect(processOutbound(t.deps, job)).resolves.toBe('skipped'); // the redelivered copy
    expect(t.api.calls).toHaveLength(1);
    expect(t.store.record(record.id)).toMatchObject({ state: 'sent', attempt: 1 });
    expect(framesOf(t.notified)).toHaveLength(1);
    expect(jobsOf(t.queue)).toHaveLength(1);
  });

  it('five concurrent copies of a retried attempt: one call, one next job', async () => {
    const t = rig();
    t.api.script('network', { errcode: -1 }, ok);
    const record = await t.submit();
    await t.runNext();
    const job = t.queue.next()!.job;
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => processOutbound(t.deps, { ...job })));
    expect(results.filter((r) => r.status === 'fulfilled' && r.value === 'retrying')).toHaveLength(1);
    for (const r of results) {
      if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(AttemptInProgressError);
      else expect(['retrying', 'skipped']).toContain(r.value);
    }
    expect(t.api.calls).toHaveLength(2);
    expect(jobsOf(t.queue).map((j) => j.attempt)).toEqual([1, 2, 3]);
    await t.drain();
    expect(t.store.record(record.id)).toMatchObject({ state: 'sent', attempt: 3 });
  });

  it('an old copy (attempt 1) of a record retrying at attempt 2 queues attempt 2 again, with the delay left; no call', async () => {
    const t = rig();
    t.api.script({ errcode: 45011 });
    const record = await t.submit();
    await t.runNext();
    const due = t.store.record(record.id).untilMs;
    t.queue.pending.length = 0; // as if the retry's enqueue had been lost
    t.clock.advance(20_500);
    await expect(processOutbound(t.deps, { id: record.id, attempt: 1 })).resolves.toBe('skipped');
    expect(t.api.calls).toHaveLength(1);
    const requeued = t.queue.sent.at(-1)!;
    expect(requeued.job).toEqual({ id: record.id, attempt: 2 });
    expect(requeued.delaySeconds).toBe(Math.ceil((due - t.clock.nowMs()) / 1000));
    expect(requeued.delaySeconds).toBeGreaterThanOrEqual(39);
    expect(t.store.record(record.id)).toMatchObject({ state: 'retrying', attempt: 2 });
  });

  it('an old copy after the due time queues attempt 2 with no delay (never a negative one)', async () => {
    const t = rig();
    t.api.script({ errcode: -1 });
    const record = await t.submit();
    await t.runNext();
    t.queue.pending.length = 0;
    t.clock.advance(3_600_000);
    await processOutbound(t.deps, { id: record.id, attempt: 1 });
    expect(t.queue.sent.at(-1)).toEqual({ job: { id: record.id, attempt: 2 }, delaySeconds: 0 });
  });

  it('crash after settling retrying, before queueing the retry: the redelivered job queues it, and it sends', async () => {
    const t = rig();
    t.api.script({ errcode: -1, errmsg: 'system error' }, ok);
    const record = await t.submit();
    const job = t.queue.next()!.job;
    t.queue.failNextWith = new Error('SQS unavailable');
    await expect(processOutbound(t.deps, job)).rejects.toThrow('SQS unavailable'); // the queue redelivers the job
    expect(t.store.record(record.id)).toMatchObject({ state: 'retrying', attempt: 2 });
    expect(t.queue.pending).toEqual([]);

    await expect(processOutbound(t.deps, job)).resolves.toBe('skipped');
    expect(t.api.calls).toHaveLength(1);
    expect(t.queue.pending.map((p) => p.job)).toEqual([{ id: record.id, attempt: 2 }]);
    await expect(t.runNext()).resolves.toMatchObject({ outcome: 'sent' });
    expect(t.store.record(record.id)).toMatchObject({ state: 'sent', attempt: 2 });
    expect(t.api.calls).toHaveLength(2);
  });

  it('an old copy two attempts behind, or of a record being sent, queues nothing', async () => {
    const t = rig();
    t.api.script({ errcode: -1 }, { errcode: -1 });
    const record = await t.submit();
    await t.drain(2);
    expect(t.store.record(record.id)).toMatchObject({ state: 'retrying', attempt: 3 });
    const before = t.queue.sent.length;
    await expect(processOutbound(t.deps, { id: record.id, attempt: 1 })).resolves.toBe('skipped');
    expect(t.queue.sent.length).toBe(before);
    await t.store.claim(record.id, 3, t.clock.nowMs(), t.clock.nowMs() + SEND_LEASE_MS);
    await expect(processOutbound(t.deps, { id: record.id, attempt: 2 })).resolves.toBe('skipped');
    expect(t.queue.sent.length).toBe(before);
  });

  it('a job for a settled record (sent or failed) is skipped at any attempt: no call, no job, no frame', async () => {
    const t = rig();
    t.api.script(ok, { errcode: 45015 });
    const sent = await t.submit();
    const failed = await t.submit();
    await t.drain();
    const calls = t.api.calls.length;
    const jobs = t.queue.sent.length;
    const frames = t.notified.length;
    for (const id of [sent.id, failed.id]) {
      for (const attempt of [1, 2, 7]) await expect(processOutbound(t.deps, { id, attempt })).resolves.toBe('skipped');
    }
    await expect(processOutbound(t.deps, { id: 'never-submitted', attempt: 1 })).resolves.toBe('skipped');
    expect(t.api.calls).toHaveLength(calls);
    expect(t.queue.sent).toHaveLength(jobs);
    expect(t.notified).toHaveLength(frames);
    expect(t.tokens.gets).toBe(2);
  });

  it('a job from the future (attempt 2 while the record is queued at 1) is skipped', async () => {
    const t = rig();
    const record = await t.submit();
    await expect(processOutbound(t.deps, { id: record.id, attempt: 2 })).resolves.toBe('skipped');
    expect(t.store.record(record.id)).toMatchObject({ state: 'queued', attempt: 1 });
    expect(t.api.calls).toEqual([]);
  });

  it('at-least-once window: a worker that died while sending (after calling WeChat) leaves its claim; once the lease expires the redelivered job takes over and sends again', async () => {
    const t = rig();
    t.api.script('hang', ok);
    const record = await t.submit();
    const job = t.queue.next()!.job;
    void processOutbound(t.deps, job); // calls WeChat, never returns: the Lambda died
    await new Promise((resolve) => setImmediate(resolve));
    expect(t.api.calls).toHaveLength(1);
    expect(t.store.record(record.id)).toMatchObject({ state: 'sending', attempt: 1, untilMs: NOW + SEND_LEASE_MS });

    t.clock.advance(SEND_LEASE_MS); // the lease is not yet expired at its last millisecond
    await expect(processOutbound(t.deps, job)).rejects.toBeInstanceOf(AttemptInProgressError); // back to the queue, not dropped
    expect(t.api.calls).toHaveLength(1);
    expect(t.store.record(record.id)).toMatchObject({ state: 'sending', untilMs: NOW + SEND_LEASE_MS });

    t.clock.advance(1);
    await expect(processOutbound(t.deps, job)).resolves.toBe('sent');
    // WeChat saw the message twice: a customer-service message has no de-duplication key.
    expect(t.api.calls).toHaveLength(2);
    expect(t.api.calls[1]!.payload).toEqual(t.api.calls[0]!.payload);
    expect(t.store.record(record.id)).toMatchObject({ state: 'sent', attempt: 1, sentAt: NOW + SEND_LEASE_MS + 1 });
    expect(framesOf(t.notified)).toEqual([{ type: 'status', msgId: record.id, state: 'sent' }]);
  });

  it('at-least-once window, template: the takeover sends the same client_msg_id, which WeChat de-duplicates', async () => {
    const t = rig();
    t.api.script('hang', ok);
    await t.submit({ kind: 'template', message: { template_id: 'T', data: {} }, clientMsgId: 'k1' });
    const job = t.queue.next()!.job;
    void processOutbound(t.deps, job);
    await new Promise((resolve) => setImmediate(resolve));
    t.clock.advance(SEND_LEASE_MS + 1);
    await processOutbound(t.deps, job);
    expect(t.api.calls.map((c) => c.payload.client_msg_id)).toEqual(['k1', 'k1']);
  });

  it('a claim held by a live worker (lease not expired) is left alone: the copy goes back to the queue (AttemptInProgressError), no call', async () => {
    const t = rig();
    const record = await t.submit();
    await t.store.claim(record.id, 1, NOW, NOW + SEND_LEASE_MS);
    t.clock.advance(SEND_LEASE_MS - 1);
    const error = await processOutbound(t.deps, { id: record.id, attempt: 1 }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(AttemptInProgressError);
    expect((error as Error).message).toContain(record.id);
    expect(t.api.calls).toEqual([]);
    expect(t.tokens.gets).toBe(0);
    expect(t.store.record(record.id)).toMatchObject({ state: 'sending', attempt: 1, untilMs: NOW + SEND_LEASE_MS });
    expect(t.queue.sent).toHaveLength(1);
  });

  it('a worker that lost its claim (another settled the attempt) does not overwrite the state or notify', async () => {
    const t = rig();
    t.api.script(ok);
    const record = await t.submit();
    const job = t.queue.next()!.job;
    // While the first worker is inside the WeChat call, its attempt is settled elsewhere.
    t.store.hook = async (method) => {
      if (method === 'settle') {
        t.store.hook = () => undefined;
        await t.store.settle(record.id, 1, { state: 'failed', untilMs: 0, errcode: 45015, errmsg: 'elsewhere' }, NOW);
      }
    };
    await processOutbound(t.deps, job);
    expect(t.store.record(record.id)).toMatchObject({ state: 'failed', errcode: 45015, errmsg: 'elsewhere' });
    expect(t.notified).toEqual([]);
  });

  it('token fetch refused with WechatApiError 40125 (bad secret): failed permanent, no messaging call', async () => {
    const t = rig();
    t.tokens.getError = new WechatApiError(40125, 'invalid appsecret', 'stable_token');
    const record = await t.submit();
    await expect(t.runNext()).resolves.toMatchObject({ outcome: 'failed' });
    expect(t.api.calls).toEqual([]);
    expect(t.store.record(record.id)).toMatchObject({ state: 'failed', attempt: 1, errcode: 40125, errmsg: 'invalid appsecret' });
    expect(jobsOf(t.queue)).toHaveLength(1);
    expect(framesOf(t.notified)).toEqual([{ type: 'status', msgId: record.id, state: 'failed', errcode: 40125, message: expect.stringContaining('40125') }]);
  });

  it('token fetch with WechatNetworkError: retrying with a delayed job, no messaging call', async () => {
    const t = rig();
    t.tokens.getError = new WechatNetworkError('timeout', 'stable_token');
    const record = await t.submit();
    await expect(t.runNext()).resolves.toMatchObject({ outcome: 'retrying' });
    expect(t.api.calls).toEqual([]);
    const stored = t.store.record(record.id);
    expect(stored).toMatchObject({ state: 'retrying', attempt: 2, errmsg: 'stable_token: timeout' });
    expect(stored).not.toHaveProperty('errcode');
    expect(t.queue.sent[1]!.job).toEqual({ id: record.id, attempt: 2 });
    expect(t.queue.sent[1]!.delaySeconds).toBeGreaterThanOrEqual(1);
    expect(t.notified).toEqual([]);
    t.tokens.getError = undefined;
    t.api.script(ok);
    await expect(t.runNext()).resolves.toMatchObject({ outcome: 'sent' });
  });

  it('refresh after 40001 fails on the network: retrying, and the next attempt starts with a token again', async () => {
    const t = rig();
    t.api.script({ errcode: 40001 }, ok);
    t.tokens.refreshError = new WechatNetworkError('ECONNRESET', 'stable_token');
    const record = await t.submit();
    await expect(t.runNext()).resolves.toMatchObject({ outcome: 'retrying' });
    expect(t.api.calls).toHaveLength(1);
    expect(t.tokens.refreshes).toEqual(['token-1']);
    t.tokens.refreshError = undefined;
    await expect(t.runNext()).resolves.toMatchObject({ outcome: 'sent' });
    expect(t.store.record(record.id)).toMatchObject({ state: 'sent', attempt: 2 });
  });

  it('an unknown account: failed without token or messaging calls, the frame names the account', async () => {
    const t = rig();
    const record = await t.submit({ accountId: 'gone' });
    await expect(t.runNext()).resolves.toMatchObject({ outcome: 'failed' });
    expect(t.api.calls).toEqual([]);
    expect(t.tokens.gets).toBe(0);
    const stored = t.store.record(record.id);
    expect(stored).toMatchObject({ state: 'failed', attempt: 1, errmsg: expect.stringContaining('"gone"') });
    expect(stored).not.toHaveProperty('errcode');
    expect(jobsOf(t.queue)).toHaveLength(1);
    expect(framesOf(t.notified)).toEqual([{ type: 'status', msgId: record.id, state: 'failed', message: expect.stringContaining('gone') }]);
    expect(t.notified[0]!.frame).not.toHaveProperty('errcode');
  });

  it('a WeCom account without agentId: failed without calls, naming agentId', async () => {
    const t = rig();
    const record = await t.submit({ accountId: WECOM_NO_AGENT.accountId });
    await expect(t.runNext()).resolves.toMatchObject({ outcome: 'failed' });
    expect(t.api.calls).toEqual([]);
    expect(t.tokens.gets).toBe(0);
    expect(t.store.record(record.id)).toMatchObject({ state: 'failed', errmsg: expect.stringContaining('agentId') });
    expect(framesOf(t.notified)).toEqual([{ type: 'status', msgId: record.id, state: 'failed', message: expect.stringContaining('agentId') }]);
  });

  it('an account without appSecret: failed without token or messaging calls, naming appSecret', async () => {
    const t = rig([{ ...OA, appSecret: undefined }]);
    const record = await t.submit();
    await expect(t.runNext()).resolves.toMatchObject({ outcome: 'failed' });
    expect(t.api.calls).toEqual([]);
    expect(t.tokens.gets).toBe(0);
    expect(t.store.record(record.id)).toMatchObject({ state: 'failed', errmsg: expect.stringContaining('appSecret') });
    expect(framesOf(t.notified)).toEqual([{ type: 'status', msgId: record.id, state: 'failed', message: expect.stringContaining('appSecret') }]);
  });

  it('a template message to a WeCom account: failed without calls', async () => {
    const t = rig();
    const record = await t.submit({ accountId: WECOM.accountId, kind: 'template', message: { template_id: 'T', data: {} } });
    await expect(t.runNext()).resolves.toMatchObject({ outcome: 'failed' });
    expect(t.api.calls).toEqual([]);
    expect(t.store.record(record.id)).toMatchObject({ state: 'failed', errmsg: expect.stringContaining('application messages only') });
  });

  it('notify throwing after a send: the state stays sent; the error escapes, and the redelivered job is skipped without a second call', async () => {
    const t = rig();
    t.api.script(ok);
    t.deps.notify = async () => {
      throw new Error('registry unavailable');
    };
    const record = await t.submit();
    const job = t.queue.next()!.job;
    await expect(processOutbound(t.deps, job)).rejects.toThrow('registry unavailable');
    expect(t.store.record(record.id)).toMatchObject({ state: 'sent', attempt: 1 });
    await expect(processOutbound(t.deps, job)).resolves.toBe('skipped');
    expect(t.api.calls).toHaveLength(1);
    expect(t.store.record(record.id)).toMatchObject({ state: 'sent', attempt: 1 });
  });

  it('notify throwing after a permanent failure: the state stays failed, nothing is retried', async () => {
    const t = rig();
    t.api.script({ errcode: 45015 });
    t.deps.notify = async () => {
      throw new Error('registry unavailable');
    };
    const record = await t.submit();
    const job = t.queue.next()!.job;
    await expect(processOutbound(t.deps, job)).rejects.toThrow('registry unavailable');
    await expect(processOutbound(t.deps, job)).resolves.toBe('skipped');
    expect(t.store.record(record.id)).toMatchObject({ state: 'failed', errcode: 45015 });
    expect(t.api.calls).toHaveLength(1);
    expect(t.queue.sent).toHaveLength(1);
  });

  it('an infrastructure error from the API port (not a WeChat error) escapes with the claim held, and the lease lets a later copy retry', async () => {
    const t = rig();
    t.api.call = async () => {
      throw new TypeError('bug in the adapter');
    };
    const record = await t.submit();
    const job = t.queue.next()!.job;
    await expect(processOutbound(t.deps, job)).rejects.toThrow('bug in the adapter');
    expect(t.store.record(record.id)).toMatchObject({ state: 'sending', attempt: 1 });
    t.clock.advance(SEND_LEASE_MS + 1);
    await expect(processOutbound(t.deps, job)).rejects.toThrow('bug in the adapter'); // re-claimed, tried again
  });
});

describe('submitOutbound', () => {
  it('records the message queued at attempt 1 with a 7-day TTL and queues attempt 1 at once', async () => {
    const t = rig();
    const record = await t.submit({ clientMsgId: 'k' });
    expect(record).toStrictEqual({
      id: 'm1',
      accountId: 'oa1',
      openId: 'oUser_abc-123',
      kind: 'service',
      message: { msgtype: 'text', text: { content: '您好 hello' } },
      requester: 'agent-7',
      clientMsgId: 'k',
      state: 'queued',
      attempt: 1,
      untilMs: 0,
      createdAt: NOW,
      updatedAt: NOW,
    });
    expect(t.store.expiresAt.get('m1')).toBe(Math.floor(NOW / 1000) + OUTBOUND_RECORD_TTL_SECONDS);
    expect(jobsOf(t.queue)).toEqual([{ id: 'm1', attempt: 1, delaySeconds: 0 }]);
  });

  it('twice with the same id: one record, its state unchanged; a second enqueue is harmless (one call)', async () => {
    const t = rig();
    t.api.script(ok);
    const request: OutboundRequest = { id: 'same', accountId: 'oa1', openId: 'o1', kind: 'service', message: { msgtype: 'text', text: { content: 'a' } } };
    const first = await submitOutbound({ store: t.store, queue: t.queue, clock: t.clock }, request);
    t.clock.advance(1000);
    const second = await submitOutbound({ store: t.store, queue: t.queue, clock: t.clock }, { ...request, openId: 'o2', message: { msgtype: 'text', text: { content: 'b' } } });
    expect(second).toStrictEqual(first);
    expect(t.store.records.size).toBe(1);
    expect(t.store.record('same')).toStrictEqual(first);
    expect(jobsOf(t.queue)).toEqual([
      { id: 'same', attempt: 1, delaySeconds: 0 },
      { id: 'same', attempt: 1, delaySeconds: 0 },
    ]);
    await t.drain();
    expect(t.api.calls).toHaveLength(1);
    expect(t.api.calls[0]!.payload).toMatchObject({ touser: 'o1', text: { content: 'a' } });
  });

  it('a resubmission of a settled or sending record queues nothing and answers its state', async () => {
    const t = rig();
    t.api.script(ok);
    const record = await t.submit();
    await t.drain();
    const again = await submitOutbound({ store: t.store, queue: t.queue, clock: t.clock }, { id: record.id, accountId: 'oa1', openId: 'x', kind: 'service', message: {} });
    expect(again).toMatchObject({ state: 'sent' });
    expect(t.queue.sent).toHaveLength(1);

    const other = await t.submit();
    t.queue.pending.length = 0;
    await t.store.claim(other.id, 1, t.clock.nowMs(), t.clock.nowMs() + SEND_LEASE_MS);
    await expect(submitOutbound({ store: t.store, queue: t.queue, clock: t.clock }, { ...other })).resolves.toMatchObject({ state: 'sending' });
    expect(t.queue.sent.filter((s) => s.job.id === other.id)).toHaveLength(1);
  });

  it('a resubmission while retrying queues the current attempt no sooner than it is due (a 45011 wait is kept)', async () => {
    const t = rig();
    t.api.script({ errcode: 45011, errmsg: 'api freq out of limit' });
    const record = await t.submit();
    await t.runNext();
    const due = t.store.record(record.id).untilMs;
    expect(due - t.clock.nowMs()).toBeGreaterThanOrEqual(60_000);
    t.clock.advance(1000);
    const again = await t.submit({ id: record.id });
    expect(again).toMatchObject({ state: 'retrying', attempt: 2 });
    const requeued = t.queue.sent.at(-1)!;
    expect(requeued.job).toEqual({ id: record.id, attempt: 2 });
    expect(requeued.delaySeconds).toBe(Math.ceil((due - t.clock.nowMs()) / 1000));
    expect(requeued.delaySeconds).toBeGreaterThanOrEqual(59);
  });
});

describe('callFor', () => {
  const base = { id: 'r1', openId: 'o1', message: { msgtype: 'text', text: { content: 'x' } } };

  it('the gateway sets touser and agentid last: a message cannot redirect itself', () => {
    const sneaky = { ...base, kind: 'service' as const, message: { ...base.message, touser: 'someone-else', agentid: 1 } };
    expect(callFor(OA, sneaky).payload).toMatchObject({ touser: 'o1' });
    expect(callFor(WECOM, sneaky).payload).toMatchObject({ touser: 'o1', agentid: 1000002 });
  });

  it('WeCom: service only; agentId required', () => {
    expect(() => callFor(WECOM, { ...base, kind: 'subscribe' })).toThrow(GatewayError);
    expect(() => callFor(WECOM_NO_AGENT, { ...base, kind: 'service' })).toThrow(/agentId/);
  });
});

// --- Parsing what clients and backends send ---

function badRequestOf(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe('bad_request');
    return err as GatewayError;
  }
  throw new Error('expected a bad_request GatewayError, nothing was thrown');
}

describe('serviceMessageOf', () => {
  it('{"text"} becomes a text message', () => {
    expect(serviceMessageOf({ text: 'hi 你好' })).toEqual({ msgtype: 'text', text: { content: 'hi 你好' } });
  });

  it("WeChat's own fields pass through as they are", () => {
    const image = { msgtype: 'image', image: { media_id: 'MEDIA' } };
    expect(serviceMessageOf(image)).toEqual(image);
    const news = { msgtype: 'miniprogrampage', miniprogrampage: { title: 't', appid: 'a', pagepath: 'p', thumb_media_id: 'm' } };
    expect(serviceMessageOf(news)).toEqual(news);
  });

  it.each<[string, unknown, RegExp]>([
    ['empty text', { text: '' }, /body\.text/],
    ['an array body', [{ text: 'x' }], /body/],
    ['null', null, /body/],
    ['a string', 'hello', /body/],
    ['text beside other fields', { text: 'x', extra: 1 }, /body/],
    ['text that is not a string', { text: { content: 'x' } }, /body/],
    ['msgtype with no matching object', { msgtype: 'image' }, /msgtype/],
    ['msgtype whose object is a string', { msgtype: 'text', text: 'hi' }, /msgtype/],
    ['msgtype whose object is null', { msgtype: 'image', image: null }, /msgtype/],
    ['msgtype naming an inherited member', JSON.parse('{"msgtype":"__proto__"}'), /msgtype/],
    ['msgtype with capitals', { msgtype: 'Image', Image: {} }, /msgtype/],
    ['msgtype too long', { msgtype: 'a'.repeat(33), ['a'.repeat(33)]: {} }, /msgtype/],
    ['WeChat fields with touser', { msgtype: 'text', text: { content: 'x' }, touser: 'o2' }, /touser/],
    ['WeChat fields with agentid', { msgtype: 'text', text: { content: 'x' }, agentid: 5 }, /agentid/],
  ])('refuses %s', (_name, body, message) => {
    expect(badRequestOf(() => serviceMessageOf(body)).message).toMatch(message);
  });
});

describe('adminOutboundOf', () => {
  it('text to an openId, with a clientMsgId', () => {
    expect(adminOutboundOf({ openId: 'oUser_1', text: 'hello', clientMsgId: 'Order-42_a' })).toEqual({
      openId: 'oUser_1',
      kind: 'service',
      message: { msgtype: 'text', text: { content: 'hello' } },
      clientMsgId: 'Order-42_a',
    });
  });

  it("WeChat's fields", () => {
    expect(adminOutboundOf({ openId: 'o', msgtype: 'image', image: { media_id: 'M' } })).toEqual({
      openId: 'o',
      kind: 'service',
      message: { msgtype: 'image', image: { media_id: 'M' } },
      clientMsgId: undefined,
    });
  });

  it('a template message', () => {
    const template = { template_id: 'TPL', data: { first: { value: 'x' } }, url: 'https://e.com', miniprogram: { appid: 'a', pagepath: 'p' } };
    expect(adminOutboundOf({ openId: 'o', msgtype: 'template', template, clientMsgId: 'k' })).toEqual({ openId: 'o', kind: 'template', message: template, clientMsgId: 'k' });
  });

  it('a subscribe message', () => {
    const subscribe = { template_id: 'S', data: { thing1: { value: 'x' } }, page: 'index' };
    expect(adminOutboundOf({ openId: 'o', msgtype: 'subscribe', subscribe })).toEqual({ openId: 'o', kind: 'subscribe', message: subscribe, clientMsgId: undefined });
  });

  it.each<[string, unknown, RegExp]>([
    ['an array body', [{ openId: 'o', text: 'x' }], /body/],
    ['null', null, /body/],
    ['a missing openId', { text: 'x' }, /openId/],
    ['an empty openId', { openId: '', text: 'x' }, /openId/],
    ['a numeric openId', { openId: 42, text: 'x' }, /openId/],
    ['an openId too long', { openId: 'o'.repeat(129), text: 'x' }, /openId/],
    ['clientMsgId with bad chars', { openId: 'o', text: 'x', clientMsgId: 'a b' }, /clientMsgId/],
    ['clientMsgId with a slash', { openId: 'o', text: 'x', clientMsgId: '../x' }, /clientMsgId/],
    ['clientMsgId empty', { openId: 'o', text: 'x', clientMsgId: '' }, /clientMsgId/],
    ['clientMsgId too long', { openId: 'o', text: 'x', clientMsgId: 'k'.repeat(33) }, /clientMsgId/],
    ['clientMsgId a number', { openId: 'o', text: 'x', clientMsgId: 7 }, /clientMsgId/],
    ['a template without template_id', { openId: 'o', msgtype: 'template', template: { data: {} } }, /template_id/],
    ['a template with an empty template_id', { openId: 'o', msgtype: 'template', template: { template_id: '', data: {} } }, /template_id/],
    ['a template without data', { openId: 'o', msgtype: 'template', template: { template_id: 'T' } }, /data/],
    ['a template with touser', { openId: 'o', msgtype: 'template', template: { template_id: 'T', data: {}, touser: 'o2' } }, /touser/],
    ['a template with client_msg_id', { openId: 'o', msgtype: 'template', template: { template_id: 'T', data: {}, client_msg_id: 'x' } }, /client_msg_id/],
    ['a template that is an array', { openId: 'o', msgtype: 'template', template: [] }, /template/],
    ['a template beside other fields', { openId: 'o', msgtype: 'template', template: { template_id: 'T', data: {} }, text: 'x' }, /template/],
    ['a subscribe without template_id', { openId: 'o', msgtype: 'subscribe', subscribe: { data: {} } }, /subscribe\.template_id/],
    ['a body with touser', { openId: 'o', msgtype: 'text', text: { content: 'x' }, touser: 'o2' }, /touser/],
    ['empty text', { openId: 'o', text: '' }, /body\.text/],
    ['no message at all', { openId: 'o' }, /body/],
    ['msgtype with no matching object', { openId: 'o', msgtype: 'voice' }, /msgtype/],
    ['msgtype naming an inherited member', JSON.parse('{"openId":"o","msgtype":"__proto__"}'), /msgtype/],
  ])('refuses %s, naming the field', (_name, body, message) => {
    expect(badRequestOf(() => adminOutboundOf(body)).message).toMatch(message);
  });
});

describe('outboundIdOf and outboundView', () => {
  it('the same account and clientMsgId name the same record; another account or key another', () => {
    expect(outboundIdOf('oa1', 'k')).toBe(outboundIdOf('oa1', 'k'));
    expect(outboundIdOf('oa1', 'k')).not.toBe(outboundIdOf('oa2', 'k'));
    expect(outboundIdOf('oa1', 'k')).not.toBe(outboundIdOf('oa1', 'k2'));
    // The separator keeps ("a", "b\nc") and ("a\nb", "c") apart; account ids cannot hold "\n" anyway.
    expect(outboundIdOf('a', 'bc')).not.toBe(outboundIdOf('ab', 'c'));
    expect(outboundIdOf('oa1', 'k')).toMatch(/^c[0-9a-f]{25}$/);
  });

  it('shows the state without the message body or the requester', () => {
    const view = outboundView({ id: 'x', accountId: 'a', openId: 'o', kind: 'service', message: { secret: 1 }, requester: 'u', state: 'retrying', attempt: 3, untilMs: 5, createdAt: 1, updatedAt: 2 });
    // Retrying at attempt 3: two attempts were made.
    expect(view).toMatchObject({ messageId: 'x', state: 'retrying', attempts: 2 });
    expect(outboundView({ id: 'y', accountId: 'a', openId: 'o', kind: 'service', message: {}, state: 'queued', attempt: 1, untilMs: 0, createdAt: 1, updatedAt: 1 }).attempts).toBe(0);
    expect(outboundView({ id: 'z', accountId: 'a', openId: 'o', kind: 'service', message: {}, state: 'sending', attempt: 1, untilMs: 9, createdAt: 1, updatedAt: 1 }).attempts).toBe(1);
    expect(view).not.toHaveProperty('message');
    expect(view).not.toHaveProperty('requester');
  });
});

describe('notifyRequester', () => {
  it("sends the frame to every online device of the requester, and to no one for an admin message", async () => {
    const registry = new FakeConnectionRegistry();
    const sender = new FakeConnectionSender();
    const clock = new ManualClock(NOW);
    await registry.put(connectionRecord('c1', 'agent-7', NOW));
    await registry.put(connectionRecord('c2', 'agent-7', NOW));
    await registry.put(connectionRecord('c3', 'someone', NOW));
    const deps = { registry, delivery: fakeDeliveryDeps(sender, registry), clock };
    const frame: OutboundStatusFrame = { type: 'status', msgId: 'm', state: 'failed', errcode: 45015, message: 'WeChat error 45015: ...' };
    const record = { requester: 'agent-7' } as OutboundRecord;
    await notifyRequester(deps, record, frame);
    expect(sender.recipients()).toEqual(['c1', 'c2']);
    expect(sender.framesTo('c1')).toEqual([frame]);
    await notifyRequester(deps, { ...record, requester: undefined }, frame);
    expect(sender.posts).toHaveLength(2);
  });
});

describe('message types by account kind', () => {
  const oa = { accountId: 'oa1', kind: 'oa' as const, token: 'tok', receiveId: 'wx1', appSecret: 's' };
  const corp = { accountId: 'corp1', kind: 'wecom' as const, token: 'tok', receiveId: 'ww1', appSecret: 's', agentId: 7 };
  const record = (message: Record<string, unknown>) => ({ id: 'm1', kind: 'service' as const, openId: 'o1', message });

  it('an official account takes customer-service types, not WeCom ones (refused before WeChat would answer 40008)', () => {
    expect(callFor(oa, record({ msgtype: 'miniprogrampage', miniprogrampage: { title: 't' } })).call).toBe('custom/send');
    expect(() => callFor(oa, record({ msgtype: 'markdown', markdown: { content: '#' } }))).toThrow(expect.objectContaining({ code: 'bad_request', message: expect.stringContaining('"markdown"') }));
  });

  it('a WeCom application takes its own types, not official-account ones', () => {
    expect(callFor(corp, record({ msgtype: 'markdown', markdown: { content: '#' } })).payload).toMatchObject({ agentid: 7, touser: 'o1' });
    expect(() => callFor(corp, record({ msgtype: 'msgmenu', msgmenu: {} }))).toThrow(expect.objectContaining({ code: 'bad_request' }));
  });
});
