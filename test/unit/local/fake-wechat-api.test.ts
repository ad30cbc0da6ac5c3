import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { startFakeWechatApi, type FakeWechatApi } from '../../../local/fake-wechat-api';

/**
 * The fake WeChat API over real HTTP (global fetch), with a clock the tests move: every rule it
 * enforces as WeChat does, and every switch.
 */
const APP_ID = 'wxfakeapp000000001';
const APP_SECRET = 'fake-app-secret';
const CORP_ID = 'wwfakecorp';
const CORP_SECRET = 'fake-corp-secret';
const AGENT_ID = 1000002;
/** 2025-01-01T12:00:00+08:00: mid-day in Beijing, where WeChat's daily quotas reset. */
const START = Date.UTC(2025, 0, 1, 4);

type Json = Record<string, unknown>;

let api: FakeWechatApi;
let clockMs: number;
const advance = (seconds: number) => void (clockMs += seconds * 1000);

beforeEach(async () => {
  clockMs = START;
  api = await startFakeWechatApi({ now: () => clockMs });
  api.addOfficialAccount(APP_ID, APP_SECRET);
  api.addWecomApp(CORP_ID, CORP_SECRET, AGENT_ID);
  // Recipients WeChat lets the tests send to (the rules themselves are tested below).
  for (const openId of ['o-user-1', 'o-user-2']) api.userMessaged(APP_ID, openId);
  api.addWecomUser(CORP_ID, 'zhangsan');
});

afterEach(async () => {
  await api.close();
});

async function post(path: string, body: unknown, init: RequestInit = {}): Promise<Json> {
  const response = await fetch(api.url + path, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), ...init });
  expect(response.status).toBe(200);
  return (await response.json()) as Json;
}

async function get(path: string, query: Record<string, string>): Promise<Json> {
  const response = await fetch(`${api.url}${path}?${new URLSearchParams(query)}`);
  expect(response.status).toBe(200);
  return (await response.json()) as Json;
}

const stableToken = (body: Json = {}) => post('/cgi-bin/stable_token', { grant_type: 'client_credential', appid: APP_ID, secret: APP_SECRET, ...body });
const wecomToken = (query: Record<string, string> = {}) => get('/cgi-bin/gettoken', { corpid: CORP_ID, corpsecret: CORP_SECRET, ...query });
const textTo = (touser: string, content = 'hi') => ({ touser, msgtype: 'text', text: { content } });
const customSend = (token: string, body: unknown = textTo('o-user-1')) => post(`/cgi-bin/message/custom/send?access_token=${token}`, body);
const templateSend = (token: string, body: Json) => post(`/cgi-bin/message/template/send?access_token=${token}`, { template_id: 'tpl-1', data: { x: { value: 'y' } }, ...body });
const wecomSend = (token: string, body: Json = {}) => post(`/cgi-bin/message/send?access_token=${token}`, { agentid: AGENT_ID, ...textTo('zhangsan'), ...body });
const jscode2session = (code: string, query: Record<string, string> = {}) =>
  get('/sns/jscode2session', { appid: APP_ID, secret: APP_SECRET, js_code: code, grant_type: 'authorization_code', ...query });
const oauthToken = (code: string) => get('/sns/oauth2/access_token', { appid: APP_ID, secret: APP_SECRET, code, grant_type: 'authorization_code' });

async function tokenOf(reply: Promise<Json>): Promise<string> {
  const token = (await reply).access_token;
  expect(typeof token).toBe('string');
  return token as string;
}

