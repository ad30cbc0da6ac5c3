import { createServer, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import { websocket, type FunctionId, type WebSocketRouteDeclaration } from '../lib/gateway-declaration';
import { apiGatewayId, apiGatewayTime, sourceIpOf } from './api-gateway-ids';
import type { LambdaInvoker } from './lambda-invoker';
import {
  checkManagementFaults,
  handleManagementRequest,
  ManagementThrottle,
  type ManagedConnection,
  type ManagementFaults,
  type ManagementStats,
} from './management-api';
import type { RateLimit } from './token-bucket';
import { declaredStageThrottle, StageThrottle, type StageThrottleLimits } from './stage-throttle';
import { LOCAL_ACCOUNT_ID, LOCAL_REGION } from './local-names';
import { sleep } from './sleep';

/**
 * API Gateway WebSocket API emulation: the upgrade runs the REQUEST authorizer and `$connect`,
 * each frame is routed on `websocket.routeSelectionExpression`, a closed socket runs
 * `$disconnect`, and plain HTTP requests on the same port are the Management API.
 *
 * No kinder than API Gateway:
 * - Every frame invokes its route on its own, concurrently with the other frames of the same
 *   connection (API Gateway gives no ordering); `$disconnect` does not wait for frames still
 *   in flight either. Clients that need ordering await each reply.
 * - A connection whose `$connect` succeeded gets exactly one `$disconnect`, whatever happens
 *   next (the client leaves during `$connect` or the handshake, `ws` refuses the upgrade, the
 *   server stops).
 * - The handshake itself (GET, `Upgrade: websocket`, `Sec-WebSocket-Version: 13`, a valid
 *   `Sec-WebSocket-Key`) is checked before the authorizer: a bad one gets 400 and runs nothing.
 * - The identity source is `queryStringParameters.token` of the authorizer event: for a
 *   repeated parameter that is the last value (all values are in multiValueQueryStringParameters).
 * - A binary frame is refused as API Gateway refuses it: the connection is closed with 1003
 *   and no route runs. A message over 128 KiB closes it with 1009 (`maxPayload`), no route runs.
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
  /** Management API faults (429 / 500 on a share of posts); default off. */
  managementFaults?: ManagementFaults;
  /** Management API rate limit (token bucket over POST, GET and DELETE; 429 when empty); default off. */
  managementRateLimit?: RateLimit;
  /** Stage and route throttles of client frames and connects; default the declared ones (as in AWS), `null` for none. */
  stageThrottle?: StageThrottleLimits | null;
  /** Cost meter hooks (local/cost-meter.ts); default none. */
  meter?: WebSocketMeterHooks;
}

