/**
 * WeChat callbacks on the real local runtime, posted as WeChat posts them (signed, encrypted)
 * and received as an agent would (a WebSocket in the group `wechat:{accountId}`): URL
 * verification, plaintext / compatible / safe mode, WeCom, retries at once, every kind of
 * hostile or broken callback (refused fast, nothing queued), and an agent who was offline.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { parseWechatAccounts, type WechatAccount } from '../../lambdas/domain/wechat-accounts';
import { encryptMessage, wechatSignature } from '../../lambdas/domain/wechat-crypto';
import { buildCallback, buildVerification, cdata, textMessageXml } from '../../scripts/wechat-callback-builder';
import { adminRequest } from '../support/admin-client';
import { startTestGateway, type TestGateway } from '../support/test-gateway';
import { TestClient, type Frame } from '../support/ws-test-client';

const accountsFile = join(mkdtempSync(join(tmpdir(), 'wxgate-wechat-')), 'accounts.json');
const example = JSON.parse(readFileSync('examples/wechat/accounts.json', 'utf8')) as Record<string, object>;
writeFileSync(accountsFile, JSON.stringify({ ...example, wxplaintextonly: { kind: 'oa', token: 'plaintoken' } }));
const accounts = parseWechatAccounts(readFileSync(accountsFile, 'utf8'), accountsFile);
const oa = accounts.get('wxlocaldemo0000001')!;
const wecom = accounts.get('wwlocalcorp')!;
const plainOnly = accounts.get('wxplaintextonly')!;

let tg: TestGateway;
let url: string;
const agents: Record<string, TestClient> = {};

beforeAll(async () => {
  tg = await startTestGateway({ queueVisibilityTimeoutSeconds: 2, pollWaitMs: 50, handlerEnv: { WXGATE_WECHAT_ACCOUNTS: accountsFile } });
  url = tg.gateway.httpUrl;
  for (const account of [oa, wecom, plainOnly]) {
    await adminRequest(url, 'PUT', `/v1/groups/wechat:${account.accountId}/members`, { add: [`agent-${account.accountId}`] });
    agents[account.accountId] = await TestClient.as(tg.gateway.wsUrl, `agent-${account.accountId}`, 'console');
  }
}, 60_000);

afterAll(async () => {
  for (const agent of Object.values(agents)) agent.socket.terminate();
  await tg?.stop();
});

async function post(request: { method: string; pathAndQuery: string; body?: string }) {
  const started = performance.now();
  const response = await fetch(url + request.pathAndQuery, { method: request.method, body: request.body, headers: request.body ? { 'content-type': 'text/xml' } : undefined });
  return { status: response.status, text: await response.text(), ms: performance.now() - started };
}

const framesOf = (agent: TestClient, pred: (f: Frame) => boolean) => agent.messages().filter(pred);
const wechatFields = (f: Frame) => (f.body as { wechat: Record<string, unknown> }).wechat;

async function inboundBacklog(): Promise<number> {
  const sqs = new SQSClient({ endpoint: tg.gateway.sqsEndpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  const attrs = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: tg.gateway.queueUrls.wechatInbound, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }))).Attributes;
  sqs.destroy();
  return Number(attrs?.ApproximateNumberOfMessages ?? 0) + Number(attrs?.ApproximateNumberOfMessagesNotVisible ?? 0);
}

describe('URL verification', () => {
  it.each([
    ['an official account echoes echostr', oa],
    ['a WeCom app answers the decrypted echostr', wecom],
  ])('%s', async (_name, account) => {
    const request = buildVerification(account as WechatAccount);
    const answer = await post(request);
    expect(answer).toMatchObject({ status: 200, text: request.expected });
  });

  it('refuses a wrong signature with 401', async () => {
    const request = buildVerification(oa);
    const answer = await post({ ...request, pathAndQuery: request.pathAndQuery.replace(/signature=[0-9a-f]+/, 'signature=' + '0'.repeat(40)) });
    expect(answer.status).toBe(401);
  });
});

describe('messages reach the agents', () => {
  it.each([
    ['safe mode', oa, 'safe'],
    ['compatible mode', oa, 'compat'],
    ['plaintext mode', plainOnly, 'plain'],
    ['WeCom', wecom, 'safe'],
  ] as const)('%s: answered success, and the agent in wechat:{accountId} gets the message frame', async (_name, account, mode) => {
    const text = `hi via ${mode} ${account.accountId} 😀`;
    const answer = await post(buildCallback(account, { mode, text, from: 'oUserA' }));
    expect(answer).toMatchObject({ status: 200, text: 'success' });
    const frame = await agents[account.accountId]!.waitFor((f) => f.type === 'message' && wechatFields(f)?.Content === text);
    expect(frame).toMatchObject({
      from: `wechat:${account.accountId}:oUserA`,
      to: { group: `wechat:${account.accountId}` },
      body: { wechat: { MsgType: 'text', Content: text, FromUserName: 'oUserA', MsgId: expect.any(String) } },
    });
  });

  it('the same callback posted 3 times at once is queued and delivered once', async () => {
    const request = buildCallback(oa, { text: 'retried thrice', msgId: '880000000001' });
    const answers = await Promise.all([post(request), post(request), post(request)]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    await tg.gateway.drainQueues();
    expect(framesOf(agents[oa.accountId]!, (f) => wechatFields(f)?.MsgId === '880000000001')).toHaveLength(1);
    const rows = (await tg.inboxRows(`agent-${oa.accountId}`)).filter((r) => JSON.parse(r.frame).body.wechat.MsgId === '880000000001');
    expect(rows).toHaveLength(1);
  });

  it('an event (no MsgId) is de-duplicated by FromUserName + CreateTime + Event', async () => {
    const xml = `<xml><ToUserName>${cdata(oa.receiveId)}</ToUserName><FromUserName>${cdata('oEventUser')}</FromUserName><CreateTime>1700000123</CreateTime><MsgType>${cdata('event')}</MsgType><Event>${cdata('subscribe')}</Event></xml>`;
    await Promise.all([post(buildCallback(oa, { xml })), post(buildCallback(oa, { xml }))]);
    await tg.gateway.drainQueues();
    expect(framesOf(agents[oa.accountId]!, (f) => wechatFields(f)?.FromUserName === 'oEventUser')).toHaveLength(1);
  });

  it('an agent who was offline during the callback finds it with sync', async () => {
    await adminRequest(url, 'PUT', `/v1/groups/wechat:${oa.accountId}/members`, { add: ['agent-late'] });
    const answer = await post(buildCallback(oa, { text: 'while you were away' }));
    expect(answer.status).toBe(200);
    await tg.gateway.drainQueues();
    const late = await TestClient.as(tg.gateway.wsUrl, 'agent-late', 'console');
    const page = await late.request({ action: 'sync' });
    expect(page.messages.map((m: Frame) => wechatFields(m).Content)).toContain('while you were away');
    late.socket.terminate();
  });

  it('a callback to an account with no agent yet is kept in the account inbox, which an agent who joins later reads', async () => {
    const lonely = accounts.get('wxplaintextonly')!;
    await adminRequest(url, 'PUT', `/v1/groups/wechat:${lonely.accountId}/members`, { remove: [`agent-${lonely.accountId}`] });
    const answer = await post(buildCallback(lonely, { mode: 'plain', text: 'nobody is listening' }));
    expect(answer).toMatchObject({ status: 200, text: 'success' });
    await tg.gateway.drainQueues();

    const outsider = await TestClient.as(tg.gateway.wsUrl, 'agent-newcomer', 'console');
    const refused = await outsider.request({ action: 'sync', inbox: `wechat:${lonely.accountId}` });
    expect(refused).toMatchObject({ type: 'error', code: 'forbidden' });
    await adminRequest(url, 'PUT', `/v1/groups/wechat:${lonely.accountId}/members`, { add: ['agent-newcomer'] });
    const page = await outsider.request({ action: 'sync', inbox: `wechat:${lonely.accountId}` });
    expect(page.messages.map((m: Frame) => wechatFields(m).Content)).toContain('nobody is listening');
    outsider.socket.terminate();
    await adminRequest(url, 'PUT', `/v1/groups/wechat:${lonely.accountId}/members`, { add: [`agent-${lonely.accountId}`] });
  });
});

describe('refused callbacks: clear status, fast, nothing queued', () => {
  const tamper = (request: { pathAndQuery: string; body?: string }, body: string) => ({ ...request, body, method: 'POST' });
  const encryptedBody = (encrypt: string) => `<xml><ToUserName>${cdata(oa.receiveId)}</ToUserName><Encrypt>${cdata(encrypt)}</Encrypt></xml>`;
  /** A safe-mode callback whose Encrypt is `encrypt`, correctly signed (so only the crypto can fail). */
  function signedWith(encrypt: string) {
    const timestamp = String(Math.floor(Date.now() / 1000));
    const nonce = '424242';
    const query = new URLSearchParams({ timestamp, nonce, encrypt_type: 'aes', signature: wechatSignature([oa.token, timestamp, nonce]), msg_signature: wechatSignature([oa.token, timestamp, nonce, encrypt]) });
    return { method: 'POST', pathAndQuery: `/wechat/${oa.accountId}?${query}`, body: encryptedBody(encrypt) };
  }
  const good = () => encryptMessage(oa.encodingAESKey!, textMessageXml(oa), oa.receiveId);
  const laughs =
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">' +
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><xml><Content>&lol3;</Content></xml>';
  const xxe = '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><FromUserName>&xxe;</FromUserName><MsgType>text</MsgType></xml>';

  const cases: Array<[string, () => { method: string; pathAndQuery: string; body?: string }, number]> = [
    ['a bad signature', () => ({ ...buildCallback(plainOnly, { mode: 'plain' }), pathAndQuery: buildCallback(plainOnly, { mode: 'plain' }).pathAndQuery.replace(/signature=[0-9a-f]+/, 'signature=' + 'a'.repeat(40)) }), 401],
    ['a bad msg_signature', () => ({ ...buildCallback(oa), pathAndQuery: buildCallback(oa).pathAndQuery.replace(/msg_signature=[0-9a-f]+/, 'msg_signature=' + 'b'.repeat(40)) }), 401],
    ['a plaintext body for an account with a key, under a valid query signature (forgery)', () => {
      const verification = new URLSearchParams(buildVerification(oa).pathAndQuery.split('?')[1]);
      verification.delete('echostr');
      return { method: 'POST', pathAndQuery: `/wechat/${oa.accountId}?${verification}`, body: textMessageXml(oa, { text: 'forged' }) };
    }, 401],
    ['a signed callback with a timestamp 10 minutes old', () => buildCallback(oa, { timestamp: String(Math.floor(Date.now() / 1000) - 600) }), 401],
    ['FromUserName that is not text', () => buildCallback(oa, { xml: `<xml><FromUserName><a>x</a></FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><MsgId>77</MsgId></xml>` }), 400],
    ['no signature at all', () => ({ method: 'POST', pathAndQuery: `/wechat/${oa.accountId}?timestamp=1&nonce=2`, body: textMessageXml(oa) }), 401],
    ['an unknown account', () => ({ ...buildCallback(oa), pathAndQuery: buildCallback(oa).pathAndQuery.replace(oa.accountId, 'wxnosuchaccount') }), 404],
    ['another account’s receive id', () => signedWith(encryptMessage(oa.encodingAESKey!, textMessageXml(oa), 'wxsomeoneelse')), 400],
    ['bad padding (a flipped last byte)', () => signedWith((() => { const b = Buffer.from(good(), 'base64'); b[b.length - 1]! ^= 0xff; return b.toString('base64'); })()), 400],
    ['truncated ciphertext', () => signedWith(Buffer.from(good(), 'base64').subarray(0, 40).toString('base64')), 400],
    ['Encrypt that is not base64 ciphertext', () => signedWith('not-base64-at-all!!'), 400],
    ['billion laughs (plaintext)', () => tamper(buildCallback(plainOnly, { mode: 'plain' }), laughs), 400],
    ['an external entity (XXE, plaintext)', () => tamper(buildCallback(plainOnly, { mode: 'plain' }), xxe), 400],
    ['a DTD inside the encrypted message', () => buildCallback(oa, { xml: '<!DOCTYPE xml><xml><MsgType>text</MsgType></xml>' }), 400],
    ['malformed XML', () => tamper(buildCallback(plainOnly, { mode: 'plain' }), '<xml><MsgType>text</xml'), 400],
    ['a 10 MB body', () => tamper(buildCallback(plainOnly, { mode: 'plain' }), '<xml>' + 'x'.repeat(10 * 1024 * 1024) + '</xml>'), 413],
  ];

  it.each(cases.map(([name, make, status]) => [`${name} → ${status}`, make, status] as const))('%s, nothing queued', async (_name, make, status) => {
    const before = framesOf(agents[oa.accountId]!, () => true).length + framesOf(agents[plainOnly.accountId]!, () => true).length;
    const answer = await post(make());
    expect(answer.status).toBe(status);
    expect(answer.text).not.toContain('success');
    expect(await inboundBacklog()).toBe(0);
    await tg.gateway.drainQueues();
    expect(framesOf(agents[oa.accountId]!, () => true).length + framesOf(agents[plainOnly.accountId]!, () => true).length).toBe(before);
  });
});
