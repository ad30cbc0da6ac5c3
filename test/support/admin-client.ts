import { randomBytes } from 'node:crypto';
import { signature } from '../../lambdas/domain/admin-signing';

/** Signs and sends admin API requests (docs/admin-api.md), as a backend would. */
export const LOCAL_ADMIN_KEY = { keyId: 'local', secret: 'local-dev-admin-secret' };

export interface AdminResponse {
  status: number;
  body: any;
}

export function signedHeaders(method: string, pathWithQuery: string, body: string, key = LOCAL_ADMIN_KEY, timestamp = Math.floor(Date.now() / 1000), nonce = randomBytes(16).toString('hex')) {
  const at = pathWithQuery.indexOf('?');
  const path = at < 0 ? pathWithQuery : pathWithQuery.slice(0, at);
  const query = at < 0 ? '' : pathWithQuery.slice(at + 1);
  return {
    'X-Wxgate-Key': key.keyId,
    'X-Wxgate-Timestamp': String(timestamp),
    'X-Wxgate-Nonce': nonce,
    'X-Wxgate-Signature': signature(key.secret, { method, path, query, timestamp, nonce, body }),
  };
}

export async function adminRequest(baseUrl: string, method: string, pathWithQuery: string, payload?: unknown, headers?: Record<string, string>): Promise<AdminResponse> {
  const body = payload === undefined ? '' : JSON.stringify(payload);
  const response = await fetch(baseUrl + pathWithQuery, {
    method,
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(headers ?? signedHeaders(method, pathWithQuery, body)) },
    body: body || undefined,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}
