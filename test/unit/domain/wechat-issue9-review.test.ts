/**
 * A hostile review of issue 9 (WeChat outbound, tokens, login) and the account inbox of issue 8:
 * each case is a way to break what was built, pinned as a test.
 */
import { monotonicFactory } from 'ulid';
import type { ConnectionIdentity } from '../../../lambdas/domain/connection-lifecycle';
import { sendMessage, type SendDeps } from '../../../lambdas/domain/send-message';
import type { WechatAccount } from '../../../lambdas/domain/wechat-accounts';
import { adminOutboundOf, callFor, processOutbound, serviceMessageOf, submitOutbound, type OutboundStatusFrame, type OutboundWorkerDeps } from '../../../lambdas/domain/wechat-outbound';
import { GatewayError } from '../../../lambdas/domain/errors';
import { loginWithWechat, type LoginDeps } from '../../../lambdas/domain/wechat-login';
import { createAccessTokens, type TokenRow, type TokenStore } from '../../../lambdas/domain/wechat-access-token';
import { WechatApiError, type WechatTokenApi } from '../../../lambdas/domain/wechat-api';
import {
  fakeDeliveryDeps,
  FakeConnectionRegistry,
  FakeConnectionSender,
  FakeGroupDirectory,
  FakeMessageStore,
  FakeOutboundQueue,
  FakeOutboundStore,
  FakeUplinkQueue,
  ManualClock,
} from '../../support/fakes';

const START = Date.UTC(2026, 0, 1, 12);

function sendRig() {
  const clock = new ManualClock(START);
  const registry = new FakeConnectionRegistry();
  const sender = new FakeConnectionSender();
  const messages = new FakeMessageStore(() => clock.nowMs());
  const uplink = new FakeUplinkQueue();
  const groups = new FakeGroupDirectory({ 'wechat:acc': ['agent'] });
  const nextUlid = monotonicFactory();
  let attempts = 0;
  const deps: SendDeps = {
    messages,
    groups,
    uplink,
    registry,
    delivery: fakeDeliveryDeps(sender, registry),
    clock,
    newMsgId: (nowMs) => nextUlid(nowMs),
    newAttemptId: () => `attempt-${++attempts}`,
    sleep: async () => undefined,
    dedupWindowSeconds: 300,
  };
  const caller = (userId: string): ConnectionIdentity => ({ connectionId: `c-${userId}`, userId, deviceId: 'd', connectedAt: START - 1000 });
  return { deps, uplink, caller };
}

describe('the account inbox wechat:{accountId} holds WeChat messages only', () => {
  it.each(['wechat:acc', 'wechat:acc:o1'])('a client cannot send to the reserved user %s (nothing queued)', async (reserved) => {
    const { deps, uplink, caller } = sendRig();
    const failure = sendMessage(deps, caller('mallory'), { action: 'send', id: 'x', to: { user: reserved }, body: { text: 'pay to account 123' } });
    await expect(failure).rejects.toBeInstanceOf(GatewayError);
    expect(uplink.attempts).toEqual([]);
  });
});

const OA: WechatAccount = { accountId: 'oa1', kind: 'oa', token: 'tok123', receiveId: 'wx0123456789', appSecret: 'secret' };
const WECOM: WechatAccount = { accountId: 'wc1', kind: 'wecom', token: 'tok123', encodingAESKey: 'a'.repeat(43), receiveId: 'ww0123', appSecret: 'secret', agentId: 1000002 };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof GatewayError ? err.code : `not a GatewayError: ${String(err)}`;
  }
  return undefined;
}