describe('stable_token', () => {
  test('repeats the current token with its remaining seconds; a new one only after expiry', async () => {
    const first = await stableToken();
    expect(first).toEqual({ access_token: expect.any(String), expires_in: 7200 });
    expect('errcode' in first).toBe(false);

    advance(1000);
    expect(await stableToken({ force_refresh: false })).toEqual({ access_token: first.access_token, expires_in: 6200 });
    expect(api.tokensIssued(APP_ID)).toBe(1);

    advance(6200);
    expect((await customSend(first.access_token as string)).errcode).toBe(42001);
    const second = await stableToken();
    expect(second.access_token).not.toBe(first.access_token);
    expect(second.expires_in).toBe(7200);
    expect(api.tokensIssued(APP_ID)).toBe(2);
    expect(api.calls('stable_token')).toBe(3);
  });

  test('tokenTtlSeconds sets the lifetime', async () => {
    await api.close();
    api = await startFakeWechatApi({ now: () => clockMs, tokenTtlSeconds: 60 });
    api.addOfficialAccount(APP_ID, APP_SECRET);
    api.userMessaged(APP_ID, 'o-user-1');
    const token = await tokenOf(stableToken());
    advance(59);
    expect((await customSend(token)).errcode).toBe(0);
    advance(1);
    expect((await customSend(token)).errcode).toBe(42001);
  });

  test('refuses bad requests as WeChat does, issuing nothing', async () => {
    expect((await stableToken({ grant_type: 'authorization_code' })).errcode).toBe(40002);
    expect((await stableToken({ appid: 'wxunknown' })).errcode).toBe(40013);
    expect((await stableToken({ secret: 'wrong' })).errcode).toBe(40125);
    expect((await stableToken({ secret: undefined })).errcode).toBe(41004);
    expect((await post('/cgi-bin/stable_token', 'grant_type=client_credential')).errcode).toBe(47001);
    const getInstead = (await (await fetch(`${api.url}/cgi-bin/stable_token`)).json()) as Json;
    expect(getInstead.errcode).toBe(43002);
    expect(api.tokensIssued(APP_ID)).toBe(0);
  });

  test('errmsg carries a request id, so nobody matches on its text', async () => {
    expect((await stableToken({ secret: 'wrong' })).errmsg).toMatch(/^invalid appsecret rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$/);
  });

  test('force_refresh issues a new token and the previous one fails at once with 40001', async () => {
    const old = await tokenOf(stableToken());
    advance(10);
    const fresh = await stableToken({ force_refresh: true });
    expect(fresh).toEqual({ access_token: expect.any(String), expires_in: 7200 });
    expect(fresh.access_token).not.toBe(old);
    expect((await customSend(old)).errcode).toBe(40001);
    expect((await customSend(fresh.access_token as string)).errcode).toBe(0);
    expect((await stableToken()).access_token).toBe(fresh.access_token);
    expect(api.tokensIssued(APP_ID)).toBe(2);
  });

  test('a force refresh less than 30 s after the previous one is 45011 and changes nothing', async () => {
    const first = await tokenOf(stableToken({ force_refresh: true }));
    advance(29);
    expect(await stableToken({ force_refresh: true })).toMatchObject({ errcode: 45011, errmsg: expect.stringContaining('api minute-quota reach limit') });
    expect((await customSend(first)).errcode).toBe(0);
    expect(api.tokensIssued(APP_ID)).toBe(1);
    advance(1);
    expect((await stableToken({ force_refresh: true })).access_token).not.toBe(first);
  });

  test('20 force refreshes a Beijing day, then 45009 until the next day', async () => {
    for (let i = 0; i < 20; i++) {
      expect((await stableToken({ force_refresh: true })).access_token).toEqual(expect.any(String));
      advance(30);
    }
    const last = await tokenOf(stableToken());
    expect((await stableToken({ force_refresh: true })).errcode).toBe(45009);
    expect((await customSend(last)).errcode).toBe(0);
    clockMs = Date.UTC(2025, 0, 1, 16); // midnight in Beijing
    expect((await stableToken({ force_refresh: true })).access_token).toEqual(expect.any(String));
  });

  test('invalidateTokens makes every token of the account 40001; the next call gets a new one', async () => {
    const old = await tokenOf(stableToken());
    const wecomOld = await tokenOf(wecomToken());
    api.invalidateTokens(APP_ID);
    expect((await customSend(old)).errcode).toBe(40001);
    expect((await wecomSend(wecomOld)).errcode).toBe(0);
    const fresh = await tokenOf(stableToken());
    expect(fresh).not.toBe(old);
    expect(api.tokensIssued(APP_ID)).toBe(2);
    expect(() => api.invalidateTokens('wxnobody')).toThrow(/no account/);
  });
});

