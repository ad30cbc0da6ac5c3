/**
 * Access tokens and the HTTP adapter against DynamoDB Local and the fake WeChat API
 * (local/fake-wechat-api.ts), which is as strict as WeChat: superseded tokens get 40001, force
 * refreshes less than 30 s apart get 45011, login codes are single use. Each "instance" is its own
 * createAccessTokens with its own adapters, sharing only the table, as Lambda instances do.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoWechatTokenStore, TOKEN_ROW_TTL_SECONDS } from '../../lambdas/adapters/dynamo-wechat-token-store';
import { WechatHttpApi } from '../../lambdas/adapters/wechat-http-api';
import { epochSeconds, systemClock } from '../../lambdas/domain/clock';
import { createAccessTokens, EXPIRY_MARGIN_MS, LEASE_MS } from '../../lambdas/domain/wechat-access-token';
import type { WechatAccount } from '../../lambdas/domain/wechat-accounts';
import { WechatApiError, WechatNetworkError } from '../../lambdas/domain/wechat-api';
import { startDynamoEngine, type DynamoEngine } from '../../local/dynamodb-engine';
import { startFakeWechatApi, type FakeWechatApi } from '../../local/fake-wechat-api';

let engine: DynamoEngine;
let ddb: DynamoDBDocumentClient;
let fake: FakeWechatApi;
let table: string;

beforeAll(async () => {
  [engine, fake] = await Promise.all([startDynamoEngine({ logger: () => undefined }), startFakeWechatApi()]);
  ddb = DynamoDBDocumentClient.from(engine.client, { marshallOptions: { removeUndefinedValues: true } });
  table = engine.tableNames.wechat;
}, 60_000);

afterAll(async () => {
  await Promise.all([engine?.stop(), fake?.close()]);
});

beforeEach(() => fake.reset());

let unique = 0;
const fresh = (prefix: string) => `${prefix}${++unique}${Math.random().toString(36).slice(2, 8)}`;

/** A new official account at the fake, so no test sees another's tokens or quotas. */
function officialAccount(): WechatAccount {
  const account: WechatAccount = { accountId: fresh('oa-'), kind: 'oa', token: 'tok123', receiveId: fresh('wx'), appSecret: `secret-${randomUUID()}` };
  fake.addOfficialAccount(account.receiveId, account.appSecret!);
  fake.userMessaged(account.receiveId, 'o-user-1'); // within WeChat's 48-hour reply window
  return account;
}

function wecomApp(): WechatAccount {
  const account: WechatAccount = {
    accountId: fresh('corp-'),
    kind: 'wecom',
    token: 'tok456',
    encodingAESKey: 'b'.repeat(43),
    receiveId: fresh('ww'),
    appSecret: `wecom-secret-${randomUUID()}`,
    agentId: 1000002,
  };
  fake.addWecomApp(account.receiveId, account.appSecret!, account.agentId!);
  fake.addWecomUser(account.receiveId, 'zhangsan');
  return account;
}

const httpApi = (timeoutMs?: number) => new WechatHttpApi({ wechatApiBase: fake.url, wecomApiBase: fake.url, timeoutMs });
const store = () => new DynamoWechatTokenStore(ddb, table);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One simulated Lambda instance: its own adapters, the shared table. */
const instance = (timeoutMs?: number) =>
  createAccessTokens({ store: store(), api: httpApi(timeoutMs), clock: systemClock, sleep, newLeaseOwner: () => randomUUID() });

const customText = (token: string, account: WechatAccount) => httpApi().call(account, 'custom/send', token, { touser: 'o-user-1', msgtype: 'text', text: { content: 'hi' } });

/** The error a promise rejects with. */
const rejection = (promise: Promise<unknown>) => promise.then(
  () => {
    throw new Error('expected a rejection');
  },
  (error: unknown) => error as Error,
);

