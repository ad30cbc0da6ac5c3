import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { httpRoutes, type HttpRouteDeclaration } from '../lib/gateway-declaration';
import { apiGatewayId, apiGatewayTime, sourceIpOf } from './api-gateway-ids';
import type { LambdaInvoker } from './lambda-invoker';
import { readBody } from './management-api';
import { LOCAL_ACCOUNT_ID } from './local-names';

/**
 * API Gateway HTTP API emulation for `httpRoutes`: payload format 2.0 events, results mapped
 * the way HTTP API maps them (an object without `statusCode` is 200 JSON of itself, a string
 * is a 200 body). Unknown routes: 404 in the admin API's error shape (docs/protocol.md).
 */
export const MAX_HTTP_BODY_BYTES = 1024 * 1024;
const utf8 = new TextDecoder('utf-8', { fatal: true });

interface CompiledRoute {
  route: HttpRouteDeclaration;
  routeKey: string;
  pattern: RegExp;
  params: string[];
}

/** `/v1/jobs/{jobId}` -> /^\/v1\/jobs\/([^/]+)$/ ; `{proxy+}` matches the rest of the path. */
export function compileRoute(route: HttpRouteDeclaration): CompiledRoute {
  const params: string[] = [];
  const source = route.path
    .split('/')
    .map((segment) => {
      const param = /^\{([A-Za-z0-9_]+)(\+?)\}$/.exec(segment);
      if (!param) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      params.push(param[1]!);
      return param[2] ? '(.+)' : '([^/]+)';
    })
    .join('/');
  return { route, routeKey: `${route.method} ${route.path}`, pattern: new RegExp(`^${source}$`), params };
}

function errorJson(res: ServerResponse, status: number, code: string, message: string): void {
  const text = JSON.stringify({ error: { code, message } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) }).end(text);
}

interface HttpResult {
  statusCode?: number;
  headers?: Record<string, string | number | boolean>;
  multiValueHeaders?: Record<string, Array<string | number | boolean>>;
  cookies?: string[];
  body?: string;
  isBase64Encoded?: boolean;
}

/** HTTP API's mapping of a payload 2.0 result to the response. */
export function mapResult(result: unknown): { status: number; headers: Record<string, string | string[]>; body: Buffer } {
  if (typeof result === 'string') return { status: 200, headers: { 'content-type': 'application/json' }, body: Buffer.from(result) };
  if (result === undefined || result === null || typeof result !== 'object' || !('statusCode' in result)) {
    const text = JSON.stringify(result ?? null);
    return { status: 200, headers: { 'content-type': 'application/json' }, body: Buffer.from(text) };
  }
  const r = result as HttpResult;
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(r.headers ?? {})) headers[name.toLowerCase()] = String(value);
  for (const [name, values] of Object.entries(r.multiValueHeaders ?? {})) headers[name.toLowerCase()] = values.map(String);
  if (r.cookies?.length) headers['set-cookie'] = r.cookies;
  const body = r.body === undefined ? Buffer.alloc(0) : r.isBase64Encoded ? Buffer.from(r.body, 'base64') : Buffer.from(r.body);
  return { status: Number(r.statusCode), headers, body };
}

