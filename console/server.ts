import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { signRequest } from '../cli/sign-request';
import { loadConsoleAssets, type ConsoleAssets } from './assets';

/**
 * The web console's server side (docs/console.md), shared by local mode (the local HTTP server
 * answers /console itself) and `wxgate console` (its own loopback server for a deployed stack):
 *
 *   GET /console, /console/            the page          GET /console/console.{js,css}
 *   GET /console/api/config            where the page connects ({ wsUrl, apiUrl, keyId, mode })
 *   /console/api/v1/...                an allow-listed admin API call, signed here with the admin
 *                                      key and forwarded to apiUrl; the answer comes back as it is
 *
 * The admin secret stays in this process: the page gets client tokens through
 * /console/api/v1/tokens and never sees a key. Every /console/api call must carry the header
 * `X-Wxgate-Console` (a cross-site page cannot send it without a CORS preflight, which this server
 * never grants) and, when `session` is set (`wxgate console`), its value must be that session
 * secret; the Host must be a loopback name (or `allowedHosts`), which stops DNS rebinding.
 */
export interface ConsoleServerOptions {
  /** The admin API base URL (local mode: the local HTTP server itself; AWS: the stack's HttpApiUrl). */
  apiUrl: () => string;
  /** The WebSocket API URL the page's client connects to. */
  wsUrl: () => string;
  keyId: string;
  secret: string;
  /** Shown in the page's header. */
  mode: 'local' | 'deployed';
  /** When set, /console/api calls must send it as X-Wxgate-Console (the link `wxgate console` prints carries it). */
  session?: string;
  /** Host names accepted besides 127.0.0.1, localhost and ::1 (e.g. the host local mode listens on). */
  allowedHosts?: readonly string[];
  assets?: () => Promise<ConsoleAssets>;
  fetch?: typeof fetch;
}

/** The admin API calls the console makes; nothing else is signed. */
const ALLOWED: ReadonlyArray<[method: string, path: RegExp]> = [
  ['POST', /^\/v1\/tokens$/],
  ['POST', /^\/v1\/push$/],
  ['GET', /^\/v1\/jobs\/[^/]+$/],
  ['GET', /^\/v1\/stats$/],
  ['GET', /^\/v1\/users\/[^/]+\/connections$/],
  ['DELETE', /^\/v1\/users\/[^/]+\/connections$/],
  ['GET', /^\/v1\/groups\/[^/]+\/members$/],
  ['PUT', /^\/v1\/groups\/[^/]+\/members$/],
];

export const CONSOLE_PATH = '/console';
export const CONSOLE_HEADER = 'x-wxgate-console';
const MAX_BODY_BYTES = 256 * 1024;
const LOOPBACK = ['127.0.0.1', 'localhost', '::1', '[::1]'];

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}): void {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  res
    .writeHead(status, {
      'content-type': type,
      'content-length': String(bytes.length),
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      ...extra,
    })
    .end(bytes);
}

const error = (res: ServerResponse, status: number, code: string, message: string) =>
  send(res, status, 'application/json', JSON.stringify({ error: { code, message } }));

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  }
  return size > MAX_BODY_BYTES ? undefined : Buffer.concat(chunks);
}

function hostNameOf(host: string | undefined): string | undefined {
  if (!host) return undefined;
  try {
    return new URL(`http://${host}`).hostname;
  } catch {
    return undefined;
  }
}

const sameSecret = (given: string, expected: string) => {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
};

/**
 * A request handler for /console and everything under it; resolves false for any other path
 * (the caller handles those), true once it answered.
 */
export function consoleHandler(options: ConsoleServerOptions): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  const assets = options.assets ?? loadConsoleAssets;
  const fetchImpl = options.fetch ?? fetch;
  const hosts = new Set([...LOOPBACK, ...(options.allowedHosts ?? [])].map((h) => h.toLowerCase()));

  const page = async (res: ServerResponse, name: 'html' | 'js' | 'css') => {
    const built = await assets();
    if (name === 'js') return send(res, 200, 'text/javascript; charset=utf-8', built.js);
    if (name === 'css') return send(res, 200, 'text/css; charset=utf-8', built.css);
    // The page talks to this server and to the WebSocket API, nothing else.
    const ws = new URL(options.wsUrl());
    const csp = `default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ${ws.protocol}//${ws.host}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;
    return send(res, 200, 'text/html; charset=utf-8', built.html, { 'content-security-policy': csp });
  };

  const api = async (req: IncomingMessage, res: ServerResponse, path: string, query: string) => {
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${req.headers.host}`) return error(res, 403, 'forbidden', `cross-origin request from ${origin}`);
    const given = req.headers[CONSOLE_HEADER];
    if (typeof given !== 'string') return error(res, 403, 'forbidden', `the ${CONSOLE_HEADER} header is missing`);
    if (options.session !== undefined && !sameSecret(given, options.session)) {
      return error(res, 403, 'forbidden', 'no console session: open the link `wxgate console` printed (it carries the session)');
    }
    const method = req.method ?? 'GET';
    if (path === '/config' && method === 'GET') {
      return send(res, 200, 'application/json', JSON.stringify({ wsUrl: options.wsUrl(), apiUrl: options.apiUrl(), keyId: options.keyId, mode: options.mode }));
    }
    if (!ALLOWED.some(([m, p]) => m === method && p.test(path))) return error(res, 404, 'not_found', `the console does not call ${method} ${path}`);
    const body = await readBody(req);
    if (body === undefined) return error(res, 413, 'too_large', `request body over ${MAX_BODY_BYTES} bytes`);
    const url = new URL(options.apiUrl().replace(/\/+$/, '') + path + (query ? `?${query}` : ''));
    const headers: Record<string, string> = { ...signRequest({ keyId: options.keyId, secret: options.secret, method, url, body: body.length ? body : undefined }) };
    if (body.length) headers['content-type'] = 'application/json';
    let answer: Response;
    try {
      answer = await fetchImpl(url, { method, headers, body: body.length ? body : undefined });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      return error(res, 502, 'unreachable', `cannot reach ${options.apiUrl()}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
    const text = Buffer.from(await answer.arrayBuffer());
    return send(res, answer.status, answer.headers.get('content-type') ?? 'application/json', text);
  };

  return async (req, res) => {
    const raw = req.url ?? '/';
    const at = raw.indexOf('?');
    const path = at < 0 ? raw : raw.slice(0, at);
    if (path !== CONSOLE_PATH && !path.startsWith(`${CONSOLE_PATH}/`)) return false;
    const host = hostNameOf(req.headers.host);
    if (!host || !hosts.has(host.toLowerCase())) {
      req.resume();
      error(res, 403, 'forbidden', `the console answers on ${[...hosts].join(', ')} only, not on host ${req.headers.host ?? '(none)'}`);
      return true;
    }
    const rest = path.slice(CONSOLE_PATH.length);
    if (rest.startsWith('/api/')) {
      await api(req, res, rest.slice('/api'.length), at < 0 ? '' : raw.slice(at + 1));
      return true;
    }
    req.resume();
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') {
      error(res, 405, 'method_not_allowed', `${method} ${path}`);
      return true;
    }
    if (rest === '' || rest === '/' || rest === '/index.html') await page(res, 'html');
    else if (rest === '/console.js') await page(res, 'js');
    else if (rest === '/console.css') await page(res, 'css');
    else error(res, 404, 'not_found', `no console file ${path}`);
    return true;
  };
}