describe('gettoken (WeCom)', () => {
  test('same token with the remaining seconds while valid, a new one after expiry', async () => {
    const first = await wecomToken();
    expect(first).toEqual({ errcode: 0, errmsg: 'ok', access_token: expect.any(String), expires_in: 7200 });
    advance(7000);
    expect(await wecomToken()).toEqual({ errcode: 0, errmsg: 'ok', access_token: first.access_token, expires_in: 200 });
    advance(200);
    const second = await wecomToken();
    expect(second.access_token).not.toBe(first.access_token);
    expect(api.tokensIssued(CORP_ID)).toBe(2);
    expect(api.calls('gettoken')).toBe(3);
  });

  test('unknown corpid 40013, wrong secret 40001, missing secret 41004', async () => {
    expect((await wecomToken({ corpid: 'wwunknown' })).errcode).toBe(40013);
    expect(await wecomToken({ corpsecret: 'wrong' })).toMatchObject({ errcode: 40001, errmsg: expect.stringMatching(/^invalid credential, hint: /) });
    expect((await wecomToken({ corpsecret: '' })).errcode).toBe(41004);
    expect(api.tokensIssued(CORP_ID)).toBe(0);
  });

  test('each application of a corp has its own token', async () => {
    api.addWecomApp(CORP_ID, 'second-app-secret', 1000003);
    const first = await tokenOf(wecomToken());
    const second = await tokenOf(wecomToken({ corpsecret: 'second-app-secret' }));
    expect(second).not.toBe(first);
    expect(api.tokensIssued(CORP_ID)).toBe(2);
  });
});

