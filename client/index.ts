/**
 * wxgate/client: a WebSocket client for wxgate that survives drops and never loses an acked
 * message (docs/client.md). No dependencies; browsers use the platform WebSocket, Node passes one
 * in (`ws`). The contract it follows is docs/protocol.md: §2 frames, §3.3 the resume rule.
 */
import { backoffDelay } from './backoff';
import { SeenIds } from './seen';

/** What the client needs of a WebSocket: the browser's, `ws`'s, or a test double. */
export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export type Target = { user: string } | { group: string } | { wechat: { accountId: string; openId: string } };

/** A `message` frame (docs/protocol.md §2.2). */
export interface Message {
  type: 'message';
  msgId: string;
  from: string;
  to: Target | { push: 'users' | 'all' };
  body: unknown;
  ts: number;
}

/** A `status` frame: the outcome of a reply to a WeChat user. */
export interface Status {
  type: 'status';
  msgId: string;
  state: 'sent' | 'failed';
  errcode?: number;
  message?: string;
}

export interface Ack {
  /** The client id the send carried (retries carry the same). */
  id: string;
  msgId: string;
  ts: number;
}

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface StateChange {
  state: ConnectionState;
  /** Why: e.g. `closed (1006)`, `heartbeat timeout`, `renew` (the proactive 2-hour reconnect). */
  reason?: string;
  /** reconnecting: the wait before the next attempt, and its number (1, 2, …). */
  delayMs?: number;
  attempt?: number;
}

/** Where the resume cursor lives between page loads; default: memory. */
export interface CursorStore {
  get(): string | null | undefined | Promise<string | null | undefined>;
  set(cursor: string): void | Promise<void>;
}

/** Time source and timers; tests inject a fake one. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface ClientOptions {
  /** The WebSocket API URL: `wss://{api}.execute-api.{region}.amazonaws.com/live`, locally `ws://127.0.0.1:3001`. */
  url: string;
  /** A client token, or a function called before every (re)connect so expired tokens renew. */
  token: string | (() => string | Promise<string>);
  /** A WebSocket constructor; default the platform's (`globalThis.WebSocket`). In Node 20 pass `ws`'s. */
  WebSocket?: WebSocketConstructor;
  /** Keeps the resume cursor (e.g. `storageCursorStore(localStorage, 'wxgate:' + user)`); default memory. */
  store?: CursorStore;
  /** `ping` every … ms (API Gateway drops sockets idle for 10 minutes). Default 240000. */
  pingIntervalMs?: number;
  /** Reconnect when nothing at all arrived within … ms of a ping. Default 15000. */
  pongTimeoutMs?: number;
  /** A send without ack, or a sync page without reply, is asked again after … ms. Default 10000. */
  requestTimeoutMs?: number;
  /** A send not acked … ms after its first transmission rejects with `timeout`; keep it under 5 minutes (the gateway's de-duplication window). Default 240000. */
  sendTimeoutMs?: number;
  /** At most … sends wait for a connection; more reject with `queue_full`. Default 100. */
  queueLimit?: number;
  /** Reconnect backoff: attempt n waits random [0, min(max, base · 2^n)). Defaults 500 and 30000. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** A connection open this long resets the backoff. Default 30000. */
  stableMs?: number;
  /** Renew the connection (new socket first, then the old one closes) after … ms; API Gateway closes at 2 h. Default 6600000 (1 h 50 min). */
  maxConnectionMs?: number;
  /** While connected, `sync` again every … ms: picks up messages whose live push was lost and moves the cursor on. 0 = never. Default 600000. */
  resyncIntervalMs?: number;
  /**
   * For … ms after a socket opens, live messages are held until a `sync` returns them (asked
   * again after 250 ms, 500 ms, 1 s, then every 2 s while some are held), so they reach the application in stored
   * order: messages acked before the connect are pushed by the persister once stored, and would
   * otherwise arrive after newer ones the send route pushes at once. 0 = hand out live messages
   * as they come after the resume. Default 10000.
   */
  catchUpMs?: number;
  /** Messages per sync page (1–500). Default 100. */
  syncLimit?: number;
  /** msgIds remembered for de-duplication, at most. Default 10000. */
  dedupeCapacity?: number;
  /** How long a live push may be repeated by the gateway's retries. Default 1800000 (30 min). */
  dedupeWindowMs?: number;
  random?: () => number;
  clock?: Clock;
}

