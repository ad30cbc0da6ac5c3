import { timingSafeEqual } from 'node:crypto';
import type { AdminKeys } from './admin-keys';
import { signature, SIGNATURE_HEADERS } from './admin-signing';
import { GatewayError } from './errors';

/**
 * Verifies a signed admin request (docs/admin-api.md, "Signing"). Checks run cheapest first and
 * the nonce is claimed last, so unsigned junk never writes anything:
 *   headers present and well formed -> key known -> timestamp within ±300 s -> signature
 *   (constant time) -> nonce unused (a conditional write, so a replay on another Lambda
 *   instance is refused too).
 * Every refusal is a 401 `unauthorized` whose `check` names what failed, for the logs.
 */
export const TIMESTAMP_WINDOW_SECONDS = 300;
const NONCE = /^[A-Za-z0-9_-]{16,64}$/;
const HEX_SIGNATURE = /^[0-9a-f]{64}$/;

export type AuthCheck = 'missing_header' | 'malformed_header' | 'unknown_key' | 'timestamp_skew' | 'bad_signature' | 'replayed_nonce';

export class AdminAuthError extends GatewayError {
  constructor(
    readonly check: AuthCheck,
    message: string,
  ) {
    super('unauthorized', message);
    this.name = 'AdminAuthError';
  }
}

export interface NonceStore {
  /** Records (keyId, nonce) until `expiresAt` (epoch s); false if it is already recorded and unexpired. */
  claimNonce(keyId: string, nonce: string, expiresAt: number, nowSeconds: number): Promise<boolean>;
}

export interface AdminRequest {
  method: string;
  path: string;
  query: string;
  /** Header names in lower case (API Gateway HTTP API payload 2.0). */
  headers: Readonly<Record<string, string | undefined>>;
  /** The raw body bytes (or text), hashed as sent. */
  body: string | Uint8Array;
}

export async function verifyAdminRequest(request: AdminRequest, keys: AdminKeys, nonces: NonceStore, nowMs: number): Promise<{ keyId: string }> {
  const header = (name: string) => request.headers[name];
  const keyId = header(SIGNATURE_HEADERS.key);
  const timestampText = header(SIGNATURE_HEADERS.timestamp);
  const nonce = header(SIGNATURE_HEADERS.nonce);
  const given = header(SIGNATURE_HEADERS.signature);
  if (!keyId || !timestampText || !nonce || !given) {
    throw new AdminAuthError('missing_header', 'X-Wxgate-Key, X-Wxgate-Timestamp, X-Wxgate-Nonce and X-Wxgate-Signature are required');
  }
  if (!/^\d{1,12}$/.test(timestampText)) throw new AdminAuthError('malformed_header', 'X-Wxgate-Timestamp must be unix seconds');
  if (!NONCE.test(nonce)) throw new AdminAuthError('malformed_header', 'X-Wxgate-Nonce must be 16-64 characters of [A-Za-z0-9_-]');
  if (!HEX_SIGNATURE.test(given.toLowerCase())) throw new AdminAuthError('malformed_header', 'X-Wxgate-Signature must be 64 hex characters');

  const secret = keys.get(keyId);
  if (secret === undefined) throw new AdminAuthError('unknown_key', 'unknown key');
  const timestamp = Number(timestampText);
  const nowSeconds = Math.floor(nowMs / 1000);
  if (Math.abs(nowSeconds - timestamp) > TIMESTAMP_WINDOW_SECONDS) {
    throw new AdminAuthError('timestamp_skew', `timestamp is more than ${TIMESTAMP_WINDOW_SECONDS} s away from server time (${nowSeconds})`);
  }
  const expected = Buffer.from(signature(secret, { ...request, timestamp, nonce }), 'hex');
  if (!timingSafeEqual(expected, Buffer.from(given.toLowerCase(), 'hex'))) throw new AdminAuthError('bad_signature', 'signature does not match');

  // The nonce must stay recorded for as long as its timestamp is accepted.
  if (!(await nonces.claimNonce(keyId, nonce, timestamp + TIMESTAMP_WINDOW_SECONDS + 1, nowSeconds))) {
    throw new AdminAuthError('replayed_nonce', 'nonce already used');
  }
  return { keyId };
}
