import { AdminAuthError, verifyAdminRequest, type AdminRequest } from '../../../lambdas/domain/admin-auth';
import { AdminKeysError, parseAdminKeyJson, parseAdminKeyList } from '../../../lambdas/domain/admin-keys';
import { signature } from '../../../lambdas/domain/admin-signing';
import { FakeNonceStore } from '../../support/fakes';

const SECRET = 'local-dev-admin-secret';
const keys = parseAdminKeyList(`local:${SECRET},next:another-secret-for-rotation`);
const NOW_S = 1_700_000_000;

function signed(overrides: Partial<AdminRequest> & { timestamp?: number; nonce?: string; secret?: string; keyId?: string } = {}): AdminRequest {
  const { timestamp = NOW_S, nonce = 'abcdefabcdefabcdef', secret = SECRET, keyId = 'local' } = overrides;
  const base = { method: 'POST', path: '/v1/push', query: 'a=1', body: '{"x":1}', ...overrides };
  return {
    ...base,
    headers: {
      'x-wxgate-key': keyId,
      'x-wxgate-timestamp': String(timestamp),
      'x-wxgate-nonce': nonce,
      'x-wxgate-signature': signature(secret, { ...base, timestamp, nonce }),
      ...overrides.headers,
    },
  };
}

describe('admin request signing', () => {
  it('reproduces the contract’s worked example', () => {
    expect(signature(SECRET, { method: 'POST', path: '/v1/push', query: 'a=1', timestamp: 1700000000, nonce: 'abcdefabcdefabcdef', body: '{"x":1}' })).toBe(
      '1e2aa7eb08398746ca98f8e214f900ed96791c5271134d035a58141387e2d05b',
    );
  });

  it('hashes bytes and text alike, and the empty body as the empty string', () => {
    const base = { method: 'GET', path: '/v1/stats', query: '', timestamp: NOW_S, nonce: 'n'.repeat(16) };
    expect(signature(SECRET, { ...base, body: Buffer.from('{"é":1}') })).toBe(signature(SECRET, { ...base, body: '{"é":1}' }));
    expect(signature(SECRET, base)).toBe(signature(SECRET, { ...base, body: '' }));
  });
});

describe('verifyAdminRequest', () => {
  it('accepts a well-signed request with any active key (rotation)', async () => {
    await expect(verifyAdminRequest(signed(), keys, new FakeNonceStore(), NOW_S * 1000)).resolves.toEqual({ keyId: 'local' });
    await expect(verifyAdminRequest(signed({ keyId: 'next', secret: 'another-secret-for-rotation' }), keys, new FakeNonceStore(), NOW_S * 1000)).resolves.toEqual({ keyId: 'next' });
  });

  const refusals: Array<[string, () => AdminRequest, string]> = [
    ['no headers', () => ({ method: 'GET', path: '/v1/stats', query: '', body: '', headers: {} }), 'missing_header'],
    ['no signature', () => signed({ headers: { 'x-wxgate-signature': undefined } }), 'missing_header'],
    ['a timestamp that is not a number', () => signed({ headers: { 'x-wxgate-timestamp': '17e8' } }), 'malformed_header'],
    ['a short nonce', () => signed({ nonce: 'short' }), 'malformed_header'],
    ['a nonce with bad characters', () => signed({ nonce: 'abcdefabcdef/abcdef' }), 'malformed_header'],
    ['a signature that is not hex', () => signed({ headers: { 'x-wxgate-signature': 'z'.repeat(64) } }), 'malformed_header'],
    ['an unknown key', () => signed({ keyId: 'nobody' }), 'unknown_key'],
    ['a timestamp 301 s old', () => signed({ timestamp: NOW_S - 301 }), 'timestamp_skew'],
    ['a timestamp 301 s ahead', () => signed({ timestamp: NOW_S + 301 }), 'timestamp_skew'],
    ['the wrong secret', () => signed({ secret: 'not-the-secret-at-all' }), 'bad_signature'],
    ['a signature over another path', () => ({ ...signed(), path: '/v1/tokens' }), 'bad_signature'],
    ['a signature over another query', () => ({ ...signed(), query: 'a=2' }), 'bad_signature'],
    ['a signature over another body', () => ({ ...signed(), body: '{"x":2}' }), 'bad_signature'],
    ['a signature over another method', () => ({ ...signed(), method: 'PUT' }), 'bad_signature'],
  ];
  it.each(refusals)('refuses %s with 401 (%s) and records no nonce', async (_name, make, check) => {
    const nonces = new FakeNonceStore();
    const err = await verifyAdminRequest(make(), keys, nonces, NOW_S * 1000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdminAuthError);
    expect(err).toMatchObject({ code: 'unauthorized', check });
    expect(nonces.claims).toBe(0);
  });

  it('accepts the edges of the window (±300 s)', async () => {
    for (const t of [NOW_S - 300, NOW_S + 300]) await expect(verifyAdminRequest(signed({ timestamp: t, nonce: `edge-nonce-${t}` }), keys, new FakeNonceStore(), NOW_S * 1000)).resolves.toBeDefined();
  });

  it('refuses a replayed nonce, and of two replays at once exactly one passes', async () => {
    const nonces = new FakeNonceStore();
    await verifyAdminRequest(signed(), keys, nonces, NOW_S * 1000);
    await expect(verifyAdminRequest(signed(), keys, nonces, NOW_S * 1000 + 10_000)).rejects.toMatchObject({ check: 'replayed_nonce' });

    const fresh = new FakeNonceStore();
    const results = await Promise.allSettled([1, 2, 3].map(() => verifyAdminRequest(signed({ nonce: 'concurrent-nonce-1' }), keys, fresh, NOW_S * 1000)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });
});

describe('admin keys', () => {
  it('parses a list (secrets may contain ":") and JSON', () => {
    expect([...parseAdminKeyList('a:0123456789abcdef:x, b:fedcba9876543210')]).toEqual([
      ['a', '0123456789abcdef:x'],
      ['b', 'fedcba9876543210'],
    ]);
    expect([...parseAdminKeyJson('{"k1":"0123456789abcdef"}')]).toEqual([['k1', '0123456789abcdef']]);
  });

  it.each([
    ['', 'no admin key'],
    ['nocolon', 'keyId:secret'],
    ['a:short', 'at least 16'],
    ['bad id!:0123456789abcdef', 'key id'],
    ['a:0123456789abcdef,a:0123456789abcdef', 'twice'],
  ])('refuses %p naming the problem, never the secret', (value, problem) => {
    let err: Error | undefined;
    try {
      parseAdminKeyList(value);
    } catch (e) {
      err = e as Error;
    }
    expect(err).toBeInstanceOf(AdminKeysError);
    expect(err!.message).toContain(problem);
    expect(err!.message).not.toContain('0123456789abcdef');
  });

  it('refuses a secret that is not a JSON object', () => {
    expect(() => parseAdminKeyJson('[1]')).toThrow(AdminKeysError);
    expect(() => parseAdminKeyJson('nope')).toThrow(AdminKeysError);
  });
});
