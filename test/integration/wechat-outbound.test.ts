/**
 * WeChat outbound and login on the real local runtime against the fake WeChat API server
 * (local/fake-wechat-api.ts), as agents, backends and apps use them: an agent's reply reaches
 * custom/send with a valid token, the retry table's rows happen for real (40001, 45015, -1, a
 * lost answer), 20 replies on a cold cache fetch one token, a template with one clientMsgId is
 * sent once, WeCom application messages, and a mini-program user signs in and connects.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeWechatApi, type FakeWechatApi } from '../../local/fake-wechat-api';
import { adminRequest } from '../support/admin-client';
import { startTestGateway, type TestGateway } from '../support/test-gateway';
import { TestClient, type Frame } from '../support/ws-test-client';

const OA = 'wxoutdemo0000001';
const COLD = 'wxcoldcache00001';
const CORP = 'wwoutcorp';
const AGENT_ID = 1000002;

const accountsFile = join(mkdtempSync(join(tmpdir(), 'wxgate-outbound-')), 'accounts.json');
writeFileSync(
  accountsFile,
  JSON.stringify({
    [OA]: { kind: 'oa', token: 'outtoken', appSecret: 'oa-secret' },
    [COLD]: { kind: 'oa', token: 'coldtoken', appSecret: 'cold-secret' },
    [CORP]: { kind: 'wecom', token: 'corptoken', encodingAESKey: 'jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C', appSecret: 'corp-secret', agentId: AGENT_ID },
  }),
);

let fake: FakeWechatApi;
let tg: TestGateway;
let url: string;
let agent: TestClient;
let colleague: TestClient;

beforeAll(async () => {
  fake = await startFakeWechatApi();
  fake.addOfficialAccount(OA, 'oa-secret');
  fake.addOfficialAccount(COLD, 'cold-secret');
  fake.addWecomApp(CORP, 'corp-secret', AGENT_ID);
  fake.addWecomUser(CORP, 'zhangsan');
  // The users who wrote to the accounts (WeChat allows customer-service replies for 48 hours); oSilent never did.
  for (const openId of ['oUser1', 'oUser2', 'oWarm', 'oAfterInvalid', 'oBusy']) fake.userMessaged(OA, openId);
  for (let i = 0; i < 20; i++) fake.userMessaged(COLD, `oCold${i}`);
  tg = await startTestGateway({
    queueVisibilityTimeoutSeconds: 2,
    pollWaitMs: 50,
    handlerEnv: { WXGATE_WECHAT_ACCOUNTS: accountsFile, WXGATE_WECHAT_API_BASE: fake.url, WXGATE_WECOM_API_BASE: fake.url },
  });
  url = tg.gateway.httpUrl;
  for (const account of [OA, COLD]) await adminRequest(url, 'PUT', `/v1/groups/wechat:${account}/members`, { add: ['agent-1', 'agent-2'] });
  agent = await TestClient.as(tg.gateway.wsUrl, 'agent-1', 'console');
  colleague = await TestClient.as(tg.gateway.wsUrl, 'agent-2', 'console');
}, 60_000);

afterAll(async () => {
  agent?.socket.terminate();
  colleague?.socket.terminate();
  await tg?.stop();
  await fake?.close();
});

const sentTo = (openId: string) => fake.sent.filter((m) => m.body.touser === openId);

async function reply(client: TestClient, openId: string, body: unknown, account = OA): Promise<{ ack: Frame; status: Promise<Frame> }> {
  const ack = await client.request({ action: 'send', to: { wechat: { accountId: account, openId } }, body });
  expect(ack).toMatchObject({ type: 'ack' });
  return { ack, status: client.waitFor((f) => f.type === 'status' && f.msgId === ack.msgId, 20_000, `status of ${ack.msgId}`) };
}

async function outboundState(messageId: string, account = OA) {
  return (await adminRequest(url, 'GET', `/v1/wechat/${account}/messages/${messageId}`)).body;
}

describe("an agent's reply", () => {
  it('is acked, reaches custom/send once with a token WeChat accepts, and the agent gets status sent', async () => {
    const { ack, status } = await reply(agent, 'oUser1', { text: 'hello back' });
    expect(await status).toEqual({ type: 'status', msgId: ack.msgId, state: 'sent' });
    expect(sentTo('oUser1')).toEqual([expect.objectContaining({ endpoint: 'custom/send', appIdOrCorpId: OA, body: { touser: 'oUser1', msgtype: 'text', text: { content: 'hello back' } } })]);
    expect(await outboundState(ack.msgId as string)).toMatchObject({ messageId: ack.msgId, state: 'sent', attempts: 1, kind: 'service' });
    // Every agent of the account sees the reply, and the account inbox keeps the conversation.
    const seen = await colleague.waitFor((f) => f.type === 'message' && f.msgId === ack.msgId);
    expect(seen).toMatchObject({ from: 'agent-1', to: { wechat: { accountId: OA, openId: 'oUser1' } }, body: { text: 'hello back' } });
    expect((await tg.inboxRows(`wechat:${OA}`)).map((r) => JSON.parse(r.frame).msgId)).toContain(ack.msgId);
  });

  it('from a user who is not an agent of the account is forbidden, and nothing is sent', async () => {
    const outsider = await TestClient.as(tg.gateway.wsUrl, 'not-an-agent', 'd1');
    const answer = await outsider.request({ action: 'send', to: { wechat: { accountId: OA, openId: 'oUser2' } }, body: { text: 'hi' } });
    expect(answer).toMatchObject({ type: 'error', code: 'forbidden' });
    outsider.socket.terminate();
    await tg.gateway.drainQueues();
    expect(sentTo('oUser2')).toEqual([]);
  });

  it('with a body WeChat cannot take is bad_request', async () => {
    const answer = await agent.request({ action: 'send', to: { wechat: { accountId: OA, openId: 'oUser2' } }, body: { text: '' } });
    expect(answer).toMatchObject({ type: 'error', code: 'bad_request' });
    const fields = await agent.request({ action: 'send', to: { wechat: { accountId: OA, openId: 'oUser2' } }, body: [1, 2] });
    expect(fields).toMatchObject({ type: 'error', code: 'bad_request' });
  });
});

describe('retries by error code, for real', () => {
  it('40001 (token replaced elsewhere): one refresh, one retry, sent once', async () => {
    await reply(agent, 'oWarm', { text: 'warm the cache' }).then((r) => r.status);
    fake.invalidateTokens(OA);
    const issued = fake.tokensIssued(OA);
    const callsBefore = fake.calls('custom/send');
    const { ack, status } = await reply(agent, 'oAfterInvalid', { text: 'after 40001' });
    expect(await status).toMatchObject({ state: 'sent' });
    expect(fake.calls('custom/send') - callsBefore).toBe(2);
    expect(fake.tokensIssued(OA) - issued).toBe(1);
    expect(sentTo('oAfterInvalid')).toHaveLength(1);
    expect(await outboundState(ack.msgId as string)).toMatchObject({ state: 'sent', attempts: 1 });
  });

  it('45015 (reply window closed: the user never wrote) comes back to the agent as a failed status naming the code; nothing is retried', async () => {
    const callsBefore = fake.calls('custom/send');
    const { ack, status } = await reply(agent, 'oSilent', { text: 'are you there?' });
    const frame = await status;
    expect(frame).toMatchObject({ type: 'status', msgId: ack.msgId, state: 'failed', errcode: 45015 });
    expect(frame.message).toMatch(/45015/);
    await tg.gateway.drainQueues();
    expect(fake.calls('custom/send') - callsBefore).toBe(1);
    expect(sentTo('oSilent')).toEqual([]);
    expect(await outboundState(ack.msgId as string)).toMatchObject({ state: 'failed', errcode: 45015, attempts: 1 });
  });

  it('-1 (system busy) is retried through the queue after a backoff, then sent', async () => {
    fake.failNext('custom/send', -1);
    const { ack, status } = await reply(agent, 'oBusy', { text: 'busy?' });
    expect(await status).toMatchObject({ state: 'sent' });
    const state = await outboundState(ack.msgId as string);
    expect(state).toMatchObject({ state: 'sent', attempts: 2 });
    expect(state.sentAt - state.createdAt).toBeGreaterThanOrEqual(1000); // the backoff's lower bound
    expect(sentTo('oBusy')).toHaveLength(1);
  }, 30_000);

  it('20 replies at once on a cold cache fetch the token exactly once', async () => {
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => reply(agent, `oCold${i}`, { text: `cold ${i}` }, COLD)));
    const statuses = await Promise.all(replies.map((r) => r.status));
    expect(statuses.every((s) => s.state === 'sent')).toBe(true);
    expect(fake.tokensIssued(COLD)).toBe(1);
    expect(fake.calls('stable_token')).toBeGreaterThanOrEqual(1);
    expect(fake.sent.filter((m) => m.appIdOrCorpId === COLD)).toHaveLength(20);
  }, 60_000);
});

describe('the admin API', () => {
  it('sends a template message once per clientMsgId, even when WeChat took it but its answer was lost', async () => {
    const request = { openId: 'oTemplate', msgtype: 'template', template: { template_id: 'TPL1', data: { first: { value: 'hi' } } }, clientMsgId: 'order-42' };
    // WeChat performs the first call at once and answers after the adapter's timeout: a lost answer, then a retry.
    fake.delayNext('template/send', 7000);
    const first = await adminRequest(url, 'POST', `/v1/wechat/${OA}/messages`, request);
    expect(first).toMatchObject({ status: 202, body: { messageId: expect.any(String), state: 'queued' } });
    const again = await adminRequest(url, 'POST', `/v1/wechat/${OA}/messages`, request);
    expect(again.body.messageId).toBe(first.body.messageId);
    const deadline = Date.now() + 40_000;
    let state = await outboundState(first.body.messageId);
    while (state.state !== 'sent' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      state = await outboundState(first.body.messageId);
    }
    expect(state).toMatchObject({ state: 'sent', attempts: 2, clientMsgId: 'order-42' });
    expect(fake.calls('template/send')).toBeGreaterThanOrEqual(2);
    expect(sentTo('oTemplate')).toEqual([expect.objectContaining({ endpoint: 'template/send', body: expect.objectContaining({ template_id: 'TPL1', client_msg_id: 'order-42' }) })]);
  }, 60_000);

  it('sends a WeCom application message with the agent id', async () => {
    const answer = await adminRequest(url, 'POST', `/v1/wechat/${CORP}/messages`, { openId: 'zhangsan', msgtype: 'text', text: { content: 'from the backend' } });
    expect(answer.status).toBe(202);
    await tg.gateway.drainQueues();
    const deadline = Date.now() + 10_000;
    while (sentTo('zhangsan').length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(sentTo('zhangsan')).toEqual([
      expect.objectContaining({ endpoint: 'wecom/message/send', appIdOrCorpId: CORP, body: { touser: 'zhangsan', msgtype: 'text', agentid: AGENT_ID, text: { content: 'from the backend' } } }),
    ]);
  });

  it.each([
    ['an unknown account', `/v1/wechat/wxnotconfigured/messages`, { openId: 'o', msgtype: 'text', text: { content: 'x' } }, 404],
    ['no openId', `/v1/wechat/${OA}/messages`, { msgtype: 'text', text: { content: 'x' } }, 400],
    ['a template without template_id', `/v1/wechat/${OA}/messages`, { openId: 'o', msgtype: 'template', template: { data: {} } }, 400],
    ['a template to a WeCom account', `/v1/wechat/${CORP}/messages`, { openId: 'o', msgtype: 'template', template: { template_id: 't', data: {} } }, 400],
    ['touser in the fields', `/v1/wechat/${OA}/messages`, { openId: 'o', msgtype: 'text', text: { content: 'x' }, touser: 'other' }, 400],
  ])('refuses %s with a clear error', async (_name, path, body, status) => {
    const answer = await adminRequest(url, 'POST', path, body);
    expect(answer.status).toBe(status);
    expect(answer.body.error.message).toEqual(expect.any(String));
  });

  it('GET of an unknown message is 404', async () => {
    expect((await adminRequest(url, 'GET', `/v1/wechat/${OA}/messages/01JD0000000000000000000000`)).status).toBe(404);
  });
});

describe('WeChat login', () => {
  const login = (body: unknown) =>
    fetch(`${url}/v1/login/wechat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(async (r) => ({
      status: r.status,
      body: (await r.json()) as any,
    }));

  it('a mini-program user with a good code gets a token that connects a WebSocket; the session key never leaves the server', async () => {
    const code = fake.issueLoginCode(OA, { openId: 'oMini1' }, 'miniprogram');
    const answer = await login({ accountId: OA, code, kind: 'miniprogram' });
    expect(answer).toMatchObject({ status: 200, body: { token: expect.any(String), expiresAt: expect.any(Number), userId: `wxo:${OA}:oMini1` } });
    expect(JSON.stringify(answer.body)).not.toMatch(/session_key|sessionKey/);
    const client = await TestClient.connect(tg.gateway.wsUrl, answer.body.token);
    expect(await client.request({ action: 'ping' })).toMatchObject({ type: 'pong' });
    client.socket.terminate();
  });

  it('a unionId makes the user id, and an OAuth code works too', async () => {
    const code = fake.issueLoginCode(OA, { openId: 'oWeb1', unionId: 'uPerson1' }, 'oauth');
    expect(await login({ accountId: OA, code, kind: 'oauth' })).toMatchObject({ status: 200, body: { userId: 'wxu:uPerson1' } });
  });

  it('a used code and an unknown code are 401 with WeChat’s error code', async () => {
    const code = fake.issueLoginCode(OA, { openId: 'oMini2' }, 'miniprogram');
    expect((await login({ accountId: OA, code, kind: 'miniprogram' })).status).toBe(200);
    const used = await login({ accountId: OA, code, kind: 'miniprogram' });
    expect(used).toMatchObject({ status: 401, body: { error: { code: 'unauthorized', message: expect.stringContaining('40163') } } });
    const unknown = await login({ accountId: OA, code: 'no-such-code', kind: 'miniprogram' });
    expect(unknown).toMatchObject({ status: 401, body: { error: { message: expect.stringContaining('40029') } } });
  });

  it('bad requests are 400 and an unknown account 404', async () => {
    expect((await login({ accountId: OA, kind: 'miniprogram' })).status).toBe(400);
    expect((await login({ accountId: OA, code: 'x', kind: 'qr' })).status).toBe(400);
    expect((await login({ accountId: 'wxnotconfigured', code: 'x', kind: 'miniprogram' })).status).toBe(404);
  });
});
