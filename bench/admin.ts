import { randomBytes } from 'node:crypto';
import { signature } from '../lambdas/domain/admin-signing';

/**
 * Signed admin API requests (docs/admin-api.md), as a backend would send them. The bench starts
 * the gateway with its own throwaway key (`adminKeys`), so frames say `from: "admin/bench"`.
 */
export interface AdminKey {
  keyId: string;
  secret: string;
}

export const newBenchAdminKey = (): AdminKey => ({ keyId: 'bench', secret: randomBytes(24).toString('hex') });

export const adminKeysOption = (key: AdminKey): string => `${key.keyId}:${key.secret}`;

export interface AdminResponse {
  status: number;
  body: any;
}

export async function adminRequest(baseUrl: string, key: AdminKey, method: string, path: string, payload?: unknown): Promise<AdminResponse> {
  const body = payload === undefined ? '' : JSON.stringify(payload);
  const timestamp = Math.floor(Date.now() / 1000);
  const nonce = randomBytes(16).toString('hex');
  const response = await fetch(baseUrl + path, {
    method,
    headers: {
      ...(body ? { 'content-type': 'application/json' } : {}),
      'X-Wxgate-Key': key.keyId,
      'X-Wxgate-Timestamp': String(timestamp),
      'X-Wxgate-Nonce': nonce,
      'X-Wxgate-Signature': signature(key.secret, { method, path, query: '', timestamp, nonce, body }),
    },
    body: body || undefined,
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}