export interface ClientEvents {
  message: Message;
  state: StateChange;
  status: Status;
  error: WxgateError;
  /** A resume run reached the end of the inbox (`next` null). */
  synced: { cursor: string };
}

/**
 * A refused send (`code` from the gateway: bad_request, forbidden, too_large, rate_limited, …),
 * or the client's own: `closed`, `queue_full`, `timeout` (no ack in time: the message may or may
 * not have been stored), and, on the `error` event, `token`, `store`, `throttled`, `bad_cursor`,
 * `dedupe_overflow`.
 */
export class WxgateError extends Error {
  readonly code: string;
  readonly retryAfterMs?: number;
  constructor(code: string, message: string, retryAfterMs?: number) {
    super(message);
    this.name = 'WxgateError';
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
}

/** A cursor store over `localStorage`/`sessionStorage` (or anything with getItem/setItem). */
export const storageCursorStore = (
  storage: { getItem(key: string): string | null; setItem(key: string, value: string): void },
  key: string,
): CursorStore => ({ get: () => storage.getItem(key), set: (cursor) => storage.setItem(key, cursor) });

/** Overlap of a resume: RESUME_OVERLAP_MS (60 s) plus a margin for the client's clock rate. */
const OVERLAP_MS = 120_000;

const DEFAULTS = {
  pingIntervalMs: 240_000,
  pongTimeoutMs: 15_000,
  requestTimeoutMs: 10_000,
  sendTimeoutMs: 240_000,
  queueLimit: 100,
  backoffBaseMs: 500,
  backoffMaxMs: 30_000,
  stableMs: 30_000,
  maxConnectionMs: 6_600_000,
  resyncIntervalMs: 600_000,
  catchUpMs: 10_000,
  syncLimit: 100,
  dedupeCapacity: 10_000,
  dedupeWindowMs: 1_800_000,
};

type Frame = Record<string, any>;
type Handle = unknown;

interface Sock {
  ws: WebSocketLike;
  open?: boolean;
  dead?: boolean;
  at?: number;
  hb?: Handle;
  pong?: Handle;
  age?: Handle;
  rs?: Handle;
}

interface Pending {
  id: string;
  text: string;
  ok: (ack: Ack) => void;
  ko: (error: WxgateError) => void;
  /** Set while a copy is in flight on that socket. */
  sock?: Sock;
  /** Ack timeout, or the wait before a retry. */
  timer?: Handle;
  deadline?: Handle;
  /** Transmitted at least once. */
  tx?: boolean;
  internal: number;
}

const g = globalThis as any;

export class WxgateClient {
  private readonly o: typeof DEFAULTS & { url: string; token: ClientOptions['token']; store: CursorStore; random: () => number };
  private readonly WS: WebSocketConstructor;
  private readonly c: Clock;
  private st: ConnectionState = 'idle';
  /** The primary socket, and the renewal candidate. */
  private ws?: Sock;
  private next?: Sock;
  private readonly socks = new Set<Sock>();
  private attempt = 0;
  private renews = 0;
  private throttles = 0;
  private readonly sends = new Map<string, Pending>();
  private readonly reqs = new Map<string, { s: Sock; done: (f?: Frame) => void }>();
  private readonly seen: SeenIds;
  /** Live messages held while a resume run is in progress. */
  private held?: Message[];
  private run?: object;
  /** Catch-up: until when live messages wait for a sync, the next follow-up's delay, and its timer. */
  private until = 0;
  private step = 0;
  private fu?: Handle;
  private cur?: string;
  private loaded = false;
  private warned = false;
  private readonly timers = new Set<Handle>();
  private readonly ls: Record<string, Array<(e: any) => void>> = {};
  private n = 0;

