/**
 * Randomized soak in local mode, bounded in time (WXGATE_SOAK_SECONDS, default 20): devices
 * connect, drop (abruptly or cleanly) and reconnect at random; a share of every PostToConnection
 * fails (429 LimitExceededException and 500, the local Management API's fault switch), so acks
 * and live pushes get lost; sends whose ack did not come are retried with the same client id;
 * every (re)connect resumes with `sync` from the last `cursor` the device got (the resume rule).
 *
 * At the end every device holds every acknowledged message addressed to its user or sent by
 * its user, each once (de-duplicated by msgId, as the protocol asks), with the body that was
 * sent; no client id produced two messages; each inbox holds each message once.
 */
import WebSocket from 'ws';
import { startTestGateway, type TestGateway } from '../support/test-gateway';
import { seededRandom } from '../support/prng';
import { eventually, tokenFor, type Frame } from '../support/ws-test-client';

const SECONDS = Number(process.env.WXGATE_SOAK_SECONDS ?? 20);
const SEED = Number(process.env.WXGATE_SOAK_SEED ?? Date.now() % 100_000);
const USERS = ['ann', 'bob', 'cat', 'dan', 'eve'];
const DEVICES = ['phone', 'laptop'];

const random = seededRandom(SEED);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Acked {
  msgId: string;
  from: string;
  to: string;
  body: unknown;
}

class SoakDevice {
  socket?: WebSocket;
  cursor?: string;
  readonly held = new Map<string, Frame>();
  rawMessageFrames = 0;
  /** Sends not acked yet, by client id: retried with the same id until acked. */
  readonly unacked = new Map<string, { to: string; body: unknown }>();
  private readonly waiters = new Map<string, (frame: Frame) => void>();
  private sent = 0;
  connects = 0;

  constructor(
    readonly user: string,
    readonly device: string,
    private readonly wsUrl: string,
    private readonly acked: (a: Acked, clientId: string) => void,
  ) {}

  get open(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  async connect(): Promise<void> {
    const socket = new WebSocket(`${this.wsUrl}/?token=${encodeURIComponent(await tokenFor(this.user, this.device))}`);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
      socket.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
    socket.on('error', () => undefined);
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as Frame;
      if (frame.type === 'message') {
        this.rawMessageFrames++;
        this.held.set(frame.msgId, frame);
      } else if (typeof frame.id === 'string') this.waiters.get(frame.id)?.(frame);
    });
    socket.on('close', () => {
      for (const resolve of this.waiters.values()) resolve({ type: 'closed' });
      this.waiters.clear();
    });
    this.socket = socket;
    this.connects++;
  }

  private request(frame: Frame, timeoutMs: number): Promise<Frame> {
    if (!this.open) return Promise.resolve({ type: 'closed' });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(frame.id);
        resolve({ type: 'timeout' });
      }, timeoutMs);
      this.waiters.set(frame.id, (reply) => {
        clearTimeout(timer);
        this.waiters.delete(frame.id);
        resolve(reply);
      });
      this.socket!.send(JSON.stringify(frame));
    });
  }

  /** The resume rule: from the last cursor, following next, keeping each reply's cursor. */
  async resume(): Promise<boolean> {
    let after = this.cursor;
    for (;;) {
      const reply = await this.request({ action: 'sync', id: `s-${this.device}-${Math.random()}`, after, limit: 50 }, 5_000);
      if (reply.type !== 'sync') return false;
      for (const m of reply.messages as Frame[]) {
        this.rawMessageFrames++;
        this.held.set(m.msgId, m);
      }
      this.cursor = reply.cursor as string; // the resume point, whatever happens next
      if (!reply.next) return true;
      after = reply.next as string;
    }
  }

  /** Sends (or re-sends) one message and waits briefly for its ack. */
  async send(clientId: string, to: string, body: unknown): Promise<void> {
    this.unacked.set(clientId, { to, body });
    const reply = await this.request({ action: 'send', id: clientId, to: { user: to }, body }, 1_500);
    if (reply.type === 'ack') {
      this.unacked.delete(clientId);
      this.acked({ msgId: reply.msgId, from: this.user, to, body }, `${this.user}/${clientId}`);
    }
  }

  newSend(): [string, string, unknown] {
    const to = pick(USERS.filter((u) => u !== this.user));
    const clientId = `${this.device}-${++this.sent}`;
    return [clientId, to, { n: this.sent, from: `${this.user}/${this.device}`, text: pick(['hi', '你好', '😀', 'x'.repeat(200)]) }];
  }

  async retryUnacked(): Promise<void> {
    for (const [clientId, { to, body }] of [...this.unacked]) if (this.open) await this.send(clientId, to, body);
  }

  drop(): void {
    if (random() < 0.5) this.socket?.terminate();
    else this.socket?.close();
  }
}

