/**
 * A scripted fake gateway for the client's unit tests: an in-memory WebSocket class the test
 * controls frame by frame (no network) and a fake clock whose timers run only when the test
 * advances it.
 */
import { WxgateClient, type Clock, type ClientOptions, type Message, type StateChange, type WebSocketLike } from '../../../client/index';

export type Frame = Record<string, any>;

/** One client socket, seen from the server side. */
export class FakeSocket implements WebSocketLike {
  onopen: ((event: any) => void) | null = null;
  onmessage: ((event: any) => void) | null = null;
  onclose: ((event: any) => void) | null = null;
  onerror: ((event: any) => void) | null = null;
  readonly sent: Frame[] = [];
  /** Set when the client called close(). */
  closedByClient?: { code?: number };
  dropped = false;

  constructor(readonly url: string) {}

  send(data: string): void {
    if (this.closedByClient || this.dropped) throw new Error('send on a closed socket');
    this.sent.push(JSON.parse(data));
  }

  close(code?: number): void {
    this.closedByClient ??= { code };
  }

  get alive(): boolean {
    return !this.closedByClient && !this.dropped;
  }

  // ---- the server's side ----

  accept(): void {
    this.onopen?.({});
  }

  push(frame: Frame): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  raw(text: string): void {
    this.onmessage?.({ data: text });
  }

  drop(code = 1006): void {
    this.dropped = true;
    this.onclose?.({ code, reason: '' });
  }

  frames(action: string): Frame[] {
    return this.sent.filter((f) => f.action === action);
  }

  last(action: string): Frame {
    const frames = this.frames(action);
    if (frames.length === 0) throw new Error(`no ${action} frame sent; sent: ${JSON.stringify(this.sent)}`);
    return frames[frames.length - 1]!;
  }

  /** Answers the last sync request. */
  replySync(messages: Frame[], cursor: string, next: string | null = null): void {
    this.push({ type: 'sync', id: this.last('sync').id, messages, next, cursor });
  }

  ack(send: Frame, msgId: string, ts = 1): void {
    this.push({ type: 'ack', id: send.id, msgId, ts });
  }
}

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

/** Microtasks and already-due I/O callbacks run. */
export const settle = () => new Promise((resolve) => setImmediate(resolve));

export class FakeClock implements Clock {
  t = 0;
  private timers: Timer[] = [];
  private seq = 0;

  now = (): number => this.t;

  setTimeout = (fn: () => void, ms: number): unknown => {
    const timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(timer);
    return timer;
  };

  clearTimeout = (handle: unknown): void => {
    this.timers = this.timers.filter((t) => t !== handle);
  };

  get pending(): number {
    return this.timers.length;
  }

  /** Runs every timer due within `ms`, in time order, settling promises after each. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await settle();
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const due = this.timers[0];
      if (!due || due.at > end) break;
      this.timers.shift();
      this.t = due.at;
      due.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}

export const message = (msgId: string, text = msgId, from = 'ann'): Message => ({
  type: 'message',
  msgId,
  from,
  to: { user: 'bob' },
  body: { text },
  ts: 1,
});

/** A client wired to fake sockets and a fake clock, recording what the application sees. */
export function harness(options: Partial<ClientOptions> = {}) {
  const sockets: FakeSocket[] = [];
  const clock = new FakeClock();
  class Socket extends FakeSocket {
    constructor(url: string) {
      super(url);
      sockets.push(this);
    }
  }
  let tokens = 0;
  const client = new WxgateClient({
    url: 'ws://gateway.test',
    token: () => `t${++tokens}`,
    WebSocket: Socket,
    clock,
    random: () => 0.5,
    // The catch-up window has tests of its own; elsewhere live messages go straight through.
    catchUpMs: 0,
    ...options,
  });
  const received: Message[] = [];
  const states: StateChange[] = [];
  const errors: Array<{ code: string; message: string }> = [];
  client.on('message', (m) => received.push(m));
  client.on('state', (s) => states.push(s));
  client.on('error', (e) => errors.push({ code: e.code, message: e.message }));
  const texts = () => received.map((m) => (m.body as { text: string }).text);
  const last = () => {
    const s = sockets[sockets.length - 1];
    if (!s) throw new Error('no socket yet');
    return s;
  };
  /** Connects (or waits for the reconnect) and answers the resume with an empty inbox. */
  const open = async (cursor = 'r.0'): Promise<FakeSocket> => {
    await clock.advance(0);
    const s = last();
    s.accept();
    await settle();
    s.replySync([], cursor);
    await settle();
    return s;
  };
  return { client, clock, sockets, received, states, errors, texts, last, open };
}