describe('DynamoWechatTokenStore on DynamoDB Local', () => {
  const now = Date.now();

  it('a lease only when none is live; save and release only by its owner; the row shape and TTL', async () => {
    const tokens = store();
    const id = fresh('acct-');
    await expect(tokens.read(id)).resolves.toBeUndefined();
    await expect(tokens.tryLease(id, 'o1', now, now + LEASE_MS)).resolves.toBe(true);
    await expect(tokens.read(id)).resolves.toEqual({ leaseOwner: 'o1', leaseUntilMs: now + LEASE_MS });
    await expect(tokens.tryLease(id, 'o2', now + LEASE_MS - 1, now + 2 * LEASE_MS)).resolves.toBe(false);
    await expect(tokens.saveToken(id, 'o2', 'X', now + 3_600_000, false, now)).resolves.toBe(false);
    await tokens.releaseLease(id, 'o2');
    await expect(tokens.read(id)).resolves.toMatchObject({ leaseOwner: 'o1' });

    await expect(tokens.saveToken(id, 'o1', 'T1', now + 3_600_000, true, now)).resolves.toBe(true);
    await expect(tokens.read(id)).resolves.toEqual({ accessToken: 'T1', expiresAtMs: now + 3_600_000, fetchedAtMs: now, lastForcedAtMs: now });
    const { Item } = await ddb.send(new GetCommand({ TableName: table, Key: { pk: `token#${id}`, sk: 'token' } }));
    expect(Item).toMatchObject({ pk: `token#${id}`, sk: 'token', expiresAt: epochSeconds(now) + TOKEN_ROW_TTL_SECONDS });

    // A normal save keeps the last forced time; a run-out lease is taken over and the old owner locked out.
    await expect(tokens.tryLease(id, 'o3', now + 1, now + 1 + LEASE_MS)).resolves.toBe(true);
    await expect(tokens.tryLease(id, 'o4', now + 1 + LEASE_MS, now + 1 + 2 * LEASE_MS)).resolves.toBe(true);
    await expect(tokens.saveToken(id, 'o3', 'late', now + 3_600_000, false, now + 2)).resolves.toBe(false);
    await expect(tokens.saveToken(id, 'o4', 'T2', now + 7_000_000, false, now + 3)).resolves.toBe(true);
    await expect(tokens.read(id)).resolves.toEqual({ accessToken: 'T2', expiresAtMs: now + 7_000_000, fetchedAtMs: now + 3, lastForcedAtMs: now });
  });

  it('release and save never create a row', async () => {
    const tokens = store();
    const id = fresh('acct-');
    await tokens.releaseLease(id, 'nobody');
    await expect(tokens.saveToken(id, 'nobody', 'X', now + 1000, false, now)).resolves.toBe(false);
    await expect(tokens.read(id)).resolves.toBeUndefined();
  });
});

