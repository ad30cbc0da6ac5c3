/**
 * The client against a small model of the gateway, randomized (seeded): ann sends bob messages
 * while bob's socket drops, or fails to open, at random. The model keeps the gateway's two push
 * paths (docs/architecture.md, "Sending" step 5 and "Storing"): the send route pushes at once to
 * connections opened before the message, the persister pushes to later connections once it
 * stored the message, after a lag, in send order; `sync` pages through what is stored, with
 * `next` and a resume `cursor` whose floor repeats a little (the resume overlap).
 *
 * Bob's application must get every message exactly once, in send order.
 */
import { seededRandom } from '../../support/prng';
import { harness, message, type FakeSocket, type Frame } from './fake-gateway';

const TICK = 50;

function run(seed: number, options: { lossyPushes: boolean; maxConnectionMs?: number; dropRate?: number }) {
  const random = seededRandom(seed);
  const h = harness({
    catchUpMs: 10_000,
    syncLimit: 4,
    random,
    pingIntervalMs: 20_000,
    pongTimeoutMs: 5_000,
    resyncIntervalMs: 30_000,
    maxConnectionMs: options.maxConnectionMs,
  });
  const { client, clock, sockets, received } = h;
  const stored: Array<ReturnType<typeof message>> = [];
  const storing: Array<{ at: number; m: ReturnType<typeof message> }> = [];
  const openedAt = new Map<FakeSocket, number>();
  const handled = new Map<FakeSocket, number>();
  const sent: string[] = [];
  let lastStoreAt = 0;
  const live = () => sockets.filter((s) => s.alive && openedAt.has(s));

  const page = (from: number, floor: number, limit: number) => {
    const messages = stored.slice(from, from + limit);
    const end = from + messages.length;
    const more = end < stored.length;
    return { messages, next: more ? `n.${end}.${floor}` : null, cursor: `r.${more ? Math.min(end, floor) : floor}` };
  };

  const serve = () => {
    for (const s of sockets) {
      if (!s.alive) continue;
      if (!openedAt.has(s)) {
        if (random() < 0.1) s.drop(1006); // the connect fails
        else {
          openedAt.set(s, clock.now());
          s.accept();
        }
        continue;
      }
      const frames = s.sent.slice(handled.get(s) ?? 0);
      handled.set(s, s.sent.length);
      for (const f of frames as Frame[]) {
        if (!s.alive) break;
        if (f.action === 'ping') s.push({ type: 'pong', id: f.id, ts: clock.now() });
        if (f.action === 'sync') {
          const after = f.after as string | undefined;
          if (after?.startsWith('n.')) {
            const [, end, floor] = after.split('.');
            s.push({ type: 'sync', id: f.id, ...page(Number(end), Number(floor), f.limit) });
          } else {
            // A new run reads now; its floor repeats the last 3 stored (the overlap).
            const from = after ? Number(after.slice(2)) : 0;
            s.push({ type: 'sync', id: f.id, ...page(from, Math.max(0, stored.length - 3), f.limit) });
          }
        }
      }
    }
  };

  const tick = (sending: boolean) => {
    const now = clock.now();
    while (storing[0] && storing[0].at <= now) {
      const { m } = storing.shift()!;
      stored.push(m);
      // The persister: connections opened after the message.
      for (const s of live()) if (openedAt.get(s)! > m.ts) s.push(m);
    }
    if (sending && random() < 0.3) {
      const m = { ...message(`M${String(sent.length).padStart(5, '0')}`, `m${sent.length}`), ts: now };
      sent.push(m.msgId);
      // The send route: connections opened before it (a lossy push is made up for by sync).
      for (const s of live()) if (openedAt.get(s)! <= now && !(options.lossyPushes && random() < 0.1)) s.push(m);
      lastStoreAt = Math.max(lastStoreAt, now + 100 + Math.floor(random() * 1500));
      storing.push({ at: lastStoreAt, m });
    }
    if (random() < (options.dropRate ?? 0.01)) live()[0]?.drop(1006);
    serve();
  };

  return {
    renewals: () => h.states.filter((s) => s.reason === 'renew').length,
    client,
    received,
    sent,
    async play(seconds: number) {
      client.connect();
      for (let t = 0; t < seconds * 1000; t += TICK) {
        tick(true);
        await clock.advance(TICK);
      }
      // Calm: no more sends; everything gets stored, the client catches up (a resync at the latest).
      for (let t = 0; t < 40_000; t += TICK) {
        tick(false);
        await clock.advance(TICK);
      }
      client.close();
    },
  };
}

describe('against a model gateway with random drops', () => {
  it.each([1, 2, 3, 4, 5, 6])('seed %i: every message once, in send order', async (seed) => {
    const m = run(seed, { lossyPushes: false });
    await m.play(60);
    expect(m.sent.length).toBeGreaterThan(300);
    expect(m.received.map((x) => x.msgId)).toEqual(m.sent);
  });

  it.each([11, 12, 13])('seed %i, the connection renewed every 8 s (the 2-hour limit, sped up): every message once, in send order', async (seed) => {
    const m = run(seed, { lossyPushes: false, maxConnectionMs: 8_000, dropRate: 0.002 });
    await m.play(60);
    expect(m.renewals()).toBeGreaterThan(3);
    expect(m.received.map((x) => x.msgId)).toEqual(m.sent);
  });

  it.each([7, 8, 9])('seed %i, 10 %% of live pushes lost: every message once (a lost push may come later, from sync)', async (seed) => {
    const m = run(seed, { lossyPushes: true });
    await m.play(60);
    const ids = m.received.map((x) => x.msgId);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(m.sent);
  });
});
