import { createServer, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import { websocket, type FunctionId, type WebSocketRouteDeclaration } from '../lib/gateway-declaration';
import { apiGatewayId, apiGatewayTime, sourceIpOf } from './api-gateway-ids';
import type { LambdaInvoker } from './lambda-invoker';
import { handleManagementRequest, type ManagedConnection } from './management-api';
import { LOCAL_ACCOUNT_ID, LOCAL_REGION } from './local-names';
import { sleep } from './sleep';

/**
 * API Gateway WebSocket API emulation: the upgrade runs the REQUEST authorizer and `$connect`,
 * each frame is routed on `websocket.routeSelectionExpression`, a closed socket runs
 * `$disconnect`, and plain HTTP requests on the same port are the Management API.
 *
 * No ordering, as in API Gateway: every frame invokes its route on its own, concurrently with
 * the other frames of the same connection, and `$disconnect` does not wait for frames still in
 * flight (in AWS it may run concurrently with them). Clients that need ordering await each reply.
 */
export const MAX_MESSAGE_BYTES = 128 * 1024;
const API_ID = 'local';

export interface WebSocketServerOptions {
  invoker: LambdaInvoker;
  logger: (line: string) => void;
  /** API Gateway closes a connection after 10 idle minutes. */
  idleTimeoutMs?: number;
  /** API Gateway closes every connection after 2 hours. */
  maxConnectionMs?: number;
}

interface AuthorizerResult {
  principalId?: string;
  policyDocument?: { Statement?: Array<{ Effect?: string }> };
  context?: Record<string, unknown>;
}

interface RouteResult {
  statusCode?: number;
  body?: unknown;
}

class LocalConnection implements ManagedConnection {
  lastActiveAt: number;
  idleTimer?: NodeJS.Timeout;
  maxTimer?: NodeJS.Timeout;

  constructor(
    readonly connectionId: string,
    readonly connectedAt: number,
    readonly identity: { sourceIp: string; userAgent: string },
    readonly domainName: string,
    readonly authorizer: Record<string, unknown>,
    readonly socket: WebSocket,
    private readonly onActivity: () => void,
  ) {
    this.lastActiveAt = connectedAt;
  }

  touch(): void {
    this.lastActiveAt = Date.now();
    this.onActivity();
  }

  send(text: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.socket.readyState !== WebSocket.OPEN) {
        reject(new Error('connection is not open'));
        return;
      }
      this.socket.send(text, { binary: false }, (err) => (err ? reject(err) : resolve()));
      this.touch();
    });
  }

  close(code: number, reason: string): void {
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.close(code, reason);
  }
}

/** `{"a":["1","2"]}` style from a raw header list, keeping the client's header-name casing like API Gateway. */
function headersOf(req: IncomingMessage) {
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    const value = req.rawHeaders[i + 1]!;
    headers[name] = value;
    (multiValueHeaders[name] ??= []).push(value);
  }
  return { headers, multiValueHeaders };
}

function queryOf(url: URL) {
  if ([...url.searchParams.keys()].length === 0) return {};
  const queryStringParameters: Record<string, string> = {};
  const multiValueQueryStringParameters: Record<string, string[]> = {};
  for (const [name, value] of url.searchParams) {
    queryStringParameters[name] = value;
    (multiValueQueryStringParameters[name] ??= []).push(value);
  }
  return { queryStringParameters, multiValueQueryStringParameters };
}

/** `$request.body.action` -> ['action']. */
function selectionPath(expression: string): string[] {
  const prefix = '$request.body.';
  if (!expression.startsWith(prefix)) throw new Error(`unsupported routeSelectionExpression ${expression}`);
  return expression.slice(prefix.length).split('.');
}