  constructor(options: ClientOptions) {
    const o: any = { ...DEFAULTS, store: memoryStore(), random: Math.random };
    for (const [k, v] of Object.entries(options)) if (v !== undefined) o[k] = v;
    this.o = o;
    this.WS = options.WebSocket ?? g.WebSocket;
    if (!this.WS) throw new TypeError('wxgate: no WebSocket here; pass options.WebSocket (in Node: `ws`)');
    this.c = options.clock ?? { now: () => Date.now(), setTimeout: (f, ms) => g.setTimeout(f, ms), clearTimeout: (h) => g.clearTimeout(h) };
    this.seen = new SeenIds(this.o.dedupeCapacity, this.o.dedupeWindowMs, () => {
      if (!this.warned) this.fail('dedupe_overflow', `more than ${this.o.dedupeCapacity} msgIds could still recur; a duplicate may reach the application`);
      this.warned = true;
    });
  }

  get state(): ConnectionState {
    return this.st;
  }

  /** The cursor of the last sync reply (the resume point). */
  get cursor(): string | undefined {
    return this.cur;
  }

  on<K extends keyof ClientEvents>(type: K, listener: (event: ClientEvents[K]) => void): () => void {
    (this.ls[type] ??= []).push(listener);
    return () => this.off(type, listener);
  }

  off<K extends keyof ClientEvents>(type: K, listener: (event: ClientEvents[K]) => void): void {
    const list = this.ls[type];
    if (list) list.splice(list.indexOf(listener) >>> 0, 1);
  }

  /** Starts connecting (once; a closed client stays closed). */
  connect(): this {
    if (this.st === 'idle') void this.dial(false);
    return this;
  }

  /**
   * Sends `body` to `to` (a user id, or `{user}`, `{group}`, `{wechat}`). Resolves with the ack;
   * rejects with a WxgateError. Retried with the same `id` until acked (never delivered twice).
   */
  send(to: Target | string, body: unknown, options: { id?: string } = {}): Promise<Ack> {
    return new Promise((ok, ko) => {
      const id = options.id ?? this.rid('c');
      if (this.st === 'closed') return ko(new WxgateError('closed', 'the client is closed'));
      if (this.sends.has(id)) return ko(new WxgateError('bad_request', `a send with id ${id} is already pending`));
      let text: string;
      try {
        text = JSON.stringify({ action: 'send', id, to: typeof to === 'string' ? { user: to } : to, body });
      } catch (e) {
        return ko(new WxgateError('bad_request', `body is not JSON: ${(e as Error).message}`));
      }
      if (!this.ws?.open && [...this.sends.values()].filter((p) => !p.sock).length >= this.o.queueLimit) {
        return ko(new WxgateError('queue_full', `${this.o.queueLimit} sends are already waiting for a connection`));
      }
      const p: Pending = { id, text, ok, ko, internal: 0 };
      this.sends.set(id, p);
      const ms = this.o.sendTimeoutMs;
      p.deadline = this.after(ms, () =>
        this.settle(p, new WxgateError('timeout', p.tx ? `no ack within ${ms} ms; the message may or may not have been stored` : `not sent: no connection within ${ms} ms`)),
      );
      this.transmit(p);
    });
  }

  /** Stops timers and sockets; every pending send rejects with `closed`. Held live messages are handed out first. */
  close(): void {
    if (this.st === 'closed') return;
    this.st = 'closed';
    this.run = undefined;
    this.release();
    for (const t of this.timers) this.c.clearTimeout(t);
    this.timers.clear();
    for (const s of this.socks) this.kill(s);
    for (const r of [...this.reqs.values()]) r.done();
    for (const p of [...this.sends.values()]) this.settle(p, new WxgateError('closed', 'the client was closed before the ack'));
    this.emit('state', { state: 'closed' });
  }

  // ---- connection ----

