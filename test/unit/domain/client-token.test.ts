import { SignJWT } from 'jose';
import { DEFAULT_DEVICE_ID, TokenRejectedError, issueClientToken, verifyClientToken, type TokenRejection } from '../../../lambdas/domain/client-token';

const SECRET = 'a-test-secret-of-at-least-32-characters!';
const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const key = (secret: string = SECRET) => new TextEncoder().encode(secret);
const b64url = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');

async function rejection(token: string, secret: string = SECRET, nowMs: number = NOW): Promise<TokenRejection> {
  try {
    await verifyClientToken(token, secret, nowMs);
  } catch (err) {
    expect(err).toBeInstanceOf(TokenRejectedError);
    return (err as TokenRejectedError).reason;
  }
  throw new Error('token was accepted');
}

describe('client tokens', () => {
  it('round-trips user, device and expiry', async () => {
    const { token, expiresAt } = await issueClientToken({ userId: 'u1', deviceId: 'phone-1', ttlSeconds: 600 }, SECRET, NOW);
    expect(expiresAt).toBe(NOW / 1000 + 600);
    await expect(verifyClientToken(token, SECRET, NOW + 1000)).resolves.toEqual({ userId: 'u1', deviceId: 'phone-1', expiresAt });
  });

  it('defaults the device to "default" when the token has no did', async () => {
    const { token } = await issueClientToken({ userId: 'u1', ttlSeconds: 600 }, SECRET, NOW);
    expect(DEFAULT_DEVICE_ID).toBe('default');
    expect((await verifyClientToken(token, SECRET, NOW)).deviceId).toBe('default');
  });

  it('rejects an expired token with reason "expired"', async () => {
    const { token } = await issueClientToken({ userId: 'u1', ttlSeconds: 60 }, SECRET, NOW);
    await expect(verifyClientToken(token, SECRET, NOW + 59_000)).resolves.toMatchObject({ userId: 'u1' });
    expect(await rejection(token, SECRET, NOW + 61_000)).toBe('expired');
  });

  it('rejects a token signed with another secret with reason "bad_signature"', async () => {
    const { token } = await issueClientToken({ userId: 'u1', ttlSeconds: 60 }, 'another-secret-also-32-characters-long', NOW);
    expect(await rejection(token)).toBe('bad_signature');
  });

  it.each([['garbage'], ['a.b.c'], [''], ['x.y'], ['a.b.c.d.e']])('rejects %p as malformed (401 at the upgrade)', async (token) => {
    expect(await rejection(token)).toBe('malformed');
  });

  const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const claims = () => ({ sub: 'u1', exp: NOW / 1000 + 60 });
  it.each([
    ['alg none, unsigned', () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`],
    ['HS512 with the right secret', () => new SignJWT(claims()).setProtectedHeader({ alg: 'HS512' }).sign(key())],
    ['HS384 with the right secret', () => new SignJWT(claims()).setProtectedHeader({ alg: 'HS384' }).sign(key())],
    ['an RS256 header with a junk signature', () => `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64(claims())}.c2lnbmF0dXJl`],
  ])('rejects a well-formed token with another algorithm (%s) as bad_algorithm (403)', async (_name, make) => {
    expect(await rejection(await make())).toBe('bad_algorithm');
  });

  it('rejects a sub in the WeChat users’ namespace (wechat:…) so no client can pose as one', async () => {
    const { token } = await issueClientToken({ userId: 'wechat:wx1:oVIP', ttlSeconds: 60 }, SECRET, NOW);
    expect(await rejection(token)).toBe('bad_claims');
  });

  it('rejects a token without sub with reason "bad_claims"', async () => {
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(NOW / 1000 + 60).sign(key());
    expect(await rejection(token)).toBe('bad_claims');
  });

  it('rejects a token without exp with reason "bad_claims"', async () => {
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('u1').sign(key());
    expect(await rejection(token)).toBe('bad_claims');
  });

  it.each([['u 1'], ['u/1'], ['x'.repeat(129)]])('rejects sub %p (outside the id charset or too long) with reason "bad_claims"', async (sub) => {
    const { token } = await issueClientToken({ userId: sub, ttlSeconds: 60 }, SECRET, NOW);
    expect(await rejection(token)).toBe('bad_claims');
  });

  it('rejects a did outside the id charset with reason "bad_claims"', async () => {
    const { token } = await issueClientToken({ userId: 'u1', deviceId: 'my phone', ttlSeconds: 60 }, SECRET, NOW);
    expect(await rejection(token)).toBe('bad_claims');
  });

  it('refuses alg "none"', async () => {
    const token = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: 'u1', exp: NOW / 1000 + 60 })}.`;
    await expect(verifyClientToken(token, SECRET, NOW)).rejects.toBeInstanceOf(TokenRejectedError);
  });

  it('refuses HS512 even with the right secret', async () => {
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS512' }).setSubject('u1').setExpirationTime(NOW / 1000 + 60).sign(key());
    await expect(verifyClientToken(token, SECRET, NOW)).rejects.toBeInstanceOf(TokenRejectedError);
  });
});