describe('message endpoints', () => {
  test('custom/send records what WeChat accepted', async () => {
    const token = await tokenOf(stableToken());
    advance(5);
    expect(await customSend(token)).toEqual({ errcode: 0, errmsg: 'ok' });
    expect(api.sent).toEqual([{ endpoint: 'custom/send', appIdOrCorpId: APP_ID, body: textTo('o-user-1'), at: START + 5000 }]);
    expect(api.calls('custom/send')).toBe(1);
  });

  test('token checks: missing 41001, unknown 40001, expired 42001', async () => {
    expect((await post('/cgi-bin/message/custom/send', textTo('o-user-1'))).errcode).toBe(41001);
    expect((await customSend('made-up-token')).errcode).toBe(40001);
    expect((await templateSend('made-up-token', { touser: 'o-user-1' })).errcode).toBe(40001);
    const token = await tokenOf(stableToken());
    advance(7200);
    expect((await post(`/cgi-bin/message/subscribe/send?access_token=${token}`, { touser: 'o-user-1', template_id: 't' })).errcode).toBe(42001);
    expect(api.sent).toEqual([]);
  });

  test('body checks: not JSON 47001, no touser 40003, unknown msgtype 40008, empty text 44004', async () => {
    const token = await tokenOf(stableToken());
    expect((await customSend(token, '{"touser":')).errcode).toBe(47001);
    expect((await customSend(token, '[]')).errcode).toBe(47001);
    expect((await customSend(token, { msgtype: 'text', text: { content: 'hi' } })).errcode).toBe(40003);
    expect((await customSend(token, { touser: 'o-user-1', msgtype: 'telegram' })).errcode).toBe(40008);
    expect((await customSend(token, textTo('o-user-1', ''))).errcode).toBe(44004);
    expect((await templateSend(token, { touser: 'o-user-1', template_id: '' })).errcode).toBe(40037);
    expect(api.sent).toEqual([]);
  });

  test('GET on a POST endpoint is 43002', async () => {
    const token = await tokenOf(stableToken());
    expect(((await (await fetch(`${api.url}/cgi-bin/message/custom/send?access_token=${token}`)).json()) as Json).errcode).toBe(43002);
  });

  test('template/send answers a numeric msgid', async () => {
    const token = await tokenOf(stableToken());
    const reply = await templateSend(token, { touser: 'o-user-1', url: 'https://example.com' });
    expect(reply).toEqual({ errcode: 0, errmsg: 'ok', msgid: expect.any(Number) });
    expect(api.sent.map((m) => m.endpoint)).toEqual(['template/send']);
  });

  test('template client_msg_id: within 10 minutes the same msgid and no second send; then a new one', async () => {
    const token = await tokenOf(stableToken());
    const first = await templateSend(token, { touser: 'o-user-1', client_msg_id: 'job-1' });
    advance(599);
    const repeat = await templateSend(token, { touser: 'o-user-1', client_msg_id: 'job-1' });
    expect(repeat).toEqual({ errcode: 0, errmsg: 'ok', msgid: first.msgid });
    expect(api.sent).toHaveLength(1);

    const otherUser = await templateSend(token, { touser: 'o-user-2', client_msg_id: 'job-1' });
    expect(otherUser.msgid).not.toBe(first.msgid);
    expect(api.sent).toHaveLength(2);

    advance(1);
    const afterWindow = await templateSend(token, { touser: 'o-user-1', client_msg_id: 'job-1' });
    expect(afterWindow.msgid).not.toBe(first.msgid);
    expect(api.sent).toHaveLength(3);
  });

  test('subscribe/send records the message', async () => {
    const token = await tokenOf(stableToken());
    const body = { touser: 'o-user-1', template_id: 'sub-1', data: { thing1: { value: 'x' } }, page: 'pages/index' };
    expect(await post(`/cgi-bin/message/subscribe/send?access_token=${token}`, body)).toEqual({ errcode: 0, errmsg: 'ok', msgid: expect.any(Number) });
    expect(api.sent).toEqual([{ endpoint: 'subscribe/send', appIdOrCorpId: APP_ID, body, at: START }]);
  });

  test('WeCom message/send: string msgid, recorded under the corp; its token must be a WeCom token of that agent', async () => {
    api.addWecomApp(CORP_ID, 'second-app-secret', 1000003);
    const token = await tokenOf(wecomToken());
    expect(await wecomSend(token)).toEqual({ errcode: 0, errmsg: 'ok', msgid: expect.any(String) });
    expect(api.sent).toEqual([{ endpoint: 'wecom/message/send', appIdOrCorpId: CORP_ID, body: expect.objectContaining({ agentid: AGENT_ID }), at: START }]);

    expect((await wecomSend(token, { agentid: 999 })).errcode).toBe(40056);
    expect((await wecomSend(token, { agentid: 1000003 })).errcode).toBe(301002);
    expect((await wecomSend(token, { touser: undefined })).errcode).toBe(40003);
    expect((await wecomSend(await tokenOf(stableToken()))).errcode).toBe(40014);
    expect((await customSend(token)).errcode).toBe(40001);
    expect((await post('/cgi-bin/message/send', {})).errcode).toBe(41001);
    expect(api.sent).toHaveLength(1);
  });
});