  private async dial(renew: boolean): Promise<void> {
    if (!renew) this.set('connecting');
    let url: string;
    try {
      const t = this.o.token;
      const token = typeof t === 'function' ? await t() : t;
      const u = this.o.url.replace(/\/+$/, '');
      url = `${u}${/\/\/[^/]*$/.test(u) ? '/' : ''}?token=${encodeURIComponent(token)}`;
    } catch (e) {
      if (this.st === 'closed') return;
      this.fail('token', `the token provider failed: ${(e as Error)?.message ?? e}`);
      return renew ? this.renewLater() : this.retry('token provider failed');
    }
    if (!this.loaded) {
      try {
        this.cur ??= (await this.o.store.get()) ?? undefined;
      } catch (e) {
        this.fail('store', `the cursor store failed: ${(e as Error)?.message ?? e}`);
      }
      this.loaded = true;
    }
    if (this.st === 'closed' || (renew ? !this.ws || this.next : this.ws)) return;
    let ws: WebSocketLike;
    try {
      ws = new this.WS(url);
    } catch (e) {
      this.fail('connect', `cannot open a WebSocket: ${(e as Error)?.message ?? e}`);
      return renew ? this.renewLater() : this.retry('cannot open a WebSocket');
    }
    const s: Sock = { ws };
    this.socks.add(s);
    if (renew) this.next = s;
    else this.ws = s;
    ws.onopen = () => this.opened(s);
    ws.onmessage = (e) => this.frame(s, e?.data);
    ws.onclose = (e) => this.lost(s, `closed (${e?.code ?? ''}${e?.reason ? ` ${e.reason}` : ''})`);
    ws.onerror = () => undefined;
  }

  private opened(s: Sock): void {
    if (s !== this.ws && s !== this.next) return this.kill(s);
    s.open = true;
    s.at = this.c.now();
    this.until = s.at + this.o.catchUpMs;
    this.step = 250;
    this.after(this.o.catchUpMs, () => {
      if (!this.run && this.ws?.open && this.c.now() >= this.until) this.release();
    });
    if (s === this.ws) this.primary(s);
    void this.resume(s);
  }

  private primary(s: Sock, reason?: string): void {
    this.ws = s;
    this.set('open', reason ? { reason } : undefined);
    this.beat(s);
    s.age = this.after(Math.max(0, this.o.maxConnectionMs - (this.c.now() - s.at!)), () => {
      if (this.ws === s && !this.next) void this.dial(true);
    });
    this.flush();
  }

  private beat(s: Sock): void {
    s.hb = this.after(this.o.pingIntervalMs, () => {
      this.probe(s);
      this.beat(s);
    });
  }

  /** A ping; the socket is abandoned if nothing at all arrives within pongTimeoutMs. */
  private probe(s: Sock): void {
    if (s.dead) return;
    this.write(s, { action: 'ping', id: this.rid('p') });
    s.pong ??= this.after(this.o.pongTimeoutMs, () => this.kill(s, 'heartbeat timeout'));
  }

  /** Abandons a socket now (its close handshake may never finish on a dead network). */
  private kill(s: Sock, reason = 'closed by the client'): void {
    const ws = s.ws;
    ws.onopen = ws.onmessage = ws.onclose = null;
    try {
      ws.close(1000);
    } catch {
      // already closed
    }
    this.lost(s, reason);
  }

  private lost(s: Sock, reason: string): void {
    if (s.dead) return;
    s.dead = true;
    s.open = false;
    this.socks.delete(s);
    for (const t of [s.hb, s.pong, s.age, s.rs]) this.cancel(t);
    for (const r of [...this.reqs.values()]) if (r.s === s) r.done();
    for (const p of this.sends.values()) {
      if (p.sock === s) {
        this.cancel(p.timer);
        p.timer = p.sock = undefined;
      }
    }
    if (this.st === 'closed') return;
    if (s === this.next) {
      this.next = undefined;
      this.renewLater();
    } else if (s === this.ws) {
      this.ws = undefined;
      const n = this.next;
      this.next = undefined;
      if (n?.open) this.primary(n, 'renew');
      else if (n) {
        this.ws = n;
        this.set('connecting', { reason });
      } else this.retry(reason, s);
    }
    this.flush();
  }

  private retry(reason: string, s?: Sock): void {
    if (s?.at !== undefined && this.c.now() - s.at >= this.o.stableMs) this.attempt = 0;
    const delayMs = this.backoff(this.attempt++);
    this.set('reconnecting', { reason, delayMs, attempt: this.attempt });
    this.after(delayMs, () => void this.dial(false));
  }

  private renewLater(): void {
    this.after(this.backoff(this.renews++), () => {
      if (this.ws?.open && !this.next) void this.dial(true);
    });
  }

  // ---- resume (docs/protocol.md §3.3) ----