export class LocalHttpServer {
  readonly server: Server;
  private readonly routes = httpRoutes.map(compileRoute);
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly options: {
      invoker: LambdaInvoker;
      logger: (line: string) => void;
      /** Cost meter hook: one call per request that reached a route (its body and answer sizes). */
      onRequest?: (routeKey: string, bytesIn: number, bytesOut: number) => void;
      /** Local mode's own pages (the web console, console/server.ts): true when it answered the request. */
      console?: (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;
    },
  ) {
    this.server = createServer((req, res) => {
      const work = this.handle(req, res).catch((err: Error) => {
        this.options.logger(`HTTP server error: ${err.stack ?? err.message}`);
        if (!res.headersSent) errorJson(res, 500, 'internal', 'internal error');
      });
      this.pending.add(work);
      void work.finally(() => this.pending.delete(work));
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // /console is local mode's, not the deployed API's: answered before the declared routes.
    if (this.options.console && (await this.options.console(req, res))) return;
    const method = req.method ?? 'GET';
    const rawUrl = req.url ?? '/';
    const queryAt = rawUrl.indexOf('?');
    const rawPath = queryAt < 0 ? rawUrl : rawUrl.slice(0, queryAt);
    const rawQueryString = queryAt < 0 ? '' : rawUrl.slice(queryAt + 1);
    let matched: { compiled: CompiledRoute; values: string[] } | undefined;
    for (const compiled of this.routes) {
      if (compiled.route.method !== method) continue;
      const m = compiled.pattern.exec(rawPath);
      if (m) {
        matched = { compiled, values: m.slice(1) };
        break;
      }
    }
    if (!matched) {
      req.resume();
      errorJson(res, 404, 'not_found', `no route for ${method} ${rawPath}`);
      return;
    }
    const raw = await readBody(req, MAX_HTTP_BODY_BYTES);
    if (raw === undefined) {
      errorJson(res, 413, 'too_large', `request body over ${MAX_HTTP_BODY_BYTES} bytes`);
      return;
    }
    const { compiled, values } = matched;
    const decode = (s: string) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    };
    const pathParameters = compiled.params.length ? Object.fromEntries(compiled.params.map((name, i) => [name, decode(values[i]!)])) : undefined;

    // Payload 2.0: lower-case header names, duplicates joined with commas, cookies moved to `cookies`.
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (name === 'cookie' || value === undefined) continue;
      headers[name] = Array.isArray(value) ? value.join(',') : value;
    }
    const cookies = req.headers.cookie ? req.headers.cookie.split(/;\s*/).filter(Boolean) : undefined;
    const params = new URLSearchParams(rawQueryString);
    const queryStringParameters: Record<string, string> = {};
    for (const name of new Set(params.keys())) queryStringParameters[name] = params.getAll(name).join(',');

    let body: string | undefined;
    let isBase64Encoded = false;
    if (raw.length > 0) {
      try {
        body = utf8.decode(raw);
      } catch {
        body = raw.toString('base64');
        isBase64Encoded = true;
      }
    }
    const now = Date.now();
    const domainName = req.headers.host ?? '127.0.0.1';
    const event = {
      version: '2.0',
      routeKey: compiled.routeKey,
      rawPath,
      rawQueryString,
      ...(cookies ? { cookies } : {}),
      headers,
      ...(rawQueryString ? { queryStringParameters } : {}),
      ...(pathParameters ? { pathParameters } : {}),
      requestContext: {
        accountId: LOCAL_ACCOUNT_ID,
        apiId: 'local',
        domainName,
        domainPrefix: domainName.split('.')[0],
        http: { method, path: rawPath, protocol: `HTTP/${req.httpVersion}`, sourceIp: sourceIpOf(req.socket.remoteAddress), userAgent: req.headers['user-agent'] ?? '' },
        requestId: apiGatewayId(),
        routeKey: compiled.routeKey,
        stage: '$default',
        time: apiGatewayTime(now),
        timeEpoch: now,
      },
      ...(body !== undefined ? { body } : {}),
      isBase64Encoded,
    };
    let result: unknown;
    try {
      result = await this.options.invoker.invoke(compiled.route.function, event);
    } catch (err) {
      this.options.logger(`${compiled.routeKey} (${compiled.route.function}) failed: ${(err as Error)?.stack ?? String(err)}`);
      const text = JSON.stringify({ message: 'Internal Server Error' });
      this.options.onRequest?.(compiled.routeKey, raw.length, Buffer.byteLength(text));
      res.writeHead(500, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) }).end(text);
      return;
    }
    const mapped = mapResult(result);
    this.options.onRequest?.(compiled.routeKey, raw.length, mapped.body.length);
    res.writeHead(mapped.status, { ...mapped.headers, 'content-length': String(mapped.body.length) }).end(mapped.body);
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.pending]);
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
