import { connect as netConnect } from 'node:net';
import WebSocket from 'ws';
import { issueClientToken } from '../../lambdas/domain/client-token';

/**
 * A WebSocket client for integration tests: connects like a user would, records every frame,
 * and waits for frames by predicate (never by sleeping).
 */
export type Frame = Record<string, any>;

export const LOCAL_JWT_SECRET = 'local-dev-jwt-secret';

export async function tokenFor(userId: string, deviceId?: string, ttlSeconds = 3600, secret = LOCAL_JWT_SECRET): Promise<string> {
  return (await issueClientToken({ userId, deviceId, ttlSeconds }, secret)).token;
}

export class TestClient {
  readonly frames: Frame[] = [];
  private waiters: Array<{ pred: (f: Frame) => boolean; resolve: (f: Frame) => void }> = [];
  private closed: Promise<{ code: number }>;
  private nextId = 0;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as Frame;
      this.frames.push(frame);
      this.waiters = this.waiters.filter((w) => (w.pred(frame) ? (w.resolve(frame), false) : true));
    });
    this.closed = new Promise((resolve) => socket.on('close', (code) => resolve({ code })));
  }

  static async connect(wsUrl: string, token: string): Promise<TestClient> {
    const socket = new WebSocket(`${wsUrl}/?token=${encodeURIComponent(token)}`);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
      socket.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
    return new TestClient(socket);
  }

  static async as(wsUrl: string, userId: string, deviceId: string): Promise<TestClient> {
    return TestClient.connect(wsUrl, await tokenFor(userId, deviceId));
  }

  get isOpen(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  sendRaw(text: string): void {
    this.socket.send(text);
  }

  /** Resolves with the first recorded or future frame matching `pred`. */
  waitFor(pred: (f: Frame) => boolean, timeoutMs = 10_000, what = 'frame'): Promise<Frame> {
    const seen = this.frames.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${JSON.stringify(this.frames)}`)), timeoutMs);
      this.waiters.push({ pred, resolve: (f) => (clearTimeout(timer), resolve(f)) });
    });
  }

  /** Sends a frame with a fresh `id` (unless given) and waits for the reply that echoes it. */
  async request(frame: Frame, timeoutMs?: number): Promise<Frame> {
    const id = (frame.id as string | undefined) ?? `r${++this.nextId}-${Math.random().toString(36).slice(2, 8)}`;
    this.socket.send(JSON.stringify({ ...frame, id }));
    return this.waitFor((f) => f.id === id && f.type !== 'message', timeoutMs, `reply to ${id}`);
  }

  messages(): Frame[] {
    return this.frames.filter((f) => f.type === 'message');
  }

  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.close();
    await this.closed;
  }

  whenClosed(): Promise<{ code: number }> {
    return this.closed;
  }
}

/** Attempts an upgrade that should be refused; resolves with the HTTP status of the refusal. */
export function refusedUpgradeStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    socket.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      socket.terminate();
    });
    socket.once('open', () => {
      socket.close();
      reject(new Error('upgrade was accepted'));
    });
    socket.once('error', () => undefined);
  });
}

/** Polls `probe` until it returns a value `accept` likes; for state that settles asynchronously. */
export async function eventually<T>(probe: () => Promise<T>, accept: (value: T) => boolean, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T;
  do {
    last = await probe();
    if (accept(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 50));
  } while (Date.now() < deadline);
  throw new Error(`timed out waiting for ${what}; last value ${JSON.stringify(last)}`);
}

/**
 * Sends one raw HTTP/1.1 request (e.g. a malformed WebSocket handshake) to the WebSocket port
 * over a plain TCP socket and resolves with the status code and headers of the answer.
 * `headers` are written as given (name: value), after `Host`.
 */
export function rawHandshake(
  wsUrl: string,
  request: { method?: string; path: string; headers: Record<string, string> },
  timeoutMs = 10_000,
): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const url = new URL(wsUrl);
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: url.hostname, port: Number(url.port) });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to the raw handshake within ${timeoutMs} ms; got ${JSON.stringify(Buffer.concat(chunks).toString('latin1'))}`));
    }, timeoutMs);
    const finish = () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return false;
      const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const at = line.indexOf(':');
        if (at > 0) headers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
      }
      const length = Number(headers['content-length'] ?? 0);
      if (Buffer.byteLength(text.slice(end + 4), 'latin1') < length) return false;
      clearTimeout(timer);
      socket.destroy();
      resolve({ status: Number(statusLine!.split(' ')[1]), headers, body: text.slice(end + 4, end + 4 + length) });
      return true;
    };
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      finish();
    });
    socket.on('end', () => {
      if (!finish()) {
        clearTimeout(timer);
        reject(new Error(`connection ended without a complete answer: ${JSON.stringify(Buffer.concat(chunks).toString('latin1'))}`));
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    const head = Object.entries(request.headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
    socket.write(`${request.method ?? 'GET'} ${request.path} HTTP/1.1\r\nHost: ${url.host}\r\n${head}\r\n`);
  });
}