  private async resume(s: Sock): Promise<void> {
    const run = (this.run = {});
    this.held ??= [];
    this.cancel(s.rs);
    const start = this.c.now();
    let after = this.cur;
    let misses = 0;
    let errors = 0;
    for (;;) {
      const r = await this.request(s, { action: 'sync', after, limit: this.o.syncLimit });
      if (this.run !== run || s.dead) return;
      if (!r) {
        if (++misses > 2) return this.kill(s, 'sync timed out');
        this.probe(s);
        continue;
      }
      if (r.type === 'error') {
        if (r.code === 'bad_request' && after) {
          // A broken or foreign cursor: start over from the oldest message rather than miss any.
          this.fail('bad_cursor', `sync refused the cursor (${r.message}); syncing from the start`);
          after = this.cur = undefined;
          continue;
        }
        this.fail(r.code, `sync: ${r.message}`, r.retryAfterMs);
        await new Promise((wake) => this.after(r.retryAfterMs ?? this.backoff(errors++), () => wake(0)));
        if (this.run !== run || s.dead) return;
        continue;
      }
      for (const m of r.messages ?? []) this.deliver(m);
      if (typeof r.cursor === 'string') {
        this.cur = r.cursor;
        Promise.resolve()
          .then(() => this.o.store.set(r.cursor))
          .catch((e) => this.fail('store', `the cursor store failed: ${e?.message ?? e}`));
      }
      if (!r.next) break;
      after = r.next;
    }
    this.run = undefined;
    this.warned = false;
    this.seen.floor(start - OVERLAP_MS, this.c.now());
    if (this.c.now() < this.until) {
      // Catching up: what is still held was not stored yet; ask again shortly.
      this.held = this.held!.filter((m) => !this.seen.has(m.msgId));
      if (this.held.length) this.follow();
    } else this.release();
    this.emit('synced', { cursor: this.cur! });
    if (s === this.next) {
      const old = this.ws!;
      this.next = undefined;
      this.renews = 0;
      for (const t of [old.hb, old.pong, old.age, old.rs]) this.cancel(t);
      this.primary(s, 'renew');
      // The old socket stays a moment for replies in flight; what it still holds is resent on the new one.
      this.after(this.o.requestTimeoutMs, () => this.kill(old, 'renewed'));
    }
    if (s === this.ws && this.o.resyncIntervalMs > 0) {
      s.rs = this.after(this.o.resyncIntervalMs, () => {
        if (!this.run) void this.resume(s);
      });
    }
  }

  private follow(): void {
    if (this.run || this.fu !== undefined) return;
    this.fu = this.after(Math.min(this.step, Math.max(0, this.until - this.c.now())), () => {
      this.fu = undefined;
      if (!this.run && this.ws?.open && this.held) void this.resume(this.ws);
    });
    this.step = Math.min(this.step * 2, 2000);
  }

  private release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    held.sort((a, b) => (a.msgId < b.msgId ? -1 : a.msgId > b.msgId ? 1 : 0));
    for (const m of held) this.deliver(m);
  }

  private deliver(m: Message): void {
    if (m && typeof m.msgId === 'string' && this.seen.add(m.msgId, this.c.now())) this.emit('message', m);
  }

  private request(s: Sock, frame: Frame): Promise<Frame | undefined> {
    return new Promise((resolve) => {
      const id = this.rid('s');
      const timer = this.after(this.o.requestTimeoutMs, () => done());
      const done = (f?: Frame) => {
        this.cancel(timer);
        this.reqs.delete(id);
        resolve(f);
      };
      this.reqs.set(id, { s, done });
      this.write(s, { ...frame, id });
    });
  }

  // ---- frames ----

