/**
 * WeChat login (lambdas/domain/wechat-login.ts) with a fake code exchange, accounts and token
 * issuer: the user id it derives, how each WeChat failure reaches the caller, what it refuses
 * before calling WeChat, and that WeChat's session key never comes back out.
 */
import { GatewayError } from '../../../lambdas/domain/errors';
import type { WechatAccount } from '../../../lambdas/domain/wechat-accounts';
import { WechatApiError, WechatNetworkError, type WechatLoginApi } from '../../../lambdas/domain/wechat-api';
import { LOGIN_TOKEN_TTL_SECONDS, loginWithWechat, parseLoginRequest, userIdOf, type LoginDeps, type LoginRequest } from '../../../lambdas/domain/wechat-login';

const MINI: WechatAccount = { accountId: 'mini1', kind: 'oa', token: 'tok123', receiveId: 'wxmini', appSecret: 'secret' };
const NO_SECRET: WechatAccount = { accountId: 'nosecret', kind: 'oa', token: 'tok123', receiveId: 'wxns' };
const WECOM: WechatAccount = { accountId: 'wc1', kind: 'wecom', token: 'tok123', encodingAESKey: 'a'.repeat(43), receiveId: 'ww', appSecret: 's', agentId: 1 };

type Answer = { openId: string; unionId?: string; [extra: string]: unknown } | Error;

class FakeLoginApi implements WechatLoginApi {
  readonly calls: Array<{ accountId: string; kind: string; code: string }> = [];
  constructor(private readonly answer: Answer) {}

  async exchangeCode(account: WechatAccount, kind: 'miniprogram' | 'oauth', code: string) {
    this.calls.push({ accountId: account.accountId, kind, code });
    await Promise.resolve();
    if (this.answer instanceof Error) throw this.answer;
    return this.answer as { openId: string; unionId?: string };
  }
}

function rig(answer: Answer) {
  const api = new FakeLoginApi(answer);
  const issued: Array<{ userId: string; deviceId?: string; ttlSeconds: number }> = [];
  const deps: LoginDeps = {
    accounts: async () => new Map([MINI, NO_SECRET, WECOM].map((a) => [a.accountId, a])),
    api,
    issueToken: async (request) => {
      issued.push(request);
      return { token: `jwt-for-${request.userId}`, expiresAt: 1_800_000_000 };
    },
  };
  return { api, issued, deps };
}

const request = (overrides: Partial<LoginRequest> = {}): LoginRequest => ({ accountId: 'mini1', code: '0a3Xyz', kind: 'miniprogram', ...overrides });

async function gatewayErrorOf(promise: Promise<unknown>): Promise<GatewayError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatewayError);
  return err as GatewayError;
}

describe('loginWithWechat', () => {
  it('with a unionId: the user is wxu:{unionId}, the token is issued for it with the login TTL', async () => {
    const t = rig({ openId: 'oOpen1', unionId: 'oUnion_9-Z', session_key: 'SECRET_SESSION_KEY' });
    const result = await loginWithWechat(t.deps, request({ deviceId: 'phone-1' }));
    expect(result).toEqual({ token: 'jwt-for-wxu:oUnion_9-Z', expiresAt: 1_800_000_000, userId: 'wxu:oUnion_9-Z' });
    expect(t.issued).toEqual([{ userId: 'wxu:oUnion_9-Z', deviceId: 'phone-1', ttlSeconds: LOGIN_TOKEN_TTL_SECONDS }]);
    expect(t.api.calls).toEqual([{ accountId: 'mini1', kind: 'miniprogram', code: '0a3Xyz' }]);
  });

  it('without a unionId: wxo:{accountId}:{openId}; an OAuth code goes to the oauth exchange', async () => {
    const t = rig({ openId: 'oOpen1' });
    await expect(loginWithWechat(t.deps, request({ kind: 'oauth' }))).resolves.toMatchObject({ userId: 'wxo:mini1:oOpen1' });
    expect(t.api.calls[0]!.kind).toBe('oauth');
    expect(t.issued[0]).toEqual({ userId: 'wxo:mini1:oOpen1', deviceId: undefined, ttlSeconds: LOGIN_TOKEN_TTL_SECONDS });
  });

  it('an empty unionId counts as none', async () => {
    const t = rig({ openId: 'oOpen1', unionId: '' });
    await expect(loginWithWechat(t.deps, request())).resolves.toMatchObject({ userId: 'wxo:mini1:oOpen1' });
  });

  it('the result never carries the session_key (or anything else WeChat answered)', async () => {
    const t = rig({ openId: 'oOpen1', unionId: 'u1', session_key: 'SECRET_SESSION_KEY', access_token: 'OAUTH_TOKEN' });
    const result = await loginWithWechat(t.deps, request());
    expect(Object.keys(result).sort()).toEqual(['expiresAt', 'token', 'userId']);
    expect(result).not.toHaveProperty('session_key');
    expect(result).not.toHaveProperty('sessionKey');
    expect(JSON.stringify(result)).not.toContain('SECRET_SESSION_KEY');
    expect(JSON.stringify(result)).not.toContain('OAUTH_TOKEN');
    expect(JSON.stringify(t.issued)).not.toContain('SECRET_SESSION_KEY');
  });

  it.each([
    [40029, 'invalid code'],
    [40163, 'code been used'],
    [45011, 'api minute-quota reach limit'],
  ])('WechatApiError %i: unauthorized, naming the code; no token issued', async (errcode, errmsg) => {
    const t = rig(new WechatApiError(errcode, errmsg, 'jscode2session'));
    const err = await gatewayErrorOf(loginWithWechat(t.deps, request()));
    expect(err.code).toBe('unauthorized');
    expect(err.message).toContain(String(errcode));
    expect(err.message).toContain(errmsg);
    expect(t.issued).toEqual([]);
  });

  it('a WechatApiError without errmsg still names the code', async () => {
    const t = rig(new WechatApiError(40029, '', 'jscode2session'));
    const err = await gatewayErrorOf(loginWithWechat(t.deps, request()));
    expect(err).toMatchObject({ code: 'unauthorized' });
    expect(err.message).toMatch(/40029$/);
  });

  it('a network failure: internal (try again with a new code), no token issued', async () => {
    const t = rig(new WechatNetworkError('timeout', 'jscode2session'));
    const err = await gatewayErrorOf(loginWithWechat(t.deps, request()));
    expect(err.code).toBe('internal');
    expect(err.message).toMatch(/new code/);
    expect(t.issued).toEqual([]);
  });

  it('any other error escapes as it is (the handler reports it as internal)', async () => {
    const bug = new TypeError('adapter bug');
    const t = rig(bug);
    await expect(loginWithWechat(t.deps, request())).rejects.toBe(bug);
  });

  it('an unknown account: not_found, WeChat is not called', async () => {
    const t = rig({ openId: 'o' });
    const err = await gatewayErrorOf(loginWithWechat(t.deps, request({ accountId: 'nope' })));
    expect(err.code).toBe('not_found');
    expect(err.message).toContain('nope');
    expect(t.api.calls).toEqual([]);
  });

  it('a WeCom account: bad_request (400), WeChat is not called', async () => {
    const t = rig({ openId: 'o' });
    const err = await gatewayErrorOf(loginWithWechat(t.deps, request({ accountId: 'wc1' })));
    expect(err.code).toBe('bad_request');
    expect(err.message).toContain('WeCom');
    expect(t.api.calls).toEqual([]);
  });

  it('an account without appSecret: internal naming appSecret, WeChat is not called', async () => {
    const t = rig({ openId: 'o' });
    const err = await gatewayErrorOf(loginWithWechat(t.deps, request({ accountId: 'nosecret' })));
    expect(err.code).toBe('internal');
    expect(err.message).toContain('appSecret');
    expect(t.api.calls).toEqual([]);
  });

  it('an openid or unionid wxgate cannot use as a user id: internal, no token issued', async () => {
    for (const identity of [{ openId: 'bad id/with space' }, { openId: 'o', unionId: 'u'.repeat(200) }, { openId: '' }]) {
      const t = rig(identity);
      const err = await gatewayErrorOf(loginWithWechat(t.deps, request()));
      expect(err.code).toBe('internal');
      expect(t.issued).toEqual([]);
    }
  });
});

