import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { checkRateLimit, TokenBucket, type RateLimit } from './token-bucket';

/**
 * The API Gateway Management API (`@connections`), served on the WebSocket port as in AWS's
 * `https://{apiId}.execute-api.{region}.amazonaws.com/{stage}/@connections/{id}`:
 *
 * - `POST /@connections/{id}` (or `/{stage}/@connections/{id}`): the raw body goes to the client
 *   as one text frame; 200 with an empty body. Over 128 KiB: 413 PayloadTooLargeException.
 * - `GET`: `{connectedAt, lastActiveAt, identity: {sourceIp, userAgent}}` (ISO times).
 * - `DELETE`: closes the socket ($disconnect runs), 204.
 * - Unknown or closed id: 410 with `x-amzn-errortype: GoneException`, which the v3 SDK turns
 *   into a `GoneException` (without that header it raises `Unknown`).
 *
 * SigV4 signatures are not checked. The id is URL-encoded by the SDK (`=` -> `%3D`).
 *
 * Fault switch (`ManagementFaults`, off by default): a share of `POST`s fails the way AWS fails
 * them, before anything is delivered. Throttled: 429 with `x-amzn-errortype:
 * LimitExceededException` (the account-wide throttle, or the client's buffer being full);
 * errors: 500 `InternalServerErrorException`. The v3 SDK names the error after that header,
 * so handlers see `LimitExceededException` / `InternalServerErrorException` as in AWS.
 *
 * Rate limit (`ManagementThrottle`, off unless set): API Gateway's account-wide throttle, a
 * token bucket (steady rate + burst) shared by every `@connections` call, POST, GET and DELETE
 * alike. A call that finds the bucket empty is answered like the fault switch's throttle (429
 * `LimitExceededException`) before anything else is looked at, and delivers nothing. Every call
 * is counted (`ManagementStats`), so tests and the benchmark can report the 429s a run met.
 */
export const MAX_POST_BYTES = 128 * 1024;

/** Makes a share of PostToConnection calls fail like AWS; each post draws `random()` once. */
export interface ManagementFaults {
  /** Share of posts answered 429 LimitExceededException (0..1). */
  throttleRatio?: number;
  /** Share of posts answered 500 InternalServerErrorException (0..1). */
  errorRatio?: number;
  /** Default Math.random; tests inject a sequence. */
  random?: () => number;
}

/** Throws on ratios outside 0..1 or adding up to more than 1; returns the faults as given. */
export function checkManagementFaults(faults: ManagementFaults | undefined): ManagementFaults | undefined {
  if (!faults) return undefined;
  const { throttleRatio = 0, errorRatio = 0 } = faults;
  for (const [name, value] of [
    ['throttleRatio', throttleRatio],
    ['errorRatio', errorRatio],
  ] as const) {
    if (!Number.isFinite(value) || value < 0 || value > 1) throw new RangeError(`managementFaults.${name} must be between 0 and 1, got ${value}`);
  }
  if (throttleRatio + errorRatio > 1) throw new RangeError(`managementFaults: throttleRatio + errorRatio must be at most 1, got ${throttleRatio + errorRatio}`);
  return faults;
}

/** The fault a post draws, if any. */
function drawFault(faults: ManagementFaults | undefined): 'throttle' | 'error' | undefined {
  const throttleRatio = faults?.throttleRatio ?? 0;
  const errorRatio = faults?.errorRatio ?? 0;
  if (throttleRatio <= 0 && errorRatio <= 0) return undefined;
  const draw = (faults?.random ?? Math.random)();
  if (draw < throttleRatio) return 'throttle';
  if (draw < throttleRatio + errorRatio) return 'error';
  return undefined;
}

/** Counters of `@connections` calls since the server started; every call has exactly one outcome. */
export interface ManagementStats {
  /** Calls received, by method (throttled ones included). */
  posts: number;
  gets: number;
  deletes: number;
  /** Passed the rate limit and the fault switch (then answered 200/204, 400, 410 or 413). */
  allowed: number;
  /** Answered 429 LimitExceededException: by the rate limit or by the fault switch. */
  throttled: number;
  /** Of `throttled`, those refused by the rate limit (the rest drew the fault switch's throttle). */
  rateLimited: number;
  /** Answered 500 InternalServerErrorException by the fault switch. */
  errors: number;
  /** Posts whose frame was handed to an open socket (200). */
  delivered: number;
  /** Answered 410 GoneException (unknown or closed connection). */
  gone: number;
}

const zeroStats = (): ManagementStats => ({ posts: 0, gets: 0, deletes: 0, allowed: 0, throttled: 0, rateLimited: 0, errors: 0, delivered: 0, gone: 0 });

/**
 * The Management API's rate limit and counters, shared by every request of one server. The
 * limit can change at runtime; a new limit starts with a full bucket.
 */
export class ManagementThrottle {
  private bucket?: TokenBucket;
  private readonly counts = zeroStats();

  constructor(
    limit?: RateLimit,
    private readonly now?: () => number,
  ) {
    this.setLimit(limit);
  }

