import { SignJWT, decodeProtectedHeader, jwtVerify, errors as joseErrors } from 'jose';

/**
 * Client tokens (docs/protocol.md): HS256 JWTs with `sub` (user id, required), `did` (device
 * id, optional, default `default`) and `exp` (required).
 */
export interface ClientIdentity {
  userId: string;
  deviceId: string;
  expiresAt: number;
}

export const DEFAULT_DEVICE_ID = 'default';

/** Ids end up in DynamoDB keys, group names and log lines: keep them boring. */
const ID_PATTERN = /^[A-Za-z0-9_.:@-]{1,128}$/;
export const isValidId = (value: unknown): value is string => typeof value === 'string' && ID_PATTERN.test(value);

/**
 * `malformed`: not a JWT at all (401 at the upgrade). The others are well-formed JWTs that this
 * gateway will not accept (403): expired, another algorithm than HS256 (`alg: none`, HS512,
 * RS256, ...), a signature that does not verify, or missing/invalid claims.
 */
/** WeChat users appear as `wechat:{accountId}:{openId}` in frames: no client may hold such an id. */
export const isReservedUserId = (userId: string): boolean => userId.startsWith('wechat:');

export type TokenRejection = 'malformed' | 'bad_algorithm' | 'bad_signature' | 'expired' | 'bad_claims';

export class TokenRejectedError extends Error {
  constructor(
    readonly reason: TokenRejection,
    message: string,
  ) {
    super(message);
    this.name = 'TokenRejectedError';
  }
}

const keyOf = (secret: string) => new TextEncoder().encode(secret);

export async function verifyClientToken(token: string, secret: string, nowMs: number = Date.now()): Promise<ClientIdentity> {
  let payload;
  try {
    ({ payload } = await jwtVerify(token, keyOf(secret), {
      algorithms: ['HS256'],
      requiredClaims: ['sub', 'exp'],
      currentDate: new Date(nowMs),
    }));
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) throw new TokenRejectedError('expired', 'token expired');
    if (err instanceof joseErrors.JWSSignatureVerificationFailed) throw new TokenRejectedError('bad_signature', 'bad token signature');
    if (err instanceof joseErrors.JWTClaimValidationFailed) throw new TokenRejectedError('bad_claims', err.message);
    const alg = protectedAlgOf(token);
    if (alg === undefined) throw new TokenRejectedError('malformed', 'malformed token');
    if (alg !== 'HS256') throw new TokenRejectedError('bad_algorithm', 'token algorithm must be HS256');
    throw new TokenRejectedError('bad_signature', 'bad token');
  }
  const deviceId = payload.did ?? DEFAULT_DEVICE_ID;
  if (!isValidId(payload.sub)) throw new TokenRejectedError('bad_claims', 'sub must be an id of 1-128 [A-Za-z0-9_.:@-]');
  if (isReservedUserId(payload.sub)) throw new TokenRejectedError('bad_claims', 'sub must not start with "wechat:" (reserved for WeChat users)');
  if (!isValidId(deviceId)) throw new TokenRejectedError('bad_claims', 'did must be an id of 1-128 [A-Za-z0-9_.:@-]');
  return { userId: payload.sub, deviceId, expiresAt: payload.exp as number };
}

/** The `alg` of a token shaped like a compact JWS (three dot-separated parts), else undefined. */
function protectedAlgOf(token: string): string | undefined {
  if (token.split('.').length !== 3) return undefined;
  try {
    const { alg } = decodeProtectedHeader(token);
    return typeof alg === 'string' ? alg : undefined;
  } catch {
    return undefined;
  }
}

export interface TokenRequest {
  userId: string;
  deviceId?: string;
  ttlSeconds: number;
}

export async function issueClientToken(
  request: TokenRequest,
  secret: string,
  nowMs: number = Date.now(),
): Promise<{ token: string; expiresAt: number }> {
  const iat = Math.floor(nowMs / 1000);
  const expiresAt = iat + request.ttlSeconds;
  const claims = request.deviceId === undefined ? {} : { did: request.deviceId };
  const token = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(request.userId)
    .setIssuedAt(iat)
    .setExpirationTime(expiresAt)
    .sign(keyOf(secret));
  return { token, expiresAt };
}