describe('a reply reaches one WeChat user, never a WeCom department, tag or the whole corp', () => {
  const text = { msgtype: 'text', text: { content: 'x' } };

  it.each([
    ['toparty', { ...text, toparty: '1' }],
    ['totag', { ...text, totag: '2' }],
  ])('a body with %s is bad_request (WeCom would send to every member of it)', (_field, body) => {
    expect(codeOf(() => serviceMessageOf(body))).toBe('bad_request');
    expect(codeOf(() => adminOutboundOf({ openId: 'zhangsan', ...body }))).toBe('bad_request');
  });

  it.each(['@all', 'zhangsan|lisi', 'a b', 'o\n1', '用户', '.x'])('the openId %j is bad_request from an agent on WebSocket (nothing queued) and on the admin API', async (openId) => {
    const { deps, uplink, caller } = sendRig();
    await expect(sendMessage(deps, caller('agent'), { action: 'send', id: 'r', to: { wechat: { accountId: 'acc', openId } }, body: { text: 'x' } })).rejects.toMatchObject({
      code: 'bad_request',
      message: expect.stringContaining('openId'),
    });
    expect(uplink.attempts).toEqual([]);
    expect(codeOf(() => adminOutboundOf({ openId, text: 'x' }))).toBe('bad_request');
  });

  it('the worker never builds a call to more than one user, whatever the record holds', () => {
    const record = { id: 'r', kind: 'service' as const, message: text };
    expect(() => callFor(WECOM, { ...record, openId: '@all' })).toThrow(GatewayError);
    expect(() => callFor(WECOM, { ...record, openId: 'a|b' })).toThrow(GatewayError);
    expect(() => callFor(WECOM, { ...record, openId: 'a', message: { ...text, toparty: '1' } })).toThrow(GatewayError);
    expect(callFor(WECOM, { ...record, openId: 'zhang.san@corp' }).payload).toMatchObject({ touser: 'zhang.san@corp', agentid: 1000002 });
    expect(callFor(OA, { ...record, openId: 'oAbC-_12' }).payload).toMatchObject({ touser: 'oAbC-_12' });
  });

  it('ordinary openIds and WeCom user ids pass', async () => {
    const { deps, uplink, caller } = sendRig();
    const openIds = ['o6_bmjrPTlm6_2sgVt7hMZOPfL2M', 'zhangsan', 'Zhang.San@example', 'wmXXXX-_1', 'o'.repeat(128)];
    for (const openId of openIds) {
      expect(adminOutboundOf({ openId, text: 'x' }).openId).toBe(openId);
      await sendMessage(deps, caller('agent'), { action: 'send', to: { wechat: { accountId: 'acc', openId } }, body: { text: 'x' } });
    }
    expect(uplink.enqueued.map((m) => ('wechat' in m.to ? m.to.wechat.openId : undefined))).toEqual(openIds);
    expect(codeOf(() => adminOutboundOf({ openId: 'o'.repeat(129), text: 'x' }))).toBe('bad_request');
  });
});

describe('hostile bodies', () => {
  it('an own "__proto__" member named by msgtype is refused, as the inherited one is', () => {
    expect(codeOf(() => serviceMessageOf(JSON.parse('{"msgtype":"__proto__","__proto__":{"content":"x"}}')))).toBe('bad_request');
  });
});

