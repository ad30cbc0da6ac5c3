import { randomBytes } from 'node:crypto';
import { signature } from '../lambdas/domain/admin-signing';

/**
 * `signRequest`: the four headers of a signed admin API request (docs/admin-api.md), for Node
 * backends. `import { signRequest } from 'wxgate/sign'`.
 *
 * The string to sign is defined once, in lambdas/domain/admin-signing.ts, which the gateway
 * verifies with; this helper only picks the parts of the request and fills in the timestamp and
 * nonce. The types here are self-contained so the published declaration file needs nothing else.
 */
export interface SignRequestOptions {
  keyId: string;
  secret: string;
  /** HTTP method; signed in upper case. */
  method: string;
  /**
   * The URL exactly as you pass it to `fetch` (`https://host/v1/push?a=1`), or a path with an
   * optional query (`/v1/push?a=1`). It is parsed like `fetch` parses it, so the path and query
   * signed are the ones sent. Give either `url` or `path`.
   */
  url?: string | URL;
  /** The path as sent (`/v1/push`), taken verbatim. Instead of `url`. */
  path?: string;
  /** With `path`: the raw query string without `?`, verbatim; default empty. */
  query?: string;
  /** The exact body bytes or text you send (e.g. the result of `JSON.stringify`); default none. */
  body?: string | Uint8Array;
  /** Unix seconds; default now. The gateway accepts 300 s either way. */
  timestamp?: number;
  /** 16-64 characters of [A-Za-z0-9_-], never reused within 300 s; default 24 random characters. */
  nonce?: string;
}

export interface SignedHeaders {
  'X-Wxgate-Key': string;
  'X-Wxgate-Timestamp': string;
  'X-Wxgate-Nonce': string;
  'X-Wxgate-Signature': string;
}

const NONCE = /^[A-Za-z0-9_-]{16,64}$/;

function pathAndQuery(options: SignRequestOptions): { path: string; query: string } {
  if (options.url !== undefined && options.path !== undefined) throw new TypeError('signRequest: give either url or path, not both');
  if (options.url !== undefined) {
    // Relative URLs resolve against a placeholder origin; only the path and query are used.
    const url = new URL(options.url, 'http://wxgate.invalid');
    return { path: url.pathname, query: url.search.slice(1) };
  }
  if (options.path === undefined) throw new TypeError('signRequest: url or path is required');
  if (!options.path.startsWith('/') || options.path.includes('?')) throw new TypeError('signRequest: path must start with "/" and contain no query (put it in `query`)');
  const query = options.query ?? '';
  if (query.startsWith('?')) throw new TypeError('signRequest: query is the raw query string without "?"');
  return { path: options.path, query };
}

export function signRequest(options: SignRequestOptions): SignedHeaders {
  const { keyId, secret, method, body } = options;
  if (!keyId || !secret) throw new TypeError('signRequest: keyId and secret are required');
  if (!method) throw new TypeError('signRequest: method is required');
  if (body !== undefined && typeof body !== 'string' && !(body instanceof Uint8Array)) {
    throw new TypeError('signRequest: body must be the exact string or bytes you send (JSON.stringify it first)');
  }
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new TypeError('signRequest: timestamp must be unix seconds (an integer)');
  const nonce = options.nonce ?? randomBytes(18).toString('base64url');
  if (!NONCE.test(nonce)) throw new TypeError('signRequest: nonce must be 16-64 characters of [A-Za-z0-9_-]');
  const { path, query } = pathAndQuery(options);

  return {
    'X-Wxgate-Key': keyId,
    'X-Wxgate-Timestamp': String(timestamp),
    'X-Wxgate-Nonce': nonce,
    'X-Wxgate-Signature': signature(secret, { method, path, query, timestamp, nonce, body }),
  };
}