describe('userIdOf', () => {
  it('wxu: for a unionId, else wxo:{accountId}:{openId}', () => {
    expect(userIdOf('a', { openId: 'o', unionId: 'u' })).toBe('wxu:u');
    expect(userIdOf('a', { openId: 'o' })).toBe('wxo:a:o');
    expect(userIdOf('b', { openId: 'o' })).not.toBe(userIdOf('a', { openId: 'o' })); // openIds are per account
    expect(userIdOf('b', { openId: 'o2', unionId: 'u' })).toBe(userIdOf('a', { openId: 'o', unionId: 'u' })); // one person across accounts
  });

  it('never produces an id in the reserved wechat: namespace', () => {
    expect(userIdOf('wechat', { openId: 'x' }).startsWith('wechat:')).toBe(false);
  });
});

describe('parseLoginRequest', () => {
  it('accepts a full request and one without deviceId', () => {
    expect(parseLoginRequest({ accountId: 'mini1', code: 'c', kind: 'oauth', deviceId: 'd-1:x@y.z' })).toEqual({ accountId: 'mini1', code: 'c', kind: 'oauth', deviceId: 'd-1:x@y.z' });
    expect(parseLoginRequest({ accountId: 'mini1', code: 'c', kind: 'miniprogram' })).toEqual({ accountId: 'mini1', code: 'c', kind: 'miniprogram' });
  });

  it.each<[string, unknown, RegExp]>([
    ['not an object', 'code', /body/],
    ['null', null, /body/],
    ['an array', [], /body/],
    ['a missing accountId', { code: 'c', kind: 'oauth' }, /accountId/],
    ['an accountId with bad chars', { accountId: 'a/b', code: 'c', kind: 'oauth' }, /accountId/],
    ['an accountId too long', { accountId: 'a'.repeat(65), code: 'c', kind: 'oauth' }, /accountId/],
    ['a missing code', { accountId: 'a', kind: 'oauth' }, /code/],
    ['an empty code', { accountId: 'a', code: '', kind: 'oauth' }, /code/],
    ['a code too long', { accountId: 'a', code: 'c'.repeat(257), kind: 'oauth' }, /code/],
    ['a numeric code', { accountId: 'a', code: 123, kind: 'oauth' }, /code/],
    ['a missing kind', { accountId: 'a', code: 'c' }, /kind/],
    ['an unknown kind', { accountId: 'a', code: 'c', kind: 'wecom' }, /kind/],
    ['a bad deviceId', { accountId: 'a', code: 'c', kind: 'oauth', deviceId: 'has space' }, /deviceId/],
    ['an empty deviceId', { accountId: 'a', code: 'c', kind: 'oauth', deviceId: '' }, /deviceId/],
    ['an unknown field', { accountId: 'a', code: 'c', kind: 'oauth', userId: 'admin' }, /userId|unrecognized/i],
  ])('refuses %s with bad_request naming the field', (_name, body, message) => {
    let caught: unknown;
    try {
      parseLoginRequest(body);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(GatewayError);
    expect((caught as GatewayError).code).toBe('bad_request');
    expect((caught as GatewayError).message).toMatch(message);
  });
});
