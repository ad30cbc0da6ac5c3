import { parseWechatAccounts, WechatAccountsError, type WechatAccount } from '../../../lambdas/domain/wechat-accounts';
import { openCallback, verifyUrl } from '../../../lambdas/domain/wechat-callback';
import { wechatVectors, type WechatVector } from '../../support/wechat-vectors';

const vectors = wechatVectors;
const accountOf = (v: WechatVector, kind: 'oa' | 'wecom'): WechatAccount => ({ accountId: v.receiveId, kind, token: v.token, encodingAESKey: v.aesKey, receiveId: v.receiveId });

describe('openCallback on the published vectors', () => {
  it.each(vectors.filter((v) => v.plain.startsWith('<xml')).map((v) => [v.id, v] as const))('%s: signature checked, decrypted, parsed, with its retry key', (_id, v) => {
    const body = `<xml><ToUserName><![CDATA[${v.receiveId}]]></ToUserName><Encrypt><![CDATA[${v.encrypt}]]></Encrypt></xml>`;
    const query = { timestamp: v.timestamp, nonce: v.nonce, encrypt_type: 'aes', msg_signature: v.msgSignature };
    const at = Number(v.timestamp) * 1000;
    const opened = openCallback(accountOf(v, 'wecom'), query, body, at);
    expect(opened.fields.MsgType).toBe('text');
    expect(opened.fields.Content).toBe('hello');
    expect(opened.dedupKey).toContain(String(opened.fields.MsgId));
    expect(() => openCallback(accountOf(v, 'wecom'), { ...query, msg_signature: '0'.repeat(40) }, body, at)).toThrow(expect.objectContaining({ code: 'unauthorized' }));
    expect(() => openCallback({ ...accountOf(v, 'wecom'), receiveId: 'someone-else' }, query, body, at)).toThrow(expect.objectContaining({ code: 'bad_request' }));
    // The same signed query 301 s later, and a plaintext body for an account that has a key: refused.
    expect(() => openCallback(accountOf(v, 'wecom'), query, body, at + 301_000)).toThrow(expect.objectContaining({ code: 'unauthorized', message: expect.stringContaining('300 s') }));
    expect(() => openCallback(accountOf(v, 'oa'), { timestamp: v.timestamp, nonce: v.nonce, signature: '0'.repeat(40) }, v.plain, at)).toThrow(
      expect.objectContaining({ code: 'unauthorized', message: expect.stringContaining('encrypted callbacks only') }),
    );
  });
});

describe('verifyUrl', () => {
  it('answers a WeCom echostr decrypted (the published URL-verification sample)', () => {
    const v = vectors.find((x) => x.id === 'wecom-official-verify-url')!;
    // Over token, timestamp, nonce and the encrypted echostr, as for messages.
    const query = { timestamp: v.timestamp, nonce: v.nonce, echostr: v.encrypt, msg_signature: v.msgSignature };
    expect(verifyUrl(accountOf(v, 'wecom'), query)).toBe(v.plain);
  });

  it('needs every parameter', () => {
    const v = vectors[0]!;
    expect(() => verifyUrl(accountOf(v, 'oa'), { timestamp: '1', nonce: '2' })).toThrow(expect.objectContaining({ code: 'unauthorized', message: 'echostr is required' }));
  });
});

describe('parseWechatAccounts', () => {
  const KEY = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
  it('reads both kinds, with the receive id defaulting to the account id', () => {
    const accounts = parseWechatAccounts(JSON.stringify({ wx1: { kind: 'oa', token: 'tok123', encodingAESKey: KEY }, ww1: { kind: 'wecom', token: 'tok456', encodingAESKey: KEY, receiveId: 'corp1' } }), 'f');
    expect(accounts.get('wx1')).toEqual({ accountId: 'wx1', kind: 'oa', token: 'tok123', encodingAESKey: KEY, receiveId: 'wx1', appSecret: undefined });
    expect(accounts.get('ww1')?.receiveId).toBe('corp1');
  });

  it.each([
    ['not JSON', '{', 'is not JSON'],
    ['an array', '[]', 'JSON object'],
    ['a bad kind', JSON.stringify({ wx1: { kind: 'mp', token: 'tok123' } }), 'account "wx1": kind'],
    ['a bad token', JSON.stringify({ wx1: { token: 'secret value!' } }), 'account "wx1": token'],
    ['a short EncodingAESKey', JSON.stringify({ wx1: { token: 'tok123', encodingAESKey: 'tooShortSecret' } }), 'account "wx1": encodingAESKey'],
    ['WeCom without a key', JSON.stringify({ ww1: { kind: 'wecom', token: 'tok123' } }), 'account "ww1": a WeCom account needs an encodingAESKey'],
    ['a bad account id', JSON.stringify({ 'w x': { token: 'tok123' } }), 'account id'],
  ])('refuses %s, naming the account and field but no value', (_name, text, problem) => {
    let err: Error | undefined;
    try {
      parseWechatAccounts(text, 'accounts.json');
    } catch (e) {
      err = e as Error;
    }
    expect(err).toBeInstanceOf(WechatAccountsError);
    expect(err!.message).toContain(problem);
    expect(err!.message).not.toMatch(/secret value|tooShortSecret/);
  });
});
