import { signRequest } from './sign-request';

/**
 * Signed calls to the admin API for the `wxgate` CLI: where to call and with which key (from the
 * environment), and one request -> status + parsed JSON.
 */
export const LOCAL_URL = 'http://127.0.0.1:3000';
export const LOCAL_KEY = { keyId: 'local', secret: 'local-dev-admin-secret' } as const;

export interface AdminTarget {
  baseUrl: string;
  keyId: string;
  secret: string;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * WXGATE_URL (default local mode), WXGATE_KEY_ID and WXGATE_KEY_SECRET (default the local key).
 * The local secret is only assumed for the local key id: another key id without its secret is a
 * mistake worth saying, not a 401 to puzzle over.
 */
export function targetFromEnv(env: Readonly<Record<string, string | undefined>>): AdminTarget {
  const baseUrl = (env.WXGATE_URL || LOCAL_URL).replace(/\/+$/, '');
  try {
    const url = new URL(baseUrl);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error();
  } catch {
    throw new UsageError(`WXGATE_URL must be an http(s) URL, got "${baseUrl}"`);
  }
  const keyId = env.WXGATE_KEY_ID || LOCAL_KEY.keyId;
  const secret = env.WXGATE_KEY_SECRET || (keyId === LOCAL_KEY.keyId ? LOCAL_KEY.secret : undefined);
  if (!secret) throw new UsageError(`WXGATE_KEY_SECRET is not set (WXGATE_KEY_ID is "${keyId}")`);
  return { baseUrl, keyId, secret };
}

/** An id as a path segment: ids are [A-Za-z0-9_.:@-], sent as they are; anything else is escaped (and refused by the API). */
export const segment = (id: string): string => encodeURIComponent(id).replace(/%3A/gi, ':').replace(/%40/gi, '@');

export interface AdminAnswer {
  status: number;
  ok: boolean;
  /** Parsed JSON, or undefined when the answer was empty or not JSON. */
  body: unknown;
  text: string;
}

export async function callAdmin(target: AdminTarget, method: string, pathWithQuery: string, payload?: unknown, fetchImpl: typeof fetch = fetch): Promise<AdminAnswer> {
  const url = new URL(target.baseUrl + pathWithQuery);
  const body = payload === undefined ? undefined : JSON.stringify(payload);
  const headers = signRequest({ keyId: target.keyId, secret: target.secret, method, url, body });
  let response: Response;
  try {
    response = await fetchImpl(url, { method, body, headers: body === undefined ? { ...headers } : { ...headers, 'content-type': 'application/json' } });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const hint = target.baseUrl === LOCAL_URL ? ' (is `npm start` running?)' : '';
    throw new Error(`cannot reach ${target.baseUrl}: ${cause?.code ?? cause?.message ?? (err as Error).message}${hint}`);
  }
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: response.status, ok: response.ok, body: parsed, text };
}