  /** Sets (or with undefined removes) the limit; throws a RangeError on a bad one. */
  setLimit(limit: RateLimit | undefined): void {
    const checked = checkRateLimit(limit, 'managementRateLimit');
    this.bucket = checked ? new TokenBucket({ ratePerSecond: checked.ratePerSecond, burst: checked.burst }, this.now) : undefined;
  }

  get limit(): RateLimit | undefined {
    return this.bucket?.limit;
  }

  /** Takes a token for one call: false when it must be throttled. */
  admit(): boolean {
    return this.bucket ? this.bucket.tryTake() : true;
  }

  /** Counts one outcome (handleManagementRequest calls it). */
  count(outcome: keyof ManagementStats): void {
    this.counts[outcome]++;
  }

  /** A snapshot of the counters. */
  stats(): ManagementStats {
    return { ...this.counts };
  }
}

export interface ManagedConnection {
  readonly connectionId: string;
  readonly connectedAt: number;
  readonly lastActiveAt: number;
  readonly identity: { sourceIp: string; userAgent: string };
  /** Sends one text frame; rejects when the socket is no longer open. */
  send(text: Buffer): Promise<void>;
  /** Closes the socket from the server side. */
  close(code: number, reason: string): void;
}

export interface ConnectionLookup {
  get(connectionId: string): ManagedConnection | undefined;
}

const PATH = /^(?:\/[^/]+)?\/@connections\/([^/]+)\/?$/;

function reply(res: ServerResponse, status: number, body?: unknown, errorType?: string): void {
  const headers: Record<string, string> = { 'x-amzn-requestid': randomUUID() };
  if (errorType) headers['x-amzn-errortype'] = errorType;
  if (body === undefined) {
    res.writeHead(status, { ...headers, 'content-length': '0' }).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) }).end(text);
}

/** The throttle answer, the same for the rate limit and the fault switch: nothing is delivered. */
function replyThrottled(res: ServerResponse): void {
  reply(res, 429, { message: 'Too Many Requests' }, 'LimitExceededException');
}

/** Reads the body; resolves `undefined` (after draining) when it exceeds `limit` bytes. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) tooLarge = true;
    if (!tooLarge) chunks.push(chunk);
  }
  return tooLarge ? undefined : Buffer.concat(chunks);
}

/**
 * Answers a plain HTTP request on the WebSocket port; `faults` is read per request (it may
 * change at runtime); `throttle` (optional) applies the rate limit and counts every call.
 */
export async function handleManagementRequest(
  req: IncomingMessage,
  res: ServerResponse,
  connections: ConnectionLookup,
  faults?: () => ManagementFaults | undefined,
  throttle?: ManagementThrottle,
): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://local').pathname;
  const match = PATH.exec(path);
  const method = req.method ?? 'GET';
  if (!match || !['POST', 'GET', 'DELETE'].includes(method)) {
    req.resume();
    reply(res, 404, { message: 'Not Found' }, 'NotFoundException');
    return;
  }
  throttle?.count(method === 'POST' ? 'posts' : method === 'GET' ? 'gets' : 'deletes');
  // The account-wide throttle is in front of everything (even a bad id), and takes its token
  // when the call arrives; the body is still drained before the answer.
  if (throttle && !throttle.admit()) {
    if (method === 'POST') await readBody(req, 0);
    else req.resume();
    throttle.count('throttled');
    throttle.count('rateLimited');
    replyThrottled(res);
    return;
  }
  let connectionId: string;
  try {
    connectionId = decodeURIComponent(match[1]!);
  } catch {
    req.resume();
    throttle?.count('allowed');
    reply(res, 400, { message: 'Invalid connection id' }, 'BadRequestException');
    return;
  }
  const body = method === 'POST' ? await readBody(req, MAX_POST_BYTES) : (req.resume(), Buffer.alloc(0));
  if (method === 'POST') {
    // Throttling and internal errors happen in front of everything else, and deliver nothing.
    const fault = drawFault(faults?.());
    if (fault === 'throttle') {
      throttle?.count('throttled');
      replyThrottled(res);
      return;
    }
    if (fault === 'error') {
      throttle?.count('errors');
      reply(res, 500, { message: 'Internal server error' }, 'InternalServerErrorException');
      return;
    }
  }
  throttle?.count('allowed');
  const connection = connections.get(connectionId);
  if (!connection) {
    throttle?.count('gone');
    reply(res, 410, { message: null }, 'GoneException');
    return;
  }
  switch (method) {
    case 'POST':
      if (body === undefined) {
        reply(res, 413, { message: 'Request Too Long' }, 'PayloadTooLargeException');
        return;
      }
      try {
        await connection.send(body);
        throttle?.count('delivered');
        reply(res, 200);
      } catch {
        throttle?.count('gone');
        reply(res, 410, { message: null }, 'GoneException');
      }
      return;
    case 'GET':
      reply(res, 200, {
        connectedAt: new Date(connection.connectedAt).toISOString(),
        lastActiveAt: new Date(connection.lastActiveAt).toISOString(),
        identity: connection.identity,
      });
      return;
    default:
      connection.close(1000, 'Connection closed by the server');
      reply(res, 204);
  }
}
