import { createHash, createHmac } from 'node:crypto';

/**
 * Admin request signing (docs/admin-api.md): four headers, and an HMAC-SHA256 over
 *   METHOD \n PATH \n QUERY \n TIMESTAMP \n NONCE \n hex(SHA256(body))
 * PATH is the path as sent, QUERY the raw query string without `?` (empty when none), body the
 * raw bytes (empty when none). Shared by the gateway (verification), the `wxgate` CLI and the
 * exported `signRequest` helper, so there is one definition of the string to sign.
 */
export const SIGNATURE_HEADERS = {
  key: 'x-wxgate-key',
  timestamp: 'x-wxgate-timestamp',
  nonce: 'x-wxgate-nonce',
  signature: 'x-wxgate-signature',
} as const;

export interface SignableRequest {
  method: string;
  path: string;
  /** Raw query string without `?`; empty when none. */
  query: string;
  timestamp: number;
  nonce: string;
  body?: string | Uint8Array;
}

export function stringToSign(request: SignableRequest): string {
  const bodyHash = createHash('sha256')
    .update(request.body ?? '')
    .digest('hex');
  return `${request.method.toUpperCase()}\n${request.path}\n${request.query}\n${request.timestamp}\n${request.nonce}\n${bodyHash}`;
}

/** hex(HMAC_SHA256(secret, stringToSign)). */
export function signature(secret: string, request: SignableRequest): string {
  return createHmac('sha256', secret).update(stringToSign(request)).digest('hex');
}
