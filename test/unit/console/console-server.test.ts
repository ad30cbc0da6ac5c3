/**
 * The web console's server side (console/server.ts): serves the page, signs only the admin calls
 * the console makes, never hands the secret to the browser, and refuses requests a foreign page
 * (cross-origin, DNS rebinding) or another user of the machine (no session) could make.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { httpRoutes } from '../../../lib/gateway-declaration';
import { signature } from '../../../lambdas/domain/admin-signing';
import { consoleHandler, type ConsoleServerOptions } from '../../../console/server';

const SECRET = 'console-test-secret-0123456789';
const ASSETS = { html: '<!doctype html><title>console</title>', js: 'console.log(1)', css: 'body{}' };

interface Forwarded {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: string;
}

let server: Server;
let base: string;
let forwarded: Forwarded[];
let upstream: (f: Forwarded) => Response;

async function start(extra: Partial<ConsoleServerOptions> = {}): Promise<void> {
  forwarded = [];
  upstream = () => new Response(JSON.stringify({ online: 2, users: 1 }), { status: 200, headers: { 'content-type': 'application/json' } });
  const handle = consoleHandler({
    apiUrl: () => 'https://api.example.test/',
    wsUrl: () => 'wss://ws.example.test/live',
    keyId: 'ops',
    secret: SECRET,
    mode: 'deployed',
    assets: async () => ASSETS,
    fetch: (async (input: string | URL, init?: RequestInit) => {
      const f: Forwarded = {
        url: String(input),
        method: init?.method ?? 'GET',
        headers: { ...(init?.headers as Record<string, string>) },
        ...(init?.body ? { body: Buffer.from(init.body as Uint8Array).toString('utf8') } : {}),
      };
      forwarded.push(f);
      return upstream(f);
    }) as typeof fetch,
    ...extra,
  });
  server = createServer((req, res) => {
    void handle(req, res).then((done) => {
      if (!done) res.writeHead(418).end('not mine');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterEach(async () => {
  if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
});

const call = (path: string, init: RequestInit & { headers?: Record<string, string> } = {}) =>
  fetch(base + path, { ...init, headers: { 'x-wxgate-console': 'the-session', ...init.headers } });

/** A GET with any Host header (fetch sets its own). */
const withHost = (path: string, host: string) =>
  new Promise<number>((resolve, reject) => {
    const url = new URL(base + path);
    request({ host: url.hostname, port: url.port, path, headers: { host, 'x-wxgate-console': 'the-session' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    })
      .on('error', reject)
      .end();
  });

it('is a local developer tool: the deployed HTTP API declares no /console route', () => {
  expect(httpRoutes.filter((r) => r.path === '/console' || r.path.startsWith('/console/'))).toEqual([]);
});

describe('the page', () => {
  beforeEach(() => start());

  it('serves the page at /console and /console/ with a CSP that allows the WebSocket API and nothing else', async () => {
    for (const path of ['/console', '/console/']) {
      const res = await fetch(base + path);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(res.headers.get('content-security-policy')).toContain("connect-src 'self' wss://ws.example.test;");
      expect(res.headers.get('content-security-policy')).toContain("script-src 'self';");
      expect(await res.text()).toBe(ASSETS.html);
    }
    expect(await (await fetch(`${base}/console/console.js`)).text()).toBe(ASSETS.js);
    expect((await fetch(`${base}/console/console.css`)).headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect((await fetch(`${base}/console/nope.js`)).status).toBe(404);
  });

  it('leaves every other path to the caller', async () => {
    for (const path of ['/', '/v1/stats', '/consoles', '/wechat/acc']) expect((await fetch(base + path)).status).toBe(418);
  });
});

describe('/console/api', () => {
  it('signs an allowed admin call with the key, forwards the exact body and query, and answers what the API answered', async () => {
    await start();
    upstream = () => new Response('{"groupId":"team","members":2}', { status: 200, headers: { 'content-type': 'application/json' } });
    const body = '{"add":["ann","bob"]}';
    const res = await call('/console/api/v1/groups/team/members', { method: 'PUT', body, headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ groupId: 'team', members: 2 });
    const [f] = forwarded;
    expect(f!.url).toBe('https://api.example.test/v1/groups/team/members');
    expect(f!.method).toBe('PUT');
    expect(f!.body).toBe(body);
    expect(f!.headers['X-Wxgate-Key']).toBe('ops');
    const timestamp = Number(f!.headers['X-Wxgate-Timestamp']);
    const nonce = f!.headers['X-Wxgate-Nonce']!;
    expect(f!.headers['X-Wxgate-Signature']).toBe(signature(SECRET, { method: 'PUT', path: '/v1/groups/team/members', query: '', timestamp, nonce, body }));

    await call('/console/api/v1/groups/team/members?limit=5&after=ann');
    expect(forwarded[1]!.url).toBe('https://api.example.test/v1/groups/team/members?limit=5&after=ann');
    expect(forwarded[1]!.headers['X-Wxgate-Signature']).toBe(
      signature(SECRET, { method: 'GET', path: '/v1/groups/team/members', query: 'limit=5&after=ann', timestamp: Number(forwarded[1]!.headers['X-Wxgate-Timestamp']), nonce: forwarded[1]!.headers['X-Wxgate-Nonce']! }),
    );
  });

  it('passes error answers through with their status', async () => {
    await start();
    upstream = () => new Response('{"error":{"code":"not_found","message":"no such job"}}', { status: 404, headers: { 'content-type': 'application/json' } });
    const res = await call('/console/api/v1/jobs/01ABC');
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: 'not_found', message: 'no such job' } });
  });

  it('signs nothing but the calls the console makes', async () => {
    await start();
    const refused: Array<[string, string]> = [
      ['POST', '/v1/login/wechat'],
      ['POST', '/v1/wechat/acc/messages'],
      ['GET', '/v1/tokens'],
      ['DELETE', '/v1/groups/team/members'],
      ['GET', '/v1/users/ann/connections/extra'],
      ['GET', '/wechat/acc'],
    ];
    for (const [method, path] of refused) {
      const res = await call(`/console/api${path}`, { method });
      expect([method, path, res.status]).toEqual([method, path, 404]);
    }
    expect(forwarded).toEqual([]);
  });

  it('gives the page its configuration, without any secret', async () => {
    await start();
    const res = await call('/console/api/config');
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ wsUrl: 'wss://ws.example.test/live', apiUrl: 'https://api.example.test/', keyId: 'ops', mode: 'deployed' });
    expect(text).not.toContain(SECRET);
  });

  it('refuses calls without the console header, from another origin, or on a host that is not loopback', async () => {
    await start();
    expect((await fetch(`${base}/console/api/v1/stats`)).status).toBe(403);
    expect((await call('/console/api/v1/stats', { headers: { origin: 'http://evil.example' } })).status).toBe(403);
    expect((await call('/console/api/v1/stats', { headers: { origin: base } })).status).toBe(200);
    const port = new URL(base).port;
    expect(await withHost('/console/api/v1/stats', `evil.example:${port}`)).toBe(403);
    expect(await withHost('/console', `evil.example:${port}`)).toBe(403);
    expect(await withHost('/console/api/v1/stats', `localhost:${port}`)).toBe(200);
    expect(forwarded).toHaveLength(2);
  });

  it('with a session (wxgate console), refuses calls that do not carry it', async () => {
    await start({ session: 'the-session' });
    expect((await call('/console/api/v1/stats', { headers: { 'x-wxgate-console': 'guess' } })).status).toBe(403);
    expect((await call('/console/api/config', { headers: { 'x-wxgate-console': 'the-sessio' } })).status).toBe(403);
    expect((await call('/console/api/v1/stats')).status).toBe(200);
    // The page itself holds no secret: it loads without the session.
    expect((await fetch(`${base}/console`)).status).toBe(200);
  });

  it('says so when the API cannot be reached, and refuses bodies over 256 KiB', async () => {
    await start();
    upstream = () => {
      throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    };
    const res = await call('/console/api/v1/stats');
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe('cannot reach https://api.example.test/: ECONNREFUSED');
    const big = await call('/console/api/v1/push', { method: 'POST', body: 'x'.repeat(256 * 1024 + 1) });
    expect(big.status).toBe(413);
  });
});
