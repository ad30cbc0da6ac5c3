import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { verifyAdminRequest, type NonceStore } from '../../../lambdas/domain/admin-auth';
import { stringToSign } from '../../../lambdas/domain/admin-signing';
import { signRequest } from '../../../cli/sign-request';

/**
 * signRequest against the contract's worked example and vectors computed independently with
 * openssl (printf '%s\n…' | openssl dgst -sha256 -hmac SECRET), not with this code.
 */
const GOLDEN = { secret: 'golden-secret-0123456789', timestamp: 1712345678, nonce: 'nonce_0123456789-ABC' };
const UNICODE_BODY = '{"to":{"users":["alice"]},"body":{"text":"héllo 🌍 世界"}}';

describe('signRequest', () => {
  it('reproduces the worked example of the contract', () => {
    const headers = signRequest({
      keyId: 'local',
      secret: 'local-dev-admin-secret',
      method: 'POST',
      url: '/v1/push?a=1',
      body: '{"x":1}',
      timestamp: 1700000000,
      nonce: 'abcdefabcdefabcdef',
    });
    expect(headers).toEqual({
      'X-Wxgate-Key': 'local',
      'X-Wxgate-Timestamp': '1700000000',
      'X-Wxgate-Nonce': 'abcdefabcdefabcdef',
      'X-Wxgate-Signature': '1e2aa7eb08398746ca98f8e214f900ed96791c5271134d035a58141387e2d05b',
    });
  });

  it('signs the same with an absolute URL, path + query, lower-case method and body bytes', () => {
    const base = { keyId: 'local', secret: 'local-dev-admin-secret', timestamp: 1700000000, nonce: 'abcdefabcdefabcdef' };
    const expected = '1e2aa7eb08398746ca98f8e214f900ed96791c5271134d035a58141387e2d05b';
    expect(signRequest({ ...base, method: 'POST', url: 'http://127.0.0.1:3000/v1/push?a=1', body: '{"x":1}' })['X-Wxgate-Signature']).toBe(expected);
    expect(signRequest({ ...base, method: 'POST', url: new URL('https://api.example.com/v1/push?a=1'), body: '{"x":1}' })['X-Wxgate-Signature']).toBe(expected);
    expect(signRequest({ ...base, method: 'post', path: '/v1/push', query: 'a=1', body: '{"x":1}' })['X-Wxgate-Signature']).toBe(expected);
    expect(signRequest({ ...base, method: 'POST', url: '/v1/push?a=1', body: new TextEncoder().encode('{"x":1}') })['X-Wxgate-Signature']).toBe(expected);
  });

  it('GET with a query string and no body (golden vector)', () => {
    const headers = signRequest({ keyId: 'k1', ...GOLDEN, method: 'GET', url: 'http://127.0.0.1:3000/v1/groups/g1/members?limit=2&after=alice' });
    expect(headers['X-Wxgate-Signature']).toBe('0bab23fa99b517a913a7d8c29cde7f703ee44623f2dd9b1c11595b261ae4da5a');
    // No body and an empty body are the same bytes.
    expect(signRequest({ keyId: 'k1', ...GOLDEN, method: 'GET', path: '/v1/groups/g1/members', query: 'limit=2&after=alice', body: '' })['X-Wxgate-Signature']).toBe(
      '0bab23fa99b517a913a7d8c29cde7f703ee44623f2dd9b1c11595b261ae4da5a',
    );
  });

  it('empty query and empty body (golden vector)', () => {
    const headers = signRequest({ keyId: 'k1', ...GOLDEN, method: 'DELETE', url: '/v1/users/u:1/connections' });
    expect(headers['X-Wxgate-Signature']).toBe('5c62eea703fad2e7ba6a5827f9693acf252b5eb615be5944086447d348ebee06');
    // A bare `?` is an empty query too, as fetch sends it.
    expect(signRequest({ keyId: 'k1', ...GOLDEN, method: 'DELETE', url: '/v1/users/u:1/connections?' })['X-Wxgate-Signature']).toBe(headers['X-Wxgate-Signature']);
  });

  it('a Unicode body is hashed as its UTF-8 bytes (golden vector)', () => {
    const expected = '089530ad71fdeba0f94d3af58ab671f33101b66024974c3987e47a57ec9d2db9';
    expect(signRequest({ keyId: 'k1', ...GOLDEN, method: 'POST', url: '/v1/push', body: UNICODE_BODY })['X-Wxgate-Signature']).toBe(expected);
    expect(signRequest({ keyId: 'k1', ...GOLDEN, method: 'POST', url: '/v1/push', body: Buffer.from(UNICODE_BODY, 'utf8') })['X-Wxgate-Signature']).toBe(expected);
  });

  it('signs the path as fetch sends it (percent-encoded), given a URL', () => {
    const viaUrl = signRequest({ keyId: 'k1', ...GOLDEN, method: 'GET', url: 'http://h/v1/users/a b/connections' });
    const viaPath = signRequest({ keyId: 'k1', ...GOLDEN, method: 'GET', path: '/v1/users/a%20b/connections' });
    expect(viaUrl['X-Wxgate-Signature']).toBe(viaPath['X-Wxgate-Signature']);
  });

  it('fills in a fresh nonce and the current time', () => {
    const before = Math.floor(Date.now() / 1000);
    const a = signRequest({ keyId: 'k1', secret: GOLDEN.secret, method: 'GET', url: '/v1/stats' });
    const b = signRequest({ keyId: 'k1', secret: GOLDEN.secret, method: 'GET', url: '/v1/stats' });
    expect(a['X-Wxgate-Nonce']).toMatch(/^[A-Za-z0-9_-]{16,64}$/);
    expect(a['X-Wxgate-Nonce']).not.toBe(b['X-Wxgate-Nonce']);
    expect(Number(a['X-Wxgate-Timestamp'])).toBeGreaterThanOrEqual(before);
    expect(Number(a['X-Wxgate-Timestamp'])).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
  });

  it('is accepted by the gateway verifier', async () => {
    const claimed = new Set<string>();
    const nonces: NonceStore = { claimNonce: async (keyId, nonce) => !claimed.has(`${keyId}/${nonce}`) && !!claimed.add(`${keyId}/${nonce}`) };
    const keys = new Map([['k1', GOLDEN.secret]]);
    const body = UNICODE_BODY;
    const headers = signRequest({ keyId: 'k1', secret: GOLDEN.secret, method: 'POST', url: 'http://127.0.0.1:3000/v1/push?dry=1', body });
    const lower = Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
    const request = { method: 'POST', path: '/v1/push', query: 'dry=1', headers: lower, body: Buffer.from(body) };
    await expect(verifyAdminRequest(request, keys, nonces, Date.now())).resolves.toEqual({ keyId: 'k1' });
    await expect(verifyAdminRequest(request, keys, nonces, Date.now())).rejects.toMatchObject({ check: 'replayed_nonce' });
    const tampered = { ...request, body: Buffer.from(body.replace('alice', 'bob')), headers: { ...lower, 'x-wxgate-nonce': 'another-nonce-0123456' } };
    await expect(verifyAdminRequest(tampered, keys, nonces, Date.now())).rejects.toMatchObject({ check: 'bad_signature' });
  });

  it('refuses what it cannot sign honestly', () => {
    const base = { keyId: 'k1', secret: GOLDEN.secret, method: 'POST' };
    expect(() => signRequest({ ...base })).toThrow(/url or path/);
    expect(() => signRequest({ ...base, url: '/v1/push', path: '/v1/push' })).toThrow(/either url or path/);
    expect(() => signRequest({ ...base, path: '/v1/push?a=1' })).toThrow(/no query/);
    expect(() => signRequest({ ...base, path: '/v1/push', query: '?a=1' })).toThrow(/without "\?"/);
    expect(() => signRequest({ ...base, url: '/v1/push', nonce: 'short' })).toThrow(/nonce/);
    expect(() => signRequest({ ...base, url: '/v1/push', timestamp: 1.5 })).toThrow(/timestamp/);
    expect(() => signRequest({ ...base, url: '/v1/push', body: { x: 1 } as unknown as string })).toThrow(/JSON.stringify/);
    expect(() => signRequest({ ...base, secret: '', url: '/v1/push' })).toThrow(/secret/);
  });

  it('the worked example in docs/protocol.md and docs/admin-api.md is what the gateway computes', () => {
    const worked = { method: 'POST', path: '/v1/push', query: 'a=1', timestamp: 1700000000, nonce: 'abcdefabcdefabcdef', body: '{"x":1}' };
    for (const doc of ['protocol.md', 'admin-api.md']) {
      const text = readFileSync(fileURLToPath(new URL(`../../../docs/${doc}`, import.meta.url)), 'utf8');
      const shown = /POST\n\s*\/v1\/push\n\s*a=1\n\s*1700000000\n\s*abcdefabcdefabcdef\n\s*([0-9a-f]{64})\n/.exec(text);
      expect({ doc, stringToSign: shown && shown[0].replace(/\n\s+/g, '\n').trimEnd() }).toEqual({ doc, stringToSign: stringToSign(worked) });
      expect(text).toContain('1e2aa7eb08398746ca98f8e214f900ed96791c5271134d035a58141387e2d05b');
    }
  });
});