function refuse(socket: Duplex, status: number, message: string): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({ message });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n` +
      `x-amzn-RequestId: ${apiGatewayId()}\r\n\r\n${body}`,
  );
  setTimeout(() => socket.destroy(), 1000).unref();
}

export class LocalWebSocketServer {
  readonly server: Server;
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES, perMessageDeflate: false });
  private readonly connections = new Map<string, LocalConnection>();
  /** $connect/$disconnect and frame work still running, so stop() can wait for it. */
  private readonly pending = new Set<Promise<unknown>>();
  private readonly routes = new Map<string, WebSocketRouteDeclaration>();
  private readonly selection = selectionPath(websocket.routeSelectionExpression);
  private readonly idleTimeoutMs: number;
  private readonly maxConnectionMs: number;
  private stopping = false;

  constructor(private readonly options: WebSocketServerOptions) {
    for (const route of websocket.routes) this.routes.set(route.routeKey, route);
    this.idleTimeoutMs = options.idleTimeoutMs ?? 10 * 60_000;
    this.maxConnectionMs = options.maxConnectionMs ?? 2 * 60 * 60_000;
    this.server = createServer((req, res) => {
      handleManagementRequest(req, res, this.connections).catch((err: Error) => {
        this.options.logger(`management API error: ${err.message}`);
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', () => undefined);
      this.track(this.upgrade(req, socket, head));
    });
  }

  /** Open connections (by id), for tests and diagnostics. */
  get openConnectionIds(): string[] {
    return [...this.connections.keys()];
  }

  private track<T>(work: Promise<T>): Promise<T> {
    this.pending.add(work);
    const done = () => this.pending.delete(work);
    work.then(done, done);
    return work;
  }

  private invoke<R>(id: FunctionId, event: unknown): Promise<R> {
    return this.options.invoker.invoke<R>(id, event);
  }

  private domainNameOf(req: IncomingMessage): string {
    const address = this.server.address();
    return req.headers.host ?? (address && typeof address !== 'string' ? `127.0.0.1:${address.port}` : '127.0.0.1');
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    if (this.stopping) return refuse(socket, 503, 'Service Unavailable');
    const url = new URL(req.url ?? '/', 'http://local');
    const token = url.searchParams.get(websocket.authorizer.queryParameter);
    // API Gateway answers 401 itself, without calling the authorizer, when the identity source is missing.
    if (!token) return refuse(socket, 401, 'Unauthorized');

    const now = Date.now();
    const connectionId = this.newConnectionId();
    const requestId = apiGatewayId();
    const domainName = this.domainNameOf(req);
    const identity = { sourceIp: sourceIpOf(req.socket.remoteAddress), userAgent: req.headers['user-agent'] ?? '' };
    const { headers, multiValueHeaders } = headersOf(req);
    const query = queryOf(url);
    const baseContext = {
      routeKey: '$connect',
      eventType: 'CONNECT',
      extendedRequestId: requestId,
      requestTime: apiGatewayTime(now),
      messageDirection: 'IN',
      stage: websocket.stageName,
      connectedAt: now,
      requestTimeEpoch: now,
      identity,
      requestId,
      domainName,
      connectionId,
      apiId: API_ID,
    };

    let authorization: AuthorizerResult;
    try {
      authorization = await this.invoke<AuthorizerResult>(websocket.authorizer.function, {
        type: 'REQUEST',
        methodArn: `arn:aws:execute-api:${LOCAL_REGION}:${LOCAL_ACCOUNT_ID}:${API_ID}/${websocket.stageName}/$connect`,
        headers,
        multiValueHeaders,
        ...query,
        stageVariables: {},
        requestContext: baseContext,
      });
    } catch (err) {
      if (err instanceof Error && err.message === 'Unauthorized') return refuse(socket, 401, 'Unauthorized');
      this.options.logger(`authorizer ${websocket.authorizer.function} failed: ${(err as Error)?.stack ?? String(err)}`);
      return refuse(socket, 500, 'Internal server error');
    }
    const statements = authorization?.policyDocument?.Statement ?? [];
    if (statements.length === 0 || statements.some((s) => s.Effect !== 'Allow')) return refuse(socket, 403, 'Forbidden');
    const authorizer = { ...(authorization.context ?? {}), principalId: authorization.principalId };

    const connectRoute = this.routes.get('$connect');
    if (connectRoute) {
      let status: number;
      try {
        const result = await this.invoke<RouteResult | undefined>(connectRoute.function, {
          headers,
          multiValueHeaders,
          ...query,
          requestContext: { ...baseContext, messageId: undefined, authorizer: { ...authorizer, integrationLatency: 0 } },
          isBase64Encoded: false,
        });
        status = typeof result?.statusCode === 'number' ? result.statusCode : 200;
      } catch (err) {
        this.options.logger(`$connect (${connectRoute.function}) failed: ${(err as Error)?.stack ?? String(err)}`);
        status = 500;
      }
      if (status < 200 || status > 299) return refuse(socket, status, status >= 500 ? 'Internal server error' : (STATUS_CODES[status] ?? 'Error'));
    }
    if (socket.destroyed || this.stopping) {
      // The client left (or we are stopping) while $connect ran: API Gateway still runs $disconnect.
      this.track(this.disconnect({ connectionId, connectedAt: now, identity, domainName, authorizer }, 1006, 'Client left during $connect'));
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, { connectionId, connectedAt: now, identity, domainName, authorizer }));
  }

  private newConnectionId(): string {
    for (;;) {
      const id = apiGatewayId();
      if (!this.connections.has(id)) return id;
    }
  }

  private accept(ws: WebSocket, info: ConnectionInfo): void {
    const connection: LocalConnection = new LocalConnection(info.connectionId, info.connectedAt, info.identity, info.domainName, info.authorizer, ws, () =>
      this.armIdleTimer(connection),
    );
    this.connections.set(info.connectionId, connection);
    this.armIdleTimer(connection);
    connection.maxTimer = setTimeout(() => connection.close(1001, 'Going away'), this.maxConnectionMs);
    ws.on('error', () => undefined); // e.g. a frame over maxPayload: ws closes with 1009 itself
    // Binary frames are decoded as UTF-8 and routed like text (PROTOCOL.md §2 only defines JSON text frames).
    ws.on('message', (data: RawData) => {
      // Larger messages never get here: `maxPayload` makes ws close with 1009, as API Gateway does.
      const text = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      connection.touch();
      // Each frame invokes its route independently, as API Gateway does: no per-connection order.
      this.track(this.onFrame(connection, text.toString('utf8')));
    });
    ws.on('close', (code: number, reason: Buffer) => {
      clearTimeout(connection.idleTimer);
      clearTimeout(connection.maxTimer);
      this.connections.delete(info.connectionId);
      // Not after the frames still in flight: in AWS $disconnect may run concurrently with them.
      this.track(this.disconnect(info, code, reason.toString('utf8')));
    });
  }

  private armIdleTimer(connection: LocalConnection): void {
    clearTimeout(connection.idleTimer);
    connection.idleTimer = setTimeout(() => connection.close(1001, 'Going away'), this.idleTimeoutMs);
  }

  private async onFrame(connection: LocalConnection, body: string): Promise<void> {
    const routeKey = this.selectRoute(body);
    const route = this.routes.get(routeKey);
    const requestId = apiGatewayId();
    const sendText = (text: string) => connection.send(Buffer.from(text)).catch(() => undefined);
    if (!route) {
      await sendText(JSON.stringify({ message: 'Forbidden', connectionId: connection.connectionId, requestId }));
      return;
    }
    const now = Date.now();
    try {
      const result = await this.invoke<RouteResult | string | undefined>(route.function, {
        requestContext: {
          routeKey,
          eventType: 'MESSAGE',
          extendedRequestId: requestId,
          requestTime: apiGatewayTime(now),
          messageId: apiGatewayId(),
          connectionId: connection.connectionId,
          connectedAt: connection.connectedAt,
          requestTimeEpoch: now,
          requestId,
          domainName: connection.domainName,
          stage: websocket.stageName,
          apiId: API_ID,
          messageDirection: 'IN',
          identity: connection.identity,
          authorizer: connection.authorizer,
        },
        body,
        isBase64Encoded: false,
      });
      if (!route.returnResponse) return;
      const reply = typeof result === 'string' ? result : typeof result?.body === 'string' ? result.body : undefined;
      if (reply !== undefined) await sendText(reply);
    } catch (err) {
      this.options.logger(`route ${routeKey} (${route.function}) failed: ${(err as Error)?.stack ?? String(err)}`);
      await sendText(JSON.stringify({ message: 'Internal server error', connectionId: connection.connectionId, requestId }));
    }
  }

  /** A declared action route, else `$default` (non-JSON, no or unknown action, reserved keys). */
  selectRoute(body: string): string {
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch {
      return '$default';
    }
    for (const key of this.selection) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return '$default';
      value = (value as Record<string, unknown>)[key];
    }
    if (typeof value !== 'string' || value.startsWith('$') || !this.routes.has(value)) return '$default';
    return value;
  }

  private async disconnect(info: ConnectionInfo, code: number, reason: string): Promise<void> {
    const route = this.routes.get('$disconnect');
    if (!route) return;
    const now = Date.now();
    const requestId = apiGatewayId();
    try {
      await this.invoke(route.function, {
        headers: { Host: info.domainName, 'x-api-key': '', 'X-Forwarded-For': '', 'x-restapi': '' },
        multiValueHeaders: { Host: [info.domainName], 'x-api-key': [''], 'X-Forwarded-For': [''], 'x-restapi': [''] },
        requestContext: {
          routeKey: '$disconnect',
          disconnectStatusCode: code,
          eventType: 'DISCONNECT',
          extendedRequestId: requestId,
          requestTime: apiGatewayTime(now),
          messageDirection: 'IN',
          disconnectReason: reason,
          stage: websocket.stageName,
          connectedAt: info.connectedAt,
          requestTimeEpoch: now,
          identity: info.identity,
          requestId,
          domainName: info.domainName,
          connectionId: info.connectionId,
          apiId: API_ID,
          authorizer: info.authorizer,
        },
        isBase64Encoded: false,
      });
    } catch (err) {
      this.options.logger(`$disconnect (${route.function}) failed: ${(err as Error)?.stack ?? String(err)}`);
    }
  }

  /** Closes every socket (1001), waits (bounded) for $disconnect and running frames, closes the server. */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.stopping = true;
    for (const connection of this.connections.values()) connection.close(1001, 'Going away');
    const deadline = Date.now() + timeoutMs;
    // Close handshakes first (their 'close' events queue $disconnect), then the work they queued.
    while ((this.connections.size > 0 || this.pending.size > 0) && Date.now() < deadline) await sleep(25);
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

interface ConnectionInfo {
  connectionId: string;
  connectedAt: number;
  identity: { sourceIp: string; userAgent: string };
  domainName: string;
  authorizer: Record<string, unknown>;
}