/** What the cost meter counts: data frames in and out (route replies and @connections posts), connections. */
export interface WebSocketMeterHooks {
  frameIn(bytes: number): void;
  frameOut(bytes: number): void;
  opened(connectionId: string): void;
  closed(connectionId: string): void;
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
  /** Set once a binary frame was refused: later frames of the closing connection are dropped. */
  refused = false;
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
    private readonly onFrameOut?: (bytes: number) => void,
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
      this.onFrameOut?.(text.length);
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

function refuse(socket: Duplex, status: number, message: string, extraHeaders: Record<string, string> = {}): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({ message });
  const extra = Object.entries(extraHeaders)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n` +
      `x-amzn-RequestId: ${apiGatewayId()}\r\n${extra}\r\n${body}`,
  );
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** RFC 6455 §4.1: 16 random bytes in base64. */
const WEBSOCKET_KEY = /^[+/0-9A-Za-z]{22}==$/;
/** RFC 7230 token characters (a subprotocol name). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * What is wrong with a WebSocket opening handshake (RFC 6455 §4.2.1), or undefined. Checked
 * before the authorizer, so that nothing runs for a request that can never become a
 * connection; it covers everything `ws`'s `handleUpgrade` would refuse (perMessageDeflate is off).
 */
export function handshakeProblem(req: IncomingMessage): { message: string; headers?: Record<string, string> } | undefined {
  if (req.method !== 'GET') return { message: 'Invalid HTTP method' };
  if (req.headers.upgrade?.trim().toLowerCase() !== 'websocket') return { message: 'Invalid Upgrade header' };
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !WEBSOCKET_KEY.test(key.trim())) return { message: 'Missing or invalid Sec-WebSocket-Key header' };
  if (req.headers['sec-websocket-version']?.trim() !== '13') {
    return { message: 'Missing or invalid Sec-WebSocket-Version header', headers: { 'Sec-WebSocket-Version': '13' } };
  }
  const protocols = req.headers['sec-websocket-protocol'];
  if (protocols !== undefined) {
    const names = protocols.split(',').map((name) => name.trim());
    if (names.some((name) => !TOKEN.test(name)) || new Set(names).size !== names.length) return { message: 'Invalid Sec-WebSocket-Protocol header' };
  }
  return undefined;
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
  private managementFaults?: ManagementFaults;
  private readonly managementThrottle: ManagementThrottle;
  private readonly stageThrottle: StageThrottle;

  constructor(private readonly options: WebSocketServerOptions) {
    this.stageThrottle = new StageThrottle(options.stageThrottle === undefined ? declaredStageThrottle() : (options.stageThrottle ?? undefined));
    this.managementFaults = checkManagementFaults(options.managementFaults);
    this.managementThrottle = new ManagementThrottle(options.managementRateLimit);
    for (const route of websocket.routes) this.routes.set(route.routeKey, route);
    this.idleTimeoutMs = options.idleTimeoutMs ?? 10 * 60_000;
    this.maxConnectionMs = options.maxConnectionMs ?? 2 * 60 * 60_000;
    this.server = createServer((req, res) => {
      handleManagementRequest(req, res, this.connections, () => this.managementFaults, this.managementThrottle).catch((err: Error) => {
        this.options.logger(`management API error: ${err.message}`);
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', () => undefined);
      this.track(this.upgrade(req, socket, head));
    });
  }

  /** Turns the Management API fault switch on (or off with undefined), effective for the next request. */
  setManagementFaults(faults: ManagementFaults | undefined): void {
    this.managementFaults = checkManagementFaults(faults);
  }

  /** Sets, changes or (undefined) removes the Management API rate limit; a new limit starts with a full bucket. */
  setManagementRateLimit(limit: RateLimit | undefined): void {
    this.managementThrottle.setLimit(limit);
  }

  /** Replaces the stage and route throttles (full buckets); undefined for none. */
  setStageThrottle(limits: StageThrottleLimits | undefined): void {
    this.stageThrottle.set(limits);
  }

  /** Client frames and connects admitted and throttled by the stage throttles since start. */
  stageThrottleStats(): { admitted: number; throttled: number } {
    return this.stageThrottle.stats();
  }

  /** Counters of Management API calls since start (a snapshot). */
  managementStats(): ManagementStats {
    return this.managementThrottle.stats();
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
    // A request that is no WebSocket handshake never reaches the authorizer or $connect.
    const problem = handshakeProblem(req);
    if (problem) return refuse(socket, 400, problem.message, problem.headers);
    const url = new URL(req.url ?? '/', 'http://local');
    const query = queryOf(url);
    // The identity source is the very value the authorizer receives: queryStringParameters.token,
    // which for a repeated parameter is the last one. API Gateway answers 401 itself, without
    // calling the authorizer, when it is missing or empty.
    const token = query.queryStringParameters?.[websocket.authorizer.queryParameter];
    if (!token) return refuse(socket, 401, 'Unauthorized');
    if (!this.stageThrottle.admit('$connect')) return refuse(socket, 429, 'Too Many Requests');

    const now = Date.now();
    const connectionId = this.newConnectionId();
    const requestId = apiGatewayId();
    const domainName = this.domainNameOf(req);
    const identity = { sourceIp: sourceIpOf(req.socket.remoteAddress), userAgent: req.headers['user-agent'] ?? '' };
    const { headers, multiValueHeaders } = headersOf(req);
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
    // From here on the connection owes exactly one $disconnect, whatever happens.
    const session: Session = { connectionId, connectedAt: now, identity, domainName, authorizer, disconnected: false };
    await this.completeHandshake(req, socket, head, session);
  }

  /**
   * Hands the socket to `ws`. Resolves once the connection is open (its `close` event then runs
   * $disconnect) or, if it never opens, once its $disconnect has been started: the client left
   * during $connect, the raw socket closed before or while `ws` took it, `ws` refused the
   * upgrade (it then ends or destroys the socket without calling back), or the server is stopping.
   */
  private completeHandshake(req: IncomingMessage, socket: Duplex, head: Buffer, session: Session): Promise<void> {
    return new Promise<void>((resolve) => {
      let accepted = false;
      const lost = (reason: string) => {
        if (accepted) return;
        socket.off('close', onClose);
        this.disconnectOnce(session, 1006, reason);
        resolve();
      };
      const onClose = () => lost('Connection lost during the handshake');
      socket.once('close', onClose);
      if (socket.destroyed || !socket.readable || !socket.writable) {
        socket.destroy();
        return lost('Client left during $connect');
      }
      if (this.stopping) {
        refuse(socket, 503, 'Service Unavailable');
        return lost('Server stopping during $connect');
      }
      try {
        this.wss.handleUpgrade(req, socket, head, (ws) => {
          accepted = true;
          socket.off('close', onClose);
          this.accept(ws, session);
          resolve();
        });
      } catch (err) {
        this.options.logger(`handshake of ${session.connectionId} failed: ${(err as Error)?.stack ?? String(err)}`);
        socket.destroy();
        return lost('Handshake failed');
      }
      // Refused by ws: it ends or destroys the socket itself; make sure it does close.
      if (!accepted) setTimeout(() => socket.destroy(), 1000).unref();
    });
  }

  private newConnectionId(): string {
    for (;;) {
      const id = apiGatewayId();
      if (!this.connections.has(id)) return id;
    }
  }

  private accept(ws: WebSocket, session: Session): void {
    const connection: LocalConnection = new LocalConnection(
      session.connectionId,
      session.connectedAt,
      session.identity,
      session.domainName,
      session.authorizer,
      ws,
      () => this.armIdleTimer(connection),
      this.options.meter ? (bytes) => this.options.meter?.frameOut(bytes) : undefined,
    );
    this.connections.set(session.connectionId, connection);
    this.options.meter?.opened(session.connectionId);
    this.armIdleTimer(connection);
    connection.maxTimer = setTimeout(() => connection.close(1001, 'Going away'), this.maxConnectionMs);
    ws.on('error', () => undefined); // e.g. a frame over maxPayload: ws closes with 1009 itself
    ws.on('message', (data: RawData, isBinary: boolean) => {
      // Larger messages never get here: `maxPayload` makes ws close with 1009, as API Gateway does.
      if (connection.refused) return;
      connection.touch();
      if (!isBinary) this.options.meter?.frameIn(Buffer.isBuffer(data) ? data.length : Array.isArray(data) ? data.reduce((n, c) => n + c.length, 0) : data.byteLength);
      if (isBinary) {
        // API Gateway does not accept binary frames: it closes the connection with 1003 and
        // invokes no route (never decode the bytes as text).
        connection.refused = true;
        connection.close(1003, 'Binary frames are not supported');
        return;
      }
      const text = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      // Each frame invokes its route independently, as API Gateway does: no per-connection order.
      this.track(this.onFrame(connection, text.toString('utf8')));
    });
    ws.on('close', (code: number, reason: Buffer) => {
      clearTimeout(connection.idleTimer);
      clearTimeout(connection.maxTimer);
      this.connections.delete(session.connectionId);
      this.options.meter?.closed(session.connectionId);
      // Not after the frames still in flight: in AWS $disconnect may run concurrently with them.
      this.disconnectOnce(session, code, reason.toString('utf8'));
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
    // Throttled: API Gateway answers for itself and invokes nothing.
    if (!this.stageThrottle.admit(routeKey)) {
      await sendText(JSON.stringify({ message: 'Too Many Requests', connectionId: connection.connectionId, requestId }));
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

  /** Starts the one $disconnect of a connection (tracked for stop()); later calls do nothing. */
  private disconnectOnce(session: Session, code: number, reason: string): void {
    if (session.disconnected) return;
    session.disconnected = true;
    this.track(this.disconnect(session, code, reason));
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

  /**
   * Closes every socket (1001), waits (bounded) for the close handshakes, the $disconnect they
   * start, upgrades still in progress (they end in $disconnect) and running frames, then closes
   * the server. Sockets that did not finish their close handshake in time are terminated, and
   * their $disconnect is waited for too (bounded again).
   */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.stopping = true;
    for (const connection of this.connections.values()) connection.close(1001, 'Going away');
    const busy = () => this.connections.size > 0 || this.wss.clients.size > 0 || this.pending.size > 0;
    let deadline = Date.now() + timeoutMs;
    while (busy() && Date.now() < deadline) await sleep(25);
    if (busy()) {
      for (const ws of this.wss.clients) ws.terminate();
      deadline = Date.now() + timeoutMs;
      while (busy() && Date.now() < deadline) await sleep(25);
    }
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

/** A connection whose $connect succeeded: it owes exactly one $disconnect. */
interface Session extends ConnectionInfo {
  disconnected: boolean;
}