let tg: TestGateway;

beforeAll(async () => {
  // Half the posts fail on purpose: the handlers' warnings about it would bury the test output.
  tg = await startTestGateway({ queueVisibilityTimeoutSeconds: 2, pollWaitMs: 50, handlerEnv: { POWERTOOLS_LOG_LEVEL: 'ERROR' } });
}, 60_000);

afterAll(async () => {
  await tg?.stop();
});

it(`soak: random drops, lost posts and same-id retries; every device that follows the resume rule holds every acked message once (seed ${SEED})`, async () => {
  const acked = new Map<string, Acked>();
  const msgIdsByClientId = new Map<string, Set<string>>();
  const onAck = (a: Acked, clientId: string) => {
    const prior = acked.get(a.msgId);
    if (prior) expect(prior).toEqual(a); // a retry's ack names the same message
    acked.set(a.msgId, a);
    (msgIdsByClientId.get(clientId) ?? msgIdsByClientId.set(clientId, new Set()).get(clientId)!).add(a.msgId);
  };
  const devices = USERS.flatMap((user) => DEVICES.map((device) => new SoakDevice(user, `${user}-${device}`, tg.gateway.wsUrl, onAck)));
  // 40 % of posts are throttled and 10 % fail: acks and live pushes go missing all the time.
  tg.gateway.setManagementFaults({ throttleRatio: 0.4, errorRatio: 0.1, random });

  const deadline = Date.now() + SECONDS * 1000;
  const life = async (d: SoakDevice) => {
    while (Date.now() < deadline) {
      await d.connect();
      await d.resume();
      await d.retryUnacked();
      const until = Date.now() + 300 + random() * 2_500;
      while (Date.now() < until && d.open) {
        if (random() < 0.3) {
          // Fire a send and, at random, drop before its ack can come: the retry must not duplicate it.
          const [clientId, to, body] = d.newSend();
          const sending = d.send(clientId, to, body);
          if (random() < 0.1) d.drop();
          await sending;
        }
        await sleep(50 + random() * 150);
      }
      d.drop();
      await sleep(random() * 400);
    }
  };
  await Promise.all(devices.map(life));

  // Calm: no more faults. Every device reconnects, retries what was never acked, and resumes.
  tg.gateway.setManagementFaults(undefined);
  for (const d of devices) {
    if (!d.open) await d.connect();
    for (let round = 0; d.unacked.size > 0 && round < 10; round++) await d.retryUnacked();
    expect(d.unacked.size).toBe(0);
  }
  await tg.gateway.drainQueues(60_000);
  for (const d of devices) expect(await d.resume()).toBe(true);

  const totalConnects = devices.reduce((n, d) => n + d.connects, 0);
  const rawFrames = devices.reduce((n, d) => n + d.rawMessageFrames, 0);
  console.log(
    `soak (seed ${SEED}, ${SECONDS} s): ${acked.size} acked messages, ${totalConnects} connections, ` +
      `${rawFrames} message frames received for ${devices.reduce((n, d) => n + d.held.size, 0)} held (duplicates are re-deliveries the client drops by msgId)`,
  );
  expect(acked.size).toBeGreaterThan(20);

  // No client id ever produced two messages.
  for (const [clientId, ids] of msgIdsByClientId) expect([clientId, ids.size]).toEqual([clientId, 1]);

  // Every device holds exactly the acked messages of its user, with the bodies sent.
  for (const d of devices) {
    const expected = [...acked.values()].filter((a) => a.to === d.user || a.from === d.user);
    const missing = expected.filter((a) => !d.held.has(a.msgId)).map((a) => a.msgId);
    expect({ device: d.device, missing }).toEqual({ device: d.device, missing: [] });
    const extra = [...d.held.keys()].filter((msgId) => !expected.some((a) => a.msgId === msgId));
    expect({ device: d.device, extra }).toEqual({ device: d.device, extra: [] });
    for (const a of expected) expect(d.held.get(a.msgId)).toMatchObject({ msgId: a.msgId, from: a.from, to: { user: a.to }, body: a.body });
  }

  // Each inbox holds each message once.
  for (const user of USERS) {
    const rows = await eventually(
      () => tg.inboxRows(user),
      (r) => r.length > 0,
      10_000,
      `${user}'s inbox`,
    );
    const counts = new Map<string, number>();
    for (const row of rows) counts.set(row.msgId, (counts.get(row.msgId) ?? 0) + 1);
    expect([...counts.values()].filter((n) => n !== 1)).toEqual([]);
    const expected = [...acked.values()].filter((a) => a.to === user || a.from === user).map((a) => a.msgId);
    expect([...counts.keys()].sort()).toEqual(expected.sort());
  }

  for (const d of devices) d.socket?.terminate();
}, (SECONDS + 120) * 1000);