  private frame(s: Sock, data: unknown): void {
    let f: Frame;
    try {
      f = JSON.parse(String(data));
    } catch {
      return;
    }
    if (!f || typeof f !== 'object') return;
    // Anything at all proves the socket alive.
    this.cancel(s.pong);
    s.pong = undefined;
    if (f.type === 'message') {
      // A broadcast to everyone is never stored: no sync will return it.
      if (!this.held || f.to?.push === 'all') return this.deliver(f as Message);
      this.held.push(f as Message);
      if (!this.run && this.c.now() < this.until) this.follow();
      return;
    }
    if (f.type === 'status') return this.emit('status', f as Status);
    const r = this.reqs.get(f.id);
    if (r && f.type !== 'pong') return r.done(f);
    const p = this.sends.get(f.id);
    if (p && f.type === 'ack') {
      this.throttles = 0;
      if (typeof f.msgId === 'string') this.seen.add(f.msgId, this.c.now());
      return this.settle(p, undefined, { id: p.id, msgId: f.msgId, ts: f.ts });
    }
    if (p && f.type === 'error') {
      // rate_limited: wait as told (or a moment, when a duplicate of it is still running); internal: the send was not queued, retry a few times.
      if (f.code === 'rate_limited') return this.later(p, f.retryAfterMs ?? 1000);
      if (f.code === 'internal' && ++p.internal < 3) return this.later(p, this.backoff(p.internal));
      return this.settle(p, new WxgateError(f.code, f.message, f.retryAfterMs));
    }
    if (f.type === 'error') return this.fail(f.code, f.message, f.retryAfterMs);
    if (f.type === undefined && typeof f.message === 'string') {
      // API Gateway's own answer ("Too Many Requests", "Internal server error"): the frame was not
      // processed, and it does not say which. Resend what is in flight on this socket, later.
      this.fail('throttled', `the gateway answered "${f.message}"`);
      const attempt = this.throttles++;
      for (const q of this.sends.values()) if (q.sock === s) this.later(q, this.backoff(attempt));
    }
  }

  // ---- sends ----

  private transmit(p: Pending): void {
    const s = this.ws;
    if (!s?.open || p.sock || p.timer !== undefined || this.sends.get(p.id) !== p) return;
    p.sock = s;
    p.tx = true;
    this.write(s, p.text);
    p.timer = this.after(this.o.requestTimeoutMs, () => {
      p.timer = p.sock = undefined;
      this.probe(s);
      this.transmit(p);
    });
  }

  private later(p: Pending, ms: number): void {
    this.cancel(p.timer);
    p.sock = undefined;
    p.timer = this.after(ms, () => {
      p.timer = undefined;
      this.transmit(p);
    });
  }

  private flush(): void {
    for (const p of [...this.sends.values()]) this.transmit(p);
  }

  private settle(p: Pending, error?: WxgateError, ack?: Ack): void {
    if (this.sends.get(p.id) !== p) return;
    this.sends.delete(p.id);
    this.cancel(p.timer);
    this.cancel(p.deadline);
    if (error) p.ko(error);
    else p.ok(ack!);
  }

  // ---- plumbing ----

  private write(s: Sock, frame: Frame | string): void {
    try {
      s.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
    } catch {
      // a closing socket: its close event follows, and what was in flight is resent
    }
  }

  private backoff(attempt: number): number {
    return backoffDelay(attempt, this.o.backoffBaseMs, this.o.backoffMaxMs, this.o.random);
  }

  private rid(kind: string): string {
    const c = g.crypto;
    return `${kind}${c?.randomUUID ? c.randomUUID() : `${Math.random().toString(36).slice(2)}${this.c.now().toString(36)}`}-${++this.n}`;
  }

  private after(ms: number, fn: () => void): Handle {
    const h = this.c.setTimeout(() => {
      this.timers.delete(h);
      fn();
    }, ms);
    this.timers.add(h);
    return h;
  }

  private cancel(h: Handle): void {
    if (h === undefined) return;
    this.timers.delete(h);
    this.c.clearTimeout(h);
  }

  private set(state: ConnectionState, extra?: Omit<StateChange, 'state'>): void {
    this.st = state;
    this.emit('state', { state, ...extra });
  }

  private fail(code: string, message: string, retryAfterMs?: number): void {
    this.emit('error', new WxgateError(code, message, retryAfterMs));
  }

  private emit<K extends keyof ClientEvents>(type: K, event: ClientEvents[K]): void {
    for (const listener of [...(this.ls[type] ?? [])]) {
      try {
        listener(event);
      } catch (e) {
        // A listener's fault is the application's: report it without breaking the client.
        void Promise.reject(e);
      }
    }
  }
}

const memoryStore = (): CursorStore => {
  let cursor: string | undefined;
  return { get: () => cursor, set: (c) => void (cursor = c) };
};

/** `new WxgateClient(options).connect()`. */
export const connect = (options: ClientOptions): WxgateClient => new WxgateClient(options).connect();