describe('login codes', () => {
  test('jscode2session: openid, session_key, unionid and no errcode; a second use is 40163', async () => {
    const code = api.issueLoginCode(APP_ID, { openId: 'o-user-1', unionId: 'u-1' }, 'miniprogram');
    expect(await jscode2session(code)).toEqual({ openid: 'o-user-1', session_key: expect.any(String), unionid: 'u-1' });
    expect((await jscode2session(code)).errcode).toBe(40163);
    const withoutUnion = api.issueLoginCode(APP_ID, { openId: 'o-user-2' }, 'miniprogram');
    expect(await jscode2session(withoutUnion)).toEqual({ openid: 'o-user-2', session_key: expect.any(String) });
  });

  test('unknown 40029, expired after 5 minutes 40029, bad appid 40013, bad secret 40125, other app 40029', async () => {
    api.addOfficialAccount('wxotherapp', 'other-secret');
    const code = api.issueLoginCode(APP_ID, { openId: 'o-user-1' }, 'miniprogram');
    expect((await jscode2session('made-up-code')).errcode).toBe(40029);
    expect((await jscode2session(code, { appid: 'wxunknown' })).errcode).toBe(40013);
    expect((await jscode2session(code, { secret: 'wrong' })).errcode).toBe(40125);
    expect((await jscode2session(code, { appid: 'wxotherapp', secret: 'other-secret' })).errcode).toBe(40029);
    expect((await jscode2session(code, { grant_type: 'client_credential' })).errcode).toBe(40002);
    advance(300);
    expect((await jscode2session(code)).errcode).toBe(40029);
    expect(() => api.issueLoginCode('wxnobody', { openId: 'o' }, 'oauth')).toThrow(/no account/);
  });

  test('a code works only for the flow it was issued for', async () => {
    const oauthCode = api.issueLoginCode(APP_ID, { openId: 'o-user-1' }, 'oauth');
    expect((await jscode2session(oauthCode)).errcode).toBe(40029);
    const miniCode = api.issueLoginCode(APP_ID, { openId: 'o-user-1' }, 'miniprogram');
    expect((await oauthToken(miniCode)).errcode).toBe(40029);
    expect((await oauthToken(oauthCode)).openid).toBe('o-user-1');
    expect((await jscode2session(miniCode)).openid).toBe('o-user-1');
  });

  test('oauth2/access_token answers a user token that message APIs reject; a second use is 40163', async () => {
    const code = api.issueLoginCode(APP_ID, { openId: 'o-user-1', unionId: 'u-1' }, 'oauth');
    const reply = await oauthToken(code);
    expect(reply).toEqual({ access_token: expect.any(String), expires_in: 7200, refresh_token: expect.any(String), openid: 'o-user-1', scope: 'snsapi_base', unionid: 'u-1' });
    expect((await oauthToken(code)).errcode).toBe(40163);
    expect((await customSend(reply.access_token as string)).errcode).toBe(40001);
    expect(api.tokensIssued(APP_ID)).toBe(0);
  });
});