describe('access tokens across instances', () => {
  it('20 concurrent sends on a cold cache (20 instances): one stable_token call, one token issued, and it works', async () => {
    const account = officialAccount();
    // A slow WeChat keeps the refresh open while the other 19 arrive and wait.
    fake.delayNext('stable_token', 500);
    const tokens = await Promise.all(Array.from({ length: 20 }, () => instance().get(account)));
    expect(new Set(tokens).size).toBe(1);
    expect(fake.calls('stable_token')).toBe(1);
    expect(fake.tokensIssued(account.receiveId)).toBe(1);
    await expect(customText(tokens[0]!, account)).resolves.toEqual({ errcode: 0, errmsg: 'ok' });

    const row = await store().read(account.accountId);
    expect(row).toMatchObject({ accessToken: tokens[0] });
    expect(row?.leaseOwner).toBeUndefined();
    // WeChat's 7200 s, counted from before the call, less the margin.
    expect(row!.expiresAtMs! - row!.fetchedAtMs!).toBeGreaterThan(7200_000 - EXPIRY_MARGIN_MS - 2_000);
    expect(row!.expiresAtMs! - row!.fetchedAtMs!).toBeLessThanOrEqual(7200_000 - EXPIRY_MARGIN_MS);

    // Later sends read the row.
    await expect(instance().get(account)).resolves.toBe(tokens[0]);
    expect(fake.calls('stable_token')).toBe(1);
  });

  it('a token 4 minutes from its expiry is refreshed ahead of time by one caller; the others use it meanwhile', async () => {
    const account = officialAccount();
    const first = await instance().get(account);
    // Make the cached token near its end (as two hours had passed), keeping the real token.
    const tokens = store();
    const owner = randomUUID();
    const now = Date.now();
    await tokens.tryLease(account.accountId, owner, now, now + LEASE_MS);
    await tokens.saveToken(account.accountId, owner, first, now + 4 * 60_000, false, now - 2 * 3_600_000);
    // The fake hands out its current token in normal mode; make it a new one, as WeChat does in the last minutes.
    fake.invalidateTokens(account.receiveId);
    fake.reset();
    fake.delayNext('stable_token', 3_000);
    const got = await Promise.all(Array.from({ length: 20 }, () => instance().get(account)));
    expect(fake.calls('stable_token')).toBe(1);
    const renewed = got.filter((token) => token !== first);
    expect(renewed).toHaveLength(1);
    expect(got.filter((token) => token === first)).toHaveLength(19);
    await expect(store().read(account.accountId)).resolves.toMatchObject({ accessToken: renewed[0] });
    await expect(customText(renewed[0]!, account)).resolves.toMatchObject({ errcode: 0 });
  });

  it('WeCom: gettoken with corpId and secret, once across instances; the token sends application messages', async () => {
    const account = wecomApp();
    fake.delayNext('gettoken', 300);
    const tokens = await Promise.all(Array.from({ length: 5 }, () => instance().get(account)));
    expect(new Set(tokens).size).toBe(1);
    expect(fake.calls('gettoken')).toBe(1);
    expect(fake.calls('stable_token')).toBe(0);
    const reply = await httpApi().call(account, 'wecom/message/send', tokens[0]!, { touser: 'zhangsan', agentid: account.agentId, msgtype: 'text', text: { content: 'hi' } });
    expect(reply).toMatchObject({ errcode: 0, errmsg: 'ok', msgid: expect.any(String) });

    // 40014 after invalidation: refreshAfterInvalid (gettoken again, WeCom has no force flag).
    fake.invalidateTokens(account.receiveId);
    const refused = await httpApi().call(account, 'wecom/message/send', tokens[0]!, { touser: 'zhangsan', agentid: account.agentId, msgtype: 'text', text: { content: 'hi' } });
    expect(refused.errcode).toBe(40014);
    const renewed = await instance().refreshAfterInvalid(account, tokens[0]!);
    expect(renewed).not.toBe(tokens[0]);
    expect(fake.calls('gettoken')).toBe(2);
    await expect(httpApi().call(account, 'wecom/message/send', renewed, { touser: 'zhangsan', agentid: account.agentId, msgtype: 'text', text: { content: 'hi' } })).resolves.toMatchObject({ errcode: 0 });
  });

  it('a 40001 after the token was invalidated: one normal-mode refresh for all callers (nothing forced), and custom/send accepts the new token', async () => {
    const account = officialAccount();
    const stale = await instance().get(account);
    fake.invalidateTokens(account.receiveId);
    await expect(customText(stale, account)).resolves.toMatchObject({ errcode: 40001 });

    fake.reset();
    fake.delayNext('stable_token', 300);
    const renewed = await Promise.all(Array.from({ length: 5 }, () => instance().refreshAfterInvalid(account, stale)));
    expect(new Set(renewed).size).toBe(1);
    expect(renewed[0]).not.toBe(stale);
    expect(fake.calls('stable_token')).toBe(1);
    await expect(customText(renewed[0]!, account)).resolves.toEqual({ errcode: 0, errmsg: 'ok' });
    // Normal mode already answered a new token (WeChat had dropped the old one): no force spent,
    // nobody else's token on this appId invalidated.
    expect((await store().read(account.accountId))?.lastForcedAtMs).toBeUndefined();

    // Refused again (someone else forced): normal mode answers the token WeChat now holds valid.
    fake.invalidateTokens(account.receiveId);
    const again = await instance().refreshAfterInvalid(account, renewed[0]!);
    expect(again).not.toBe(renewed[0]);
    expect(fake.calls('stable_token')).toBe(2);
    await expect(customText(again, account)).resolves.toMatchObject({ errcode: 0 });

    // A caller still holding the first stale token gets the current one, without a call.
    await expect(instance().refreshAfterInvalid(account, stale)).resolves.toBe(again);
    expect(fake.calls('stable_token')).toBe(2);
  });

  it('a WeChat error fails the caller, releases the lease, and the next send retries', async () => {
    const account = officialAccount();
    fake.failNext('stable_token', -1);
    const error = await rejection(instance().get(account));
    expect(error).toBeInstanceOf(WechatApiError);
    expect(error).toMatchObject({ errcode: -1, call: 'stable_token' });
    expect((await store().read(account.accountId))?.leaseOwner).toBeUndefined();
    await expect(instance().get(account)).resolves.toEqual(expect.any(String));
    expect(fake.calls('stable_token')).toBe(2);
  });

  it('a hung token call times out as WechatNetworkError, the lease is released, and the next send retries', async () => {
    const account = officialAccount();
    fake.hangNext('stable_token');
    const started = Date.now();
    const error = await rejection(instance(300).get(account));
    expect(error).toBeInstanceOf(WechatNetworkError);
    expect(error.message).toBe(`stable_token: no answer within 300 ms (POST ${fake.url}/cgi-bin/stable_token)`);
    expect(Date.now() - started).toBeLessThan(LEASE_MS);
    expect((await store().read(account.accountId))?.leaseOwner).toBeUndefined();
    await expect(instance(300).get(account)).resolves.toEqual(expect.any(String));
  });

  it('a missing app secret fails before any call, naming the account and the field', async () => {
    const { appSecret: _secret, ...account } = officialAccount();
    const error = await rejection(instance().get(account));
    expect(error.message).toBe(`WeChat account "${account.accountId}": appSecret is not configured; it is needed for access tokens`);
    expect(fake.calls('stable_token')).toBe(0);
  });
});