describe('access tokens: a forced refresh WeChat refuses for the day', () => {
  /** Sequential in-memory store with the adapter's conditions (enough for one caller at a time). */
  class SimpleTokenStore implements TokenStore {
    readonly rows = new Map<string, TokenRow>();
    async read(accountId: string) {
      const row = this.rows.get(accountId);
      return row && { ...row };
    }
    async tryLease(accountId: string, owner: string, nowMs: number, leaseUntilMs: number) {
      const row = this.rows.get(accountId) ?? {};
      if (row.leaseUntilMs !== undefined && row.leaseUntilMs > nowMs) return false;
      this.rows.set(accountId, { ...row, leaseOwner: owner, leaseUntilMs });
      return true;
    }
    async saveToken(accountId: string, owner: string, token: string, expiresAtMs: number, forced: boolean, nowMs: number) {
      const row = this.rows.get(accountId);
      if (row?.leaseOwner !== owner) return false;
      const { leaseOwner: _o, leaseUntilMs: _u, ...rest } = row;
      this.rows.set(accountId, { ...rest, accessToken: token, expiresAtMs, fetchedAtMs: nowMs, ...(forced ? { lastForcedAtMs: nowMs } : {}) });
      return true;
    }
    async releaseLease(accountId: string, owner: string) {
      const row = this.rows.get(accountId);
      if (row?.leaseOwner !== owner) return;
      const { leaseOwner: _o, leaseUntilMs: _u, ...rest } = row;
      this.rows.set(accountId, rest);
    }
  }

  /**
   * stable_token as WeChat runs it: normal mode answers the current token; a forced refresh past
   * the day's 20 answers 45009. Someone else (another system on the same appId) forced T0 away.
   */
  function rig() {
    const clock = new ManualClock(START);
    const store = new SimpleTokenStore();
    store.rows.set('oa1', { accessToken: 'T0', expiresAtMs: START + 3_600_000, fetchedAtMs: START - 3_600_000 });
    const fetches: boolean[] = [];
    const api: WechatTokenApi = {
      fetchToken: async (_account, { forceRefresh }) => {
        fetches.push(forceRefresh);
        if (forceRefresh) throw new WechatApiError(45009, 'reach max api daily quota limit', 'stable_token');
        return { accessToken: 'T-other', expiresInSeconds: 7000 };
      },
    };
    let owners = 0;
    const tokens = createAccessTokens({ store, api, clock, sleep: async () => undefined, newLeaseOwner: () => `o${++owners}` });
    return { store, fetches, tokens };
  }

  it('asks normal mode first, which answers the token WeChat holds valid now, and stores it: no force spent', async () => {
    const { store, fetches, tokens } = rig();
    await expect(tokens.refreshAfterInvalid(OA, 'T0')).resolves.toBe('T-other');
    expect(fetches).toEqual([false]);
    expect(store.rows.get('oa1')).toMatchObject({ accessToken: 'T-other' });
    expect(store.rows.get('oa1')?.lastForcedAtMs).toBeUndefined();
    expect(store.rows.get('oa1')?.leaseOwner).toBeUndefined();
    // The next message gets the valid token from the cache: no more failed messages for the rest of the day.
    await expect(tokens.get(OA)).resolves.toBe('T-other');
  });

  it('when normal mode answers the refused token again, the caller gets the 45009 (never the refused token)', async () => {
    const { store, fetches, tokens } = rig();
    store.rows.set('oa1', { accessToken: 'T-other', expiresAtMs: START + 3_600_000, fetchedAtMs: START - 3_600_000 });
    await expect(tokens.refreshAfterInvalid(OA, 'T-other')).rejects.toMatchObject({ errcode: 45009 });
    expect(fetches).toEqual([false, true]);
    expect(store.rows.get('oa1')?.leaseOwner).toBeUndefined();
  });
});

describe('the reason a failed message gives', () => {
  it("WeCom's gettoken answering 40001 (its code for a wrong corpsecret) is reported as the credentials, not as a stale token", async () => {
    const clock = new ManualClock(START);
    const store = new FakeOutboundStore();
    const queue = new FakeOutboundQueue();
    const frames: OutboundStatusFrame[] = [];
    const messagingCalls: string[] = [];
    const deps: OutboundWorkerDeps = {
      store,
      queue,
      accounts: async () => new Map([[WECOM.accountId, WECOM]]),
      tokens: {
        get: async () => {
          throw new WechatApiError(40001, 'invalid credential', 'gettoken');
        },
        refreshAfterInvalid: async () => {
          throw new Error('not expected: the token call itself failed');
        },
      },
      api: {
        call: async (_a, call) => {
          messagingCalls.push(call);
          return { errcode: 0, errmsg: 'ok' };
        },
      },
      clock,
      random: () => 0.5,
      notify: async (_record, frame) => {
        frames.push(frame);
      },
    };
    await submitOutbound(deps, { id: 'm1', accountId: WECOM.accountId, openId: 'zhangsan', kind: 'service', message: { msgtype: 'text', text: { content: 'x' } }, requester: 'agent' });
    await expect(processOutbound(deps, { id: 'm1', attempt: 1 })).resolves.toBe('failed');
    expect(messagingCalls).toEqual([]);
    expect(frames).toHaveLength(1);
    expect(frames[0]).toMatchObject({ state: 'failed', errcode: 40001 });
    expect(frames[0]!.message).toMatch(/secret/);
    expect(frames[0]!.message).not.toMatch(/access token invalid/);
  });
});

