import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { issueClientToken } from '../lambdas/domain/client-token';

/**
 * One benchmark connection. Unlike the test client it keeps no frame log: it stamps each
 * pushed `message` frame with the receive time (this process's monotonic clock, the same
 * clock the sender stamps with, so end-to-end latency needs no clock sync) and matches
 * replies to requests by the echoed `id`.
 */
export type Frame = Record<string, any>;

export interface Reply {
  frame: Frame;
  sentAtMs: number;
  repliedAtMs: number;
}

interface PendingRequest {
  sentAtMs: number;
  resolve: (reply: Reply) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export const nowMs = (): number => performance.now();

export class BenchClient {
  /** msgId -> receive times of every `message` frame carrying it (more than one = duplicate). */
  readonly received = new Map<string, number[]>();
  /** Frames that were neither a message nor the reply to a pending request. */
  strayFrames = 0;
  /** Called with every `message` frame and its receive time (after it is counted in `received`). */
  onMessage?: (frame: Frame, atMs: number) => void;
  private readonly pending = new Map<string, PendingRequest>();
  private requestCount = 0;

  private constructor(
    readonly userId: string,
    readonly deviceId: string,
    private readonly socket: WebSocket,
  ) {
    socket.on('message', (data) => this.onFrame(data.toString(), nowMs()));
    socket.on('close', () => this.failPending(new Error(`${this.key} closed`)));
  }

  get key(): string {
    return `${this.userId}/${this.deviceId}`;
  }

  static async connect(wsUrl: string, userId: string, deviceId: string, jwtSecret: string, timeoutMs: number): Promise<BenchClient> {
    const { token } = await issueClientToken({ userId, deviceId, ttlSeconds: 3600 }, jwtSecret);
    const socket = new WebSocket(`${wsUrl}/?token=${encodeURIComponent(token)}`);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`connect ${userId}/${deviceId}: no open after ${timeoutMs} ms`)), timeoutMs);
      socket.once('open', () => (clearTimeout(timer), resolve()));
      socket.once('error', (err) => (clearTimeout(timer), reject(err)));
      socket.once('unexpected-response', (_req, res) => (clearTimeout(timer), reject(new Error(`upgrade refused: ${res.statusCode}`))));
    });
    return new BenchClient(userId, deviceId, socket);
  }

  /** Sends `frame` with a fresh `id` and resolves with the reply that echoes it. */
  request(frame: Frame, timeoutMs: number): Promise<Reply> {
    const id = `${this.deviceId}-r${++this.requestCount}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.key}: no reply to ${frame.action} ${id} after ${timeoutMs} ms`));
      }, timeoutMs);
      const sentAtMs = nowMs();
      this.pending.set(id, { sentAtMs, resolve, reject, timer });
      this.socket.send(JSON.stringify({ ...frame, id }));
    });
  }

  /** Closes without waiting for the close handshake (the gateway is stopped right after). */
  terminate(): void {
    this.socket.terminate();
  }

  private onFrame(text: string, atMs: number): void {
    const frame = JSON.parse(text) as Frame;
    if (frame.type === 'message' && typeof frame.msgId === 'string') {
      const times = this.received.get(frame.msgId);
      if (times) times.push(atMs);
      else this.received.set(frame.msgId, [atMs]);
      this.onMessage?.(frame, atMs);
      return;
    }
    const request = typeof frame.id === 'string' ? this.pending.get(frame.id) : undefined;
    if (!request) {
      this.strayFrames++;
      return;
    }
    this.pending.delete(frame.id);
    clearTimeout(request.timer);
    request.resolve({ frame, sentAtMs: request.sentAtMs, repliedAtMs: atMs });
  }

  private failPending(err: Error): void {
    for (const [id, request] of this.pending) {
      clearTimeout(request.timer);
      this.pending.delete(id);
      request.reject(err);
    }
  }
}