describe('WechatHttpApi against the fake', () => {
  it('stable_token: normal mode answers the current token, force_refresh a new one; WeChat errors carry no secret', async () => {
    const account = officialAccount();
    const api = httpApi();
    const first = await api.fetchToken(account, { forceRefresh: false });
    expect(first).toEqual({ accessToken: expect.any(String), expiresInSeconds: expect.any(Number) });
    expect(first.expiresInSeconds).toBeGreaterThan(7190);
    await expect(api.fetchToken(account, { forceRefresh: false })).resolves.toMatchObject({ accessToken: first.accessToken });
    const forced = await api.fetchToken(account, { forceRefresh: true });
    expect(forced.accessToken).not.toBe(first.accessToken);
    const quota = await rejection(api.fetchToken(account, { forceRefresh: true }));
    expect(quota).toMatchObject({ name: 'WechatApiError', errcode: 45011, call: 'stable_token' });

    const wrong = await rejection(api.fetchToken({ ...account, appSecret: 'wrong-secret-value' }, { forceRefresh: false }));
    expect(wrong).toMatchObject({ errcode: 40125 });
    expect(wrong.message).not.toContain('wrong-secret-value');
  });

  it('a reset connection is a WechatNetworkError whose message has no query string', async () => {
    const account = wecomApp();
    fake.resetNext('gettoken');
    const error = await rejection(httpApi().fetchToken(account, { forceRefresh: false }));
    expect(error).toBeInstanceOf(WechatNetworkError);
    expect(error.message).toMatch(new RegExp(`^gettoken: request failed: \\S+ \\(GET ${fake.url}/cgi-bin/gettoken\\)$`));
    expect(error.message).not.toContain(account.appSecret!);
    expect(error.message).not.toContain('corpsecret');

    const oa = officialAccount();
    const token = await instance().get(oa);
    fake.resetNext('custom/send');
    const sendError = await rejection(httpApi().call(oa, 'custom/send', token, { touser: 'o1', msgtype: 'text', text: { content: 'x' } }));
    expect(sendError).toBeInstanceOf(WechatNetworkError);
    expect(sendError.message).not.toContain(token);
  });

  it('a hung send times out; a non-2xx answer and a non-JSON body are WechatNetworkErrors', async () => {
    const account = officialAccount();
    const token = await instance().get(account);
    fake.hangNext('custom/send');
    const hung = await rejection(httpApi(200).call(account, 'custom/send', token, { touser: 'o1', msgtype: 'text', text: { content: 'x' } }));
    expect(hung).toBeInstanceOf(WechatNetworkError);
    expect(hung.message).toBe(`custom/send: no answer within 200 ms (POST ${fake.url}/cgi-bin/message/custom/send)`);

    // An unknown path: the fake answers 404.
    const misconfigured = new WechatHttpApi({ wechatApiBase: `${fake.url}/nowhere`, wecomApiBase: fake.url });
    const notFound = await rejection(misconfigured.call(account, 'custom/send', token, { touser: 'o1' }));
    expect(notFound).toBeInstanceOf(WechatNetworkError);
    expect(notFound.message).toBe(`custom/send: HTTP 404 (POST ${fake.url}/nowhere/cgi-bin/message/custom/send)`);
    expect(notFound.message).not.toContain(token);

    const server: Server = createServer((_req, res) => res.end('<html>busy</html>'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const html = new WechatHttpApi({ wechatApiBase: base, wecomApiBase: base });
      const error = await rejection(html.fetchToken(account, { forceRefresh: false }));
      expect(error).toBeInstanceOf(WechatNetworkError);
      expect(error.message).toBe(`stable_token: the answer is not JSON (HTTP 200, POST ${base}/cgi-bin/stable_token)`);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('template and subscribe messages answer with their msgid; WeChat errors come back as replies, not throws', async () => {
    const account = officialAccount();
    const token = await instance().get(account);
    const api = httpApi();
    await expect(api.call(account, 'template/send', token, { touser: 'o1', template_id: 'tpl1', data: {} })).resolves.toMatchObject({ errcode: 0, msgid: expect.any(Number) });
    await expect(api.call(account, 'subscribe/send', token, { touser: 'o1', template_id: 'tpl1', data: {} })).resolves.toMatchObject({ errcode: 0, msgid: expect.any(Number) });
    const refused = await api.call(account, 'custom/send', token, { touser: 'o1', msgtype: 'nonsense' });
    expect(refused).toMatchObject({ errcode: 40008, errmsg: expect.stringContaining('invalid message type') });
    fake.failNext('custom/send', 45015);
    await expect(api.call(account, 'custom/send', token, { touser: 'o1', msgtype: 'text', text: { content: 'x' } })).resolves.toMatchObject({ errcode: 45015 });
    expect(fake.sent.map((m) => m.endpoint)).toEqual(['template/send', 'subscribe/send']);
  });

  it('a call for the other kind of account is refused before anything is sent', async () => {
    const oa = officialAccount();
    const corp = wecomApp();
    await expect(httpApi().call(oa, 'wecom/message/send', 'x', {})).rejects.toThrow('wecom/message/send is not a call for an official account');
    await expect(httpApi().call(corp, 'custom/send', 'x', {})).rejects.toThrow('custom/send is not a call for a WeCom account');
    expect(fake.calls('wecom/message/send') + fake.calls('custom/send')).toBe(0);
  });

  it('login: a mini-program code gives the identity only; a used code is 40163; an OAuth code too', async () => {
    const account = officialAccount();
    const api = httpApi();
    const code = fake.issueLoginCode(account.receiveId, { openId: 'o-mini-1', unionId: 'u-1' }, 'miniprogram');
    // Exactly the identity: no session_key.
    await expect(api.exchangeCode(account, 'miniprogram', code)).resolves.toStrictEqual({ openId: 'o-mini-1', unionId: 'u-1' });
    const used = await rejection(api.exchangeCode(account, 'miniprogram', code));
    expect(used).toBeInstanceOf(WechatApiError);
    expect(used).toMatchObject({ errcode: 40163, call: 'jscode2session' });
    expect(used.message).not.toContain(code);
    expect(used.message).not.toContain(account.appSecret!);

    const oauth = fake.issueLoginCode(account.receiveId, { openId: 'o-web-1' }, 'oauth');
    // No access_token, refresh_token or unionid when WeChat gave none.
    await expect(api.exchangeCode(account, 'oauth', oauth)).resolves.toStrictEqual({ openId: 'o-web-1' });
    await expect(api.exchangeCode(account, 'oauth', 'made-up-code')).rejects.toMatchObject({ errcode: 40029, call: 'oauth2/access_token' });
    await expect(api.exchangeCode(wecomApp(), 'oauth', oauth)).rejects.toThrow('WeChat login is for official accounts and mini-programs');
  });
});