describe('sent means WeChat took it for the user', () => {
  it("WeCom's ok with the user listed in invaliduser / unlicenseduser (not in the app's visible range, no licence) is failed, not sent", async () => {
    for (const field of ['invaliduser', 'unlicenseduser']) {
      const clock = new ManualClock(START);
      const store = new FakeOutboundStore();
      const queue = new FakeOutboundQueue();
      const frames: OutboundStatusFrame[] = [];
      const deps: OutboundWorkerDeps = {
        store,
        queue,
        accounts: async () => new Map([[WECOM.accountId, WECOM]]),
        tokens: { get: async () => 'T', refreshAfterInvalid: async () => 'T2' },
        api: { call: async () => ({ errcode: 0, errmsg: 'ok', invaliduser: '', invalidparty: '', invalidtag: '', unlicenseduser: '', [field]: 'zhangsan', msgid: 'm' }) },
        clock,
        random: () => 0.5,
        notify: async (_record, frame) => {
          frames.push(frame);
        },
      };
      await submitOutbound(deps, { id: 'm1', accountId: WECOM.accountId, openId: 'zhangsan', kind: 'service', message: { msgtype: 'text', text: { content: 'x' } }, requester: 'agent' });
      await expect(processOutbound(deps, { id: 'm1', attempt: 1 })).resolves.toBe('failed');
      expect(store.record('m1')).toMatchObject({ state: 'failed', errmsg: expect.stringContaining(field) });
      expect(frames).toEqual([expect.objectContaining({ state: 'failed', message: expect.stringContaining(field) })]);
    }
  });

  it("WeCom's ok with empty invalid lists is sent", async () => {
    const store = new FakeOutboundStore();
    const deps: OutboundWorkerDeps = {
      store,
      queue: new FakeOutboundQueue(),
      accounts: async () => new Map([[WECOM.accountId, WECOM]]),
      tokens: { get: async () => 'T', refreshAfterInvalid: async () => 'T2' },
      api: { call: async () => ({ errcode: 0, errmsg: 'ok', invaliduser: '', invalidparty: '', invalidtag: '', unlicenseduser: '', msgid: 'm' }) },
      clock: new ManualClock(START),
      random: () => 0.5,
      notify: async () => undefined,
    };
    await submitOutbound(deps, { id: 'm1', accountId: WECOM.accountId, openId: 'zhangsan', kind: 'service', message: { msgtype: 'text', text: { content: 'x' } } });
    await expect(processOutbound(deps, { id: 'm1', attempt: 1 })).resolves.toBe('sent');
  });
});

describe('login: a misconfigured account is the server’s fault, not the user’s code', () => {
  const MINI: WechatAccount = { accountId: 'mini1', kind: 'oa', token: 'tok123', receiveId: 'wxmini000001', appSecret: 'wrong-secret' };
  it.each([
    [40125, 'invalid appsecret'],
    [40013, 'invalid appid'],
    [41002, 'appid missing'],
    [41004, 'appsecret missing'],
  ])('WeChat %i is internal (500, logged as an error for the operator), not 401 (the app would ask the user to sign in again, forever)', async (errcode, errmsg) => {
    const deps: LoginDeps = {
      accounts: async () => new Map([[MINI.accountId, MINI]]),
      api: {
        exchangeCode: async () => {
          throw new WechatApiError(errcode, errmsg, 'jscode2session');
        },
      },
      issueToken: async () => {
        throw new Error('no token for a failed login');
      },
    };
    const err = await loginWithWechat(deps, { accountId: 'mini1', code: 'c0de', kind: 'miniprogram' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe('internal');
  });
});