describe('switches', () => {
  test('failNext answers the errcode without performing the call, then calls run normally', async () => {
    api.failNext('stable_token', -1);
    expect(await stableToken()).toEqual({ errcode: -1, errmsg: expect.stringMatching(/^system error rid: /) });
    expect(api.tokensIssued(APP_ID)).toBe(0);
    const token = await tokenOf(stableToken());

    api.failNext('custom/send', 45015, 2);
    expect((await customSend(token)).errcode).toBe(45015);
    expect((await customSend(token)).errcode).toBe(45015);
    expect(await customSend(token)).toEqual({ errcode: 0, errmsg: 'ok' });
    expect(api.sent).toHaveLength(1);
    expect(api.calls('stable_token')).toBe(2);
    expect(api.calls('custom/send')).toBe(3);
  });

  test('delayNext answers after the delay and performs the call', async () => {
    const token = await tokenOf(stableToken());
    api.delayNext('custom/send', 300);
    const started = performance.now();
    expect(await customSend(token)).toEqual({ errcode: 0, errmsg: 'ok' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(300);
    expect(api.sent).toHaveLength(1);

    const next = performance.now();
    await customSend(token);
    expect(performance.now() - next).toBeLessThan(300);
  });

  test('hangNext never answers: the client gives up; nothing is performed; the next call is normal', async () => {
    api.hangNext('stable_token');
    const body = JSON.stringify({ grant_type: 'client_credential', appid: APP_ID, secret: APP_SECRET });
    await expect(fetch(`${api.url}/cgi-bin/stable_token`, { method: 'POST', body, signal: AbortSignal.timeout(200) })).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(api.tokensIssued(APP_ID)).toBe(0);
    await tokenOf(stableToken());
    expect(api.calls('stable_token')).toBe(2);
  });

  test('resetNext destroys the socket: fetch fails with a TypeError; nothing is performed', async () => {
    const token = await tokenOf(stableToken());
    api.resetNext('custom/send');
    // Matched by name: fetch's errors come from another realm than jest's globals.
    await expect(customSend(token)).rejects.toMatchObject({ name: 'TypeError', message: 'fetch failed' });
    expect(api.sent).toEqual([]);
    await customSend(token);
    expect(api.sent).toHaveLength(1);
    expect(api.calls('custom/send')).toBe(2);
  });

  test('switches of one endpoint apply in the order they were set', async () => {
    api.failNext('gettoken', -1);
    api.failNext('gettoken', 40001);
    expect((await wecomToken()).errcode).toBe(-1);
    expect((await wecomToken()).errcode).toBe(40001);
    expect((await wecomToken()).errcode).toBe(0);
    expect(() => api.failNext('gettoken', -1, 0)).toThrow(RangeError);
  });

  test('reset clears sent, calls and switches but keeps accounts and tokens', async () => {
    const token = await tokenOf(stableToken());
    await customSend(token);
    api.failNext('custom/send', -1);
    api.reset();
    expect(api.sent).toEqual([]);
    expect(api.calls('stable_token')).toBe(0);
    expect(await customSend(token)).toEqual({ errcode: 0, errmsg: 'ok' });
    expect(api.tokensIssued(APP_ID)).toBe(1);
  });

  test('close() resolves with a hung request and a delayed answer pending', async () => {
    const token = await tokenOf(stableToken());
    api.hangNext('custom/send');
    api.delayNext('template/send', 60_000);
    const hung = customSend(token).catch((err: unknown) => err);
    const delayed = templateSend(token, { touser: 'o-user-1' }).catch((err: unknown) => err);
    while (api.calls('custom/send') + api.calls('template/send') < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    const started = performance.now();
    await api.close();
    expect(performance.now() - started).toBeLessThan(1000);
    expect(await hung).toMatchObject({ name: 'TypeError', message: 'fetch failed' });
    await delayed;
  });
});

test('an unknown path is HTTP 404 with a WeChat-style body', async () => {
  const response = await fetch(`${api.url}/cgi-bin/token?grant_type=client_credential`);
  expect(response.status).toBe(404);
  expect(await response.json()).toEqual({ errcode: -1, errmsg: 'not found' });
});

describe('who may be sent to', () => {
  test('custom/send only within 48 hours of the user\'s last message (45015 otherwise, nothing recorded)', async () => {
    const token = await tokenOf(stableToken());
    expect((await customSend(token, textTo('o-stranger'))).errcode).toBe(45015);
    api.userMessaged(APP_ID, 'o-stranger');
    expect((await customSend(token, textTo('o-stranger'))).errcode).toBe(0);
    advance(48 * 3600 + 1);
    const later = await tokenOf(stableToken());
    expect((await customSend(later, textTo('o-stranger'))).errcode).toBe(45015);
    expect(api.sent.filter((m) => m.body.touser === 'o-stranger')).toHaveLength(1);
  });

  test('WeCom message/send only to users of the corp (81013 when every listed user is unknown)', async () => {
    const token = await tokenOf(wecomToken());
    expect((await wecomSend(token, { touser: 'lisi' })).errcode).toBe(81013);
    expect((await wecomSend(token, { touser: 'lisi|zhangsan' })).errcode).toBe(0);
    api.addWecomUser(CORP_ID, 'lisi');
    expect((await wecomSend(token, { touser: 'lisi' })).errcode).toBe(0);
  });

  test("recipients: 'open' accepts anyone (local mode, where users' messages reach wxgate, not the fake)", async () => {
    const open = await startFakeWechatApi({ now: () => clockMs, recipients: 'open' });
    try {
      open.addOfficialAccount(APP_ID, APP_SECRET);
      const response = await fetch(`${open.url}/cgi-bin/stable_token`, { method: 'POST', body: JSON.stringify({ grant_type: 'client_credential', appid: APP_ID, secret: APP_SECRET }) });
      const { access_token } = (await response.json()) as { access_token: string };
      const sent = await fetch(`${open.url}/cgi-bin/message/custom/send?access_token=${access_token}`, { method: 'POST', body: JSON.stringify(textTo('o-anyone')) });
      expect(((await sent.json()) as Json).errcode).toBe(0);
    } finally {
      await open.close();
    }
  });
});
