/**
 * The client library (client/index.ts) against a scripted fake gateway: in-memory sockets the
 * test answers frame by frame, and a fake clock (test/unit/client/fake-gateway.ts).
 */
import { backoffDelay } from '../../../client/backoff';
import { storageCursorStore, WxgateError } from '../../../client/index';
import { harness, message, settle, type FakeSocket } from './fake-gateway';

const MIN = 60_000;

describe('backoff', () => {
  it('attempt n waits within [0, min(cap, base · 2^n)): full jitter', () => {
    for (let n = 0; n < 12; n++) {
      const bound = Math.min(30_000, 500 * 2 ** n);
      expect(backoffDelay(n, 500, 30_000, () => 0)).toBe(0);
      expect(backoffDelay(n, 500, 30_000, () => 0.999999)).toBe(Math.floor(0.999999 * bound));
      expect(backoffDelay(n, 500, 30_000, () => 0.5)).toBe(bound / 2);
    }
    expect(backoffDelay(2000, 500, 30_000, () => 0.5)).toBe(15_000); // 2^2000 is Infinity: still capped
  });

  it('reconnect delays stay within each attempt bound, spread over it, and reset after a stable period', async () => {
    let r = 0.123;
    const random = () => (r = (r * 9301 + 0.49297) % 1); // spread over [0, 1)
    const { client, clock, sockets, states, open } = harness({ random });
    client.connect();
    await open();
    const delays: number[][] = [];
    // Ten failed attempts in a row (the socket drops before it opens).
    sockets[0]!.drop();
    for (let k = 0; k < 10; k++) {
      const s = states[states.length - 1]!;
      expect(s).toMatchObject({ state: 'reconnecting', attempt: k + 1 });
      (delays[k] ??= []).push(s.delayMs!);
      await clock.advance(s.delayMs!);
      if (k < 9) sockets[sockets.length - 1]!.drop();
    }
    delays.forEach(([d], k) => {
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(Math.min(30_000, 500 * 2 ** k));
    });
    // Attempt 10 opens and stays 30 s: the next drop starts again at attempt 1 (bound 500 ms).
    const s = sockets[sockets.length - 1]!;
    s.accept();
    await settle();
    s.replySync([], 'r.1');
    await clock.advance(29_000);
    s.drop();
    expect(states[states.length - 1]).toMatchObject({ state: 'reconnecting', attempt: 11 }); // not stable yet
    await clock.advance(states[states.length - 1]!.delayMs!);
    const t = sockets[sockets.length - 1]!;
    t.accept();
    await settle();
    t.replySync([], 'r.2');
    await clock.advance(30_000);
    t.drop();
    const after = states[states.length - 1]!;
    expect(after).toMatchObject({ state: 'reconnecting', attempt: 1 });
    expect(after.delayMs).toBeLessThan(500);
    client.close();
  });

  it('many draws of one attempt cover its whole range (full jitter, not equal jitter)', () => {
    const draws = Array.from({ length: 2000 }, () => backoffDelay(4, 500, 30_000, Math.random));
    expect(Math.min(...draws)).toBeLessThan(800); // bound 8000: full jitter reaches near 0
    expect(Math.max(...draws)).toBeGreaterThan(7200);
    expect(Math.max(...draws)).toBeLessThan(8000);
  });
});

describe('connecting', () => {
  it('calls the token provider on every connect and puts the token in the URL', async () => {
    const tokens = ['a b', 'second', 'third'];
    let calls = 0;
    const { client, clock, sockets, states } = harness({ token: async () => tokens[calls++]!, url: 'ws://gateway.test/' });
    client.connect();
    await clock.advance(0);
    expect(sockets[0]!.url).toBe('ws://gateway.test/?token=a%20b');
    sockets[0]!.accept();
    sockets[0]!.drop();
    await clock.advance(states[states.length - 1]!.delayMs!);
    expect(sockets[1]!.url).toBe('ws://gateway.test/?token=second');
    expect(calls).toBe(2);
    client.close();
  });

  it('keeps a stage path as it is (wss://…/live?token=…)', async () => {
    const { client, clock, sockets } = harness({ url: 'wss://abc.execute-api.eu-west-1.amazonaws.com/live', token: 'tok' });
    client.connect();
    await clock.advance(0);
    expect(sockets[0]!.url).toBe('wss://abc.execute-api.eu-west-1.amazonaws.com/live?token=tok');
    client.close();
  });

  it('a failing token provider is an error event and a reconnect with backoff', async () => {
    let calls = 0;
    const { client, clock, sockets, states, errors } = harness({
      token: () => {
        if (++calls === 1) throw new Error('login expired');
        return 'ok';
      },
    });
    client.connect();
    await clock.advance(0);
    expect(errors).toEqual([{ code: 'token', message: 'the token provider failed: login expired' }]);
    expect(states.map((s) => s.state)).toEqual(['connecting', 'reconnecting']);
    expect(sockets).toHaveLength(0);
    await clock.advance(states[1]!.delayMs!);
    expect(sockets[0]!.url).toContain('token=ok');
    client.close();
  });

  it('reports the states: connecting, open, reconnecting with reason and delay, closed', async () => {
    const { client, clock, states, open, last } = harness();
    client.connect();
    await open();
    last().drop(1001);
    await clock.advance(states[states.length - 1]!.delayMs!);
    await open();
    client.close();
    expect(states).toEqual([
      { state: 'connecting' },
      { state: 'open' },
      { state: 'reconnecting', reason: 'closed (1001)', delayMs: 250, attempt: 1 },
      { state: 'connecting' },
      { state: 'open' },
      { state: 'closed' },
    ]);
  });
});

describe('heartbeat', () => {
  it('pings on the interval; a pong keeps the socket', async () => {
    const { client, clock, open, sockets } = harness({ pingIntervalMs: 240_000, pongTimeoutMs: 15_000 });
    client.connect();
    const s = await open();
    await clock.advance(240_000);
    expect(s.frames('ping')).toHaveLength(1);
    s.push({ type: 'pong', id: s.last('ping').id, ts: 1 });
    await clock.advance(240_000);
    expect(s.frames('ping')).toHaveLength(2);
    s.push({ type: 'pong', id: s.last('ping').id, ts: 2 });
    await clock.advance(60_000);
    expect(s.alive).toBe(true);
    expect(sockets).toHaveLength(1);
    client.close();
  });

  it('no pong within the timeout: the socket is abandoned and the client reconnects', async () => {
    const { client, clock, open, sockets, states } = harness({ pingIntervalMs: 240_000, pongTimeoutMs: 15_000 });
    client.connect();
    const s = await open();
    await clock.advance(240_000);
    expect(s.frames('ping')).toHaveLength(1);
    await clock.advance(14_999);
    expect(s.alive).toBe(true);
    await clock.advance(1);
    expect(s.closedByClient).toBeDefined();
    expect(states[states.length - 1]).toMatchObject({ state: 'reconnecting', reason: 'heartbeat timeout' });
    await clock.advance(states[states.length - 1]!.delayMs!);
    expect(sockets).toHaveLength(2);
    client.close();
  });
});

describe('resume (the resume rule, docs/protocol.md §3.3)', () => {
  it('follows next across a page boundary, then resumes from the cursor of the last reply, not from a msgId', async () => {
    const { client, clock, last, states, texts } = harness({ syncLimit: 2 });
    client.connect();
    await clock.advance(0);
    const s1 = last();
    s1.accept();
    await settle();
    expect(s1.last('sync')).toMatchObject({ action: 'sync', limit: 2 });
    expect(s1.last('sync')).not.toHaveProperty('after'); // nothing kept yet: from the oldest
    s1.replySync([message('01A', 'm1'), message('01B', 'm2')], 'r.page1', 'n.page1');
    await settle();
    expect(s1.last('sync').after).toBe('n.page1');
    s1.replySync([message('01C', 'm3')], 'r.end1');
    await settle();
    expect(client.cursor).toBe('r.end1');

    s1.drop();
    await clock.advance(states[states.length - 1]!.delayMs!);
    const s2 = last();
    s2.accept();
    await settle();
    expect(s2.last('sync').after).toBe('r.end1'); // the cursor, not '01C'
    // The resume repeats the overlap (m3) and brings what was missed.
    s2.replySync([message('01C', 'm3'), message('01D', 'm4')], 'r.end2');
    await settle();
    expect(texts()).toEqual(['m1', 'm2', 'm3', 'm4']);
    client.close();
  });

  it('a run cut short resumes from the cursor of the last page it got (r.…), not its next (n.…)', async () => {
    const { client, clock, last, states, texts } = harness();
    client.connect();
    await clock.advance(0);
    const s1 = last();
    s1.accept();
    await settle();
    s1.replySync([message('01A', 'm1')], 'r.page1', 'n.page1');
    await settle();
    s1.drop(); // before the second page came
    await clock.advance(states[states.length - 1]!.delayMs!);
    const s2 = last();
    s2.accept();
    await settle();
    expect(s2.last('sync').after).toBe('r.page1');
    s2.replySync([message('01A', 'm1'), message('01B', 'm2')], 'r.page2', 'n.page2');
    await settle();
    expect(s2.last('sync').after).toBe('n.page2');
    s2.replySync([message('01C', 'm3')], 'r.end');
    await settle();
    expect(texts()).toEqual(['m1', 'm2', 'm3']);
    client.close();
  });

  it('an empty reply has a cursor too, and it is the one kept', async () => {
    const { client, clock, last, states, open } = harness();
    client.connect();
    await open('r.empty1');
    last().drop();
    await clock.advance(states[states.length - 1]!.delayMs!);
    const s2 = last();
    s2.accept();
    await settle();
    expect(s2.last('sync').after).toBe('r.empty1');
    client.close();
  });

  it('hands a message seen live and again in the next sync to the application once', async () => {
    const { client, clock, last, states, received, open } = harness();
    client.connect();
    const s1 = await open();
    s1.push(message('01A', 'live'));
    s1.drop();
    await clock.advance(states[states.length - 1]!.delayMs!);
    const s2 = last();
    s2.accept();
    await settle();
    s2.replySync([message('01A', 'live'), message('01B', 'new')], 'r.1');
    s2.push(message('01B', 'new')); // and a retried live push of the same
    await settle();
    expect(received.map((m) => m.msgId)).toEqual(['01A', '01B']);
    client.close();
  });

  it('holds live messages during a sync run and hands them out after it, each once, in order', async () => {
    const { client, clock, last, texts } = harness();
    client.connect();
    await clock.advance(0);
    const s = last();
    s.accept();
    await settle();
    s.push(message('01C', 'm3')); // arrives live while page 1 is being read
    s.push(message('01B', 'm2'));
    await settle();
    expect(texts()).toEqual([]);
    s.replySync([message('01A', 'm1')], 'r.p1', 'n.p1');
    await settle();
    expect(texts()).toEqual(['m1']);
    s.push(message('01D', 'm4'));
    s.replySync([message('01B', 'm2'), message('01C', 'm3')], 'r.end');
    await settle();
    expect(texts()).toEqual(['m1', 'm2', 'm3', 'm4']);
    s.push(message('01E', 'm5')); // once caught up, live messages go straight through
    await settle();
    expect(texts()).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    client.close();
  });

  it('resumes from the store on a page reload and keeps it up to date', async () => {
    const storage = new Map<string, string>([['wxgate:bob', 'r.saved']]);
    const store = storageCursorStore({ getItem: (k) => storage.get(k) ?? null, setItem: (k, v) => void storage.set(k, v) }, 'wxgate:bob');
    const { client, clock, last } = harness({ store });
    client.connect();
    await clock.advance(0);
    const s = last();
    s.accept();
    await settle();
    expect(s.last('sync').after).toBe('r.saved');
    s.replySync([message('01A')], 'r.newer');
    await settle();
    expect(storage.get('wxgate:bob')).toBe('r.newer');
    client.close();
  });

  it('a cursor the gateway refuses (bad_request) is reported and the sync starts over from the oldest', async () => {
    const { client, clock, last, errors, texts } = harness({ store: { get: () => 'r.forged', set: () => undefined } });
    client.connect();
    await clock.advance(0);
    const s = last();
    s.accept();
    await settle();
    s.push({ type: 'error', id: s.last('sync').id, code: 'bad_request', message: 'broken cursor' });
    await settle();
    expect(errors.map((e) => e.code)).toEqual(['bad_cursor']);
    expect(s.last('sync')).not.toHaveProperty('after');
    s.replySync([message('01A', 'm1')], 'r.1');
    await settle();
    expect(texts()).toEqual(['m1']);
    client.close();
  });

  it('a sync reply that does not come is asked again (and the socket probed); three misses abandon the socket', async () => {
    const { client, clock, last, states } = harness({ requestTimeoutMs: 10_000, pongTimeoutMs: 5_000 });
    client.connect();
    await clock.advance(0);
    const s = last();
    s.accept();
    await clock.advance(10_000);
    expect(s.frames('sync')).toHaveLength(2);
    expect(s.frames('sync')[1]!.after).toBe(s.frames('sync')[0]!.after);
    expect(s.frames('ping')).toHaveLength(1);
    s.push({ type: 'pong', id: s.last('ping').id, ts: 1 }); // alive, but sync replies get lost
    await clock.advance(10_000);
    s.push({ type: 'pong', id: s.last('ping').id, ts: 2 });
    await clock.advance(10_000);
    expect(s.closedByClient).toBeDefined();
    expect(states[states.length - 1]).toMatchObject({ state: 'reconnecting', reason: 'sync timed out' });
    client.close();
  });

  it('a sync reply that does not come on a dead socket: the probe abandons it within pongTimeoutMs', async () => {
    const { client, clock, last, states } = harness({ requestTimeoutMs: 10_000, pongTimeoutMs: 5_000 });
    client.connect();
    await clock.advance(0);
    const s = last();
    s.accept();
    await clock.advance(15_000);
    expect(s.closedByClient).toBeDefined();
    expect(states[states.length - 1]).toMatchObject({ state: 'reconnecting', reason: 'heartbeat timeout' });
    client.close();
  });

  it('syncs again on the resync interval while connected, from the kept cursor', async () => {
    const { client, clock, open, texts } = harness({ resyncIntervalMs: 600_000, pingIntervalMs: 10 * MIN });
    client.connect();
    const s = await open('r.a');
    s.push(message('01A', 'm1'));
    await clock.advance(600_000);
    expect(s.frames('sync')).toHaveLength(2);
    expect(s.last('sync').after).toBe('r.a');
    // A message whose live push was lost comes with it; the repeated one does not.
    s.replySync([message('01A', 'm1'), message('01B', 'lost push')], 'r.b');
    await settle();
    expect(texts()).toEqual(['m1', 'lost push']);
    expect(client.cursor).toBe('r.b');
    client.close();
  });
});

describe('catch-up after a connect (live messages wait for a sync to return them)', () => {
  // A message acked before bob connected is pushed by the persister once stored, after newer
  // ones the send route pushes at once (docs/architecture.md, "Sending" step 5).
  it('a newer message pushed live before an older one was stored reaches the application after it', async () => {
    const { client, clock, last, texts } = harness({ catchUpMs: 10_000 });
    client.connect();
    await clock.advance(0);
    const s = last();
    s.accept();
    await settle();
    s.replySync([message('01A', 'm1')], 'r.1'); // m2 was acked but is not stored yet
    await settle();
    expect(texts()).toEqual(['m1']);
    s.push(message('01C', 'm3')); // sent after the connect: pushed at once
    await clock.advance(249);
    expect(texts()).toEqual(['m1']);
    expect(s.frames('sync')).toHaveLength(1);
    await clock.advance(1); // follow-up sync after 250 ms, from the kept cursor
    expect(s.last('sync').after).toBe('r.1');
    s.replySync([message('01A', 'm1')], 'r.2'); // still not stored: ask again after 500 ms
    await clock.advance(499);
    expect(s.frames('sync')).toHaveLength(2);
    await clock.advance(1);
    expect(s.frames('sync')).toHaveLength(3);
    s.replySync([message('01A', 'm1'), message('01B', 'm2'), message('01C', 'm3')], 'r.3');
    s.push(message('01B', 'm2')); // the persister's push of m2, late
    await settle();
    expect(texts()).toEqual(['m1', 'm2', 'm3']);
    // Nothing held: no more follow-ups; after the window live messages go straight through.
    await clock.advance(10_000);
    expect(s.frames('sync')).toHaveLength(3);
    s.push(message('01D', 'm4'));
    expect(texts()).toEqual(['m1', 'm2', 'm3', 'm4']);
    client.close();
  });

  it('what no sync returned by the end of the window is handed out then, in msgId order; broadcasts never wait', async () => {
    const { client, clock, last, texts } = harness({ catchUpMs: 2_000 });
    client.connect();
    await clock.advance(0);
    const s = last();
    s.accept();
    await settle();
    s.replySync([], 'r.1');
    await settle();
    s.push(message('01F', 'f'));
    s.push(message('01E', 'e'));
    s.push({ ...message('01Z', 'to everyone', 'admin/local'), to: { push: 'all' } });
    await settle();
    expect(texts()).toEqual(['to everyone']);
    for (let k = 0; k < 3; k++) {
      await clock.advance(250 * 2 ** k);
      s.replySync([], `r.${k + 2}`);
    }
    await clock.advance(250); // the window's end (2 s)
    expect(texts()).toEqual(['to everyone', 'e', 'f']);
    client.close();
  });
});

describe('sending', () => {
  it('resolves with the ack; the sending device does not get its own message again from sync', async () => {
    const { client, clock, open, last, states, received } = harness();
    client.connect();
    const s = await open();
    const sending = client.send('ann', { text: 'hi' });
    await settle();
    const frame = s.last('send');
    expect(frame).toEqual({ action: 'send', id: frame.id, to: { user: 'ann' }, body: { text: 'hi' } });
    s.ack(frame, '01SENT', 42);
    await expect(sending).resolves.toEqual({ id: frame.id, msgId: '01SENT', ts: 42 });
    s.drop();
    await clock.advance(states[states.length - 1]!.delayMs!);
    const s2 = last();
    s2.accept();
    await settle();
    s2.replySync([{ ...message('01SENT', 'hi', 'bob'), to: { user: 'ann' } }], 'r.1');
    await settle();
    expect(received).toEqual([]);
    client.close();
  });

  it('a send whose ack was lost is sent again with the same id and resolves once', async () => {
    const { client, clock, open } = harness({ requestTimeoutMs: 10_000 });
    client.connect();
    const s = await open();
    let settled = 0;
    const sending = client.send({ group: 'g1' }, { text: 'hi' }, { id: 'mine-1' });
    void sending.then(() => settled++);
    await settle();
    expect(s.frames('send')).toHaveLength(1);
    await clock.advance(10_000); // no ack: the gateway's answer was lost
    const copies = s.frames('send');
    expect(copies).toHaveLength(2);
    expect(copies.map((f) => f.id)).toEqual(['mine-1', 'mine-1']);
    expect(copies[1]).toEqual(copies[0]);
    s.ack(copies[1]!, '01X'); // the gateway de-duplicates: the same msgId for both copies
    s.ack(copies[0]!, '01X');
    await expect(sending).resolves.toMatchObject({ id: 'mine-1', msgId: '01X' });
    await clock.advance(60_000);
    expect(settled).toBe(1);
    expect(s.frames('send')).toHaveLength(2);
    client.close();
  });

  it('a send in flight when the socket drops is resent with the same id after the reconnect', async () => {
    const { client, clock, open, last, states } = harness();
    client.connect();
    const s1 = await open();
    const sending = client.send('ann', 'x', { id: 'c-1' });
    await settle();
    s1.drop();
    await clock.advance(states[states.length - 1]!.delayMs!);
    const s2 = await open();
    expect(last()).toBe(s2);
    expect(s2.last('send').id).toBe('c-1');
    s2.ack(s2.last('send'), '01Y');
    await expect(sending).resolves.toMatchObject({ msgId: '01Y' });
    client.close();
  });

  it('an error frame rejects the send with a typed error', async () => {
    const { client, open } = harness();
    client.connect();
    const s = await open();
    const sending = client.send({ group: 'g9' }, 'x');
    await settle();
    s.push({ type: 'error', id: s.last('send').id, code: 'forbidden', message: 'not a member of g9' });
    const error = await sending.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WxgateError);
    expect(error).toMatchObject({ code: 'forbidden', message: 'not a member of g9' });
  });

  it('rate_limited: waits retryAfterMs, then sends again with the same id', async () => {
    const { client, clock, open } = harness();
    client.connect();
    const s = await open();
    const sending = client.send('ann', 'x');
    await settle();
    const first = s.last('send');
    s.push({ type: 'error', id: first.id, code: 'rate_limited', message: 'slow down', retryAfterMs: 2500 });
    await clock.advance(2499);
    expect(s.frames('send')).toHaveLength(1);
    await clock.advance(1);
    expect(s.frames('send')).toHaveLength(2);
    expect(s.last('send')).toEqual(first);
    s.ack(first, '01R');
    await expect(sending).resolves.toMatchObject({ msgId: '01R' });
    client.close();
  });

  it("API Gateway's own throttle frame (no type): in-flight sends are resent with their ids after a backoff", async () => {
    const { client, clock, open, errors } = harness({ random: () => 0.5, backoffBaseMs: 500 });
    client.connect();
    const s = await open();
    const a = client.send('ann', 'a', { id: 'a' });
    const b = client.send('ann', 'b', { id: 'b' });
    await settle();
    s.ack(s.last('send'), '01B'); // b acked; a's frame was throttled
    s.push({ message: 'Too Many Requests', connectionId: 'c1', requestId: 'r1' });
    await settle();
    expect(errors.map((e) => e.code)).toEqual(['throttled']);
    await clock.advance(249);
    expect(s.frames('send').map((f) => f.id)).toEqual(['a', 'b']);
    await clock.advance(1); // attempt 0: random 0.5 × 500 ms
    expect(s.frames('send').map((f) => f.id)).toEqual(['a', 'b', 'a']);
    s.ack(s.last('send'), '01A');
    await expect(Promise.all([a, b])).resolves.toMatchObject([{ msgId: '01A' }, { msgId: '01B' }]);
    // "Internal server error" the same way.
    const c = client.send('ann', 'c', { id: 'c' });
    await settle();
    s.push({ message: 'Internal server error', connectionId: 'c1', requestId: 'r2' });
    await clock.advance(1000);
    expect(s.frames('send').filter((f) => f.id === 'c')).toHaveLength(2);
    s.ack(s.last('send'), '01C');
    await expect(c).resolves.toMatchObject({ msgId: '01C' });
    client.close();
  });

  it('an internal error is retried a few times with the same id, then rejects', async () => {
    const { client, clock, open } = harness();
    client.connect();
    const s = await open();
    const sending = client.send('ann', 'x', { id: 'i' });
    const outcome = sending.catch((e: WxgateError) => e.code);
    for (let k = 0; k < 3; k++) {
      await settle();
      s.push({ type: 'error', id: 'i', code: 'internal', message: 'internal error' });
      await clock.advance(5_000);
    }
    await expect(outcome).resolves.toBe('internal');
    expect(s.frames('send')).toHaveLength(3);
  });

  it('sends made while disconnected wait in a bounded queue and go out on connect', async () => {
    const { client, open } = harness({ queueLimit: 3 });
    const queued = [client.send('ann', 1), client.send('ann', 2), client.send('ann', 3)];
    await expect(client.send('ann', 4)).rejects.toMatchObject({ code: 'queue_full', message: '3 sends are already waiting for a connection' });
    client.connect();
    const s = await open();
    expect(s.frames('send').map((f) => f.body)).toEqual([1, 2, 3]);
    for (const f of s.frames('send')) s.ack(f, `01${f.body}`);
    await expect(Promise.all(queued)).resolves.toHaveLength(3);
    // Connected, the queue bound does not apply.
    const more = Array.from({ length: 5 }, (_, i) => client.send('ann', i));
    await settle();
    expect(s.frames('send')).toHaveLength(8);
    client.close();
    await expect(Promise.all(more)).rejects.toMatchObject({ code: 'closed' });
  });

  it('a send not acked within sendTimeoutMs rejects with timeout, connected or not', async () => {
    const { client, clock, open, last } = harness({ sendTimeoutMs: 60_000, requestTimeoutMs: 10_000, pongTimeoutMs: 15_000 });
    client.connect();
    const s = await open();
    const sending = client.send('ann', 'x');
    const outcome = sending.catch((e: WxgateError) => e);
    await clock.advance(10_000);
    s.push({ type: 'pong', id: s.last('ping').id, ts: 1 }); // the ack timeout probed the socket: alive
    await clock.advance(20_000);
    last().drop();
    await clock.advance(29_999);
    expect(client.state).toBe('connecting'); // the new socket never opens
    await clock.advance(1);
    await expect(outcome).resolves.toMatchObject({ code: 'timeout', message: 'no ack within 60000 ms; the message may or may not have been stored' });
    // Never transmitted: says so.
    const unsent = client.send('ann', 'y').catch((e: WxgateError) => e);
    await clock.advance(60_000);
    await expect(unsent).resolves.toMatchObject({ code: 'timeout', message: 'not sent: no connection within 60000 ms' });
    client.close();
  });

  it('a missing ack probes the socket at once: a dead one is abandoned within pongTimeoutMs, not at the next heartbeat', async () => {
    const { client, clock, open, states, sockets } = harness({ requestTimeoutMs: 10_000, pongTimeoutMs: 15_000, pingIntervalMs: 240_000 });
    client.connect();
    const s = await open();
    const sending = client.send('ann', 'x', { id: 'probe' });
    await clock.advance(10_000);
    expect(s.frames('ping')).toHaveLength(1);
    await clock.advance(15_000);
    expect(s.closedByClient).toBeDefined();
    expect(states[states.length - 1]).toMatchObject({ state: 'reconnecting', reason: 'heartbeat timeout' });
    await clock.advance(states[states.length - 1]!.delayMs!);
    const s2 = sockets[1]!;
    s2.accept();
    await settle();
    s2.ack(s2.last('send'), '01P');
    await expect(sending).resolves.toMatchObject({ id: 'probe', msgId: '01P' });
    client.close();
  });

  it('refuses a body that is not JSON and a second pending send with the same id', async () => {
    const { client } = harness();
    const circular: any = {};
    circular.self = circular;
    await expect(client.send('ann', circular)).rejects.toMatchObject({ code: 'bad_request' });
    const first = client.send('ann', 1, { id: 'dup' });
    await expect(client.send('ann', 2, { id: 'dup' })).rejects.toMatchObject({ code: 'bad_request' });
    client.close();
    await expect(first).rejects.toMatchObject({ code: 'closed' });
  });
});

describe('events', () => {
  it('surfaces status frames and error frames without id', async () => {
    const { client, open, errors } = harness();
    const statuses: unknown[] = [];
    client.on('status', (s) => statuses.push(s));
    client.connect();
    const s = await open();
    s.push({ type: 'status', msgId: '01W', state: 'failed', errcode: 45015, message: 'WeChat error 45015' });
    s.push({ type: 'error', code: 'bad_request', message: 'not JSON' });
    s.raw('not json at all');
    expect(statuses).toEqual([{ type: 'status', msgId: '01W', state: 'failed', errcode: 45015, message: 'WeChat error 45015' }]);
    expect(errors).toEqual([{ code: 'bad_request', message: 'not JSON' }]);
    client.close();
  });

  it('off() and the returned unsubscribe stop a listener', async () => {
    const { client, open } = harness();
    const seen: string[] = [];
    const listener = (m: { msgId: string }) => seen.push(`a${m.msgId}`);
    client.on('message', listener);
    const stop = client.on('message', (m) => seen.push(`b${m.msgId}`));
    client.connect();
    const s = await open();
    s.push(message('1'));
    client.off('message', listener);
    stop();
    s.push(message('2'));
    expect(seen).toEqual(['a1', 'b1']);
    client.close();
  });
});

describe('close()', () => {
  it('settles every send, stops every timer and socket, and stays closed', async () => {
    const { client, clock, open, states } = harness();
    client.connect();
    const s = await open();
    const inFlight = client.send('ann', 1);
    const waiting = client.send('ann', 2);
    await settle();
    s.push({ type: 'error', id: s.frames('send')[1]!.id, code: 'rate_limited', message: 'later', retryAfterMs: 5000 });
    await settle();
    client.close();
    await expect(inFlight).rejects.toMatchObject({ code: 'closed' });
    await expect(waiting).rejects.toMatchObject({ code: 'closed' });
    await expect(client.send('ann', 3)).rejects.toMatchObject({ code: 'closed' });
    expect(s.closedByClient).toEqual({ code: 1000 });
    expect(clock.pending).toBe(0);
    expect(client.state).toBe('closed');
    expect(states[states.length - 1]).toEqual({ state: 'closed' });
    client.connect(); // stays closed
    await clock.advance(MIN);
    expect(client.state).toBe('closed');
  });

  it('while reconnecting: queued sends reject, the pending reconnect never happens', async () => {
    const { client, clock, open, sockets } = harness();
    client.connect();
    const s = await open();
    s.drop();
    const queued = client.send('ann', 1);
    client.close();
    await expect(queued).rejects.toMatchObject({ code: 'closed' });
    await clock.advance(MIN);
    expect(sockets).toHaveLength(1);
    expect(clock.pending).toBe(0);
  });

  it('while the token provider is still working: no socket is opened afterwards', async () => {
    let release!: (t: string) => void;
    const { client, clock, sockets } = harness({ token: () => new Promise<string>((r) => (release = r)) });
    client.connect();
    await settle();
    client.close();
    release('late');
    await clock.advance(MIN);
    expect(sockets).toHaveLength(0);
  });

  it('hands out live messages it was holding during a sync before closing', async () => {
    const { client, clock, last, texts } = harness();
    client.connect();
    await clock.advance(0);
    const s = last();
    s.accept();
    s.push(message('01A', 'held'));
    client.close();
    expect(texts()).toEqual(['held']);
  });
});

describe('the proactive reconnect before API Gateway’s 2-hour limit', () => {
  it('opens the new socket first, resumes on it, then closes the old one: nothing lost, nothing twice', async () => {
    const { client, clock, sockets, open, states, texts } = harness({ maxConnectionMs: 110 * MIN, pingIntervalMs: 4 * MIN, resyncIntervalMs: 0 });
    client.connect();
    const old = await open('r.1');
    // Keep the old socket alive with pongs for 110 minutes.
    const pong = (s: FakeSocket) => s.push({ type: 'pong', id: s.last('ping').id, ts: 1 });
    for (let t = 0; t < 27; t++) {
      await clock.advance(4 * MIN);
      pong(old);
    }
    old.push(message('01A', 'before'));
    expect(sockets).toHaveLength(1);
    await clock.advance(2 * MIN); // 110 min
    expect(sockets).toHaveLength(2);
    const fresh = sockets[1]!;
    expect(old.alive).toBe(true);
    expect(fresh.url).toContain('token=t2'); // a fresh token
    fresh.accept();
    await settle();
    expect(fresh.last('sync').after).toBe('r.1');
    // During the overlap both sockets get the live pushes; a send goes out on the old one.
    old.push(message('01B', 'during'));
    fresh.push(message('01B', 'during'));
    const sending = client.send('ann', 'x', { id: 'over' });
    await settle();
    expect(old.last('send').id).toBe('over');
    fresh.replySync([message('01A', 'before'), message('01B', 'during')], 'r.2');
    await settle();
    expect(states[states.length - 1]).toEqual({ state: 'open', reason: 'renew' });
    expect(old.alive).toBe(true); // kept a moment for the ack in flight
    old.ack(old.last('send'), '01S');
    await expect(sending).resolves.toMatchObject({ msgId: '01S' });
    old.push(message('01C', 'late on old'));
    fresh.push(message('01C', 'late on old'));
    await clock.advance(10_000);
    expect(old.closedByClient).toBeDefined();
    fresh.push(message('01D', 'after'));
    expect(texts()).toEqual(['before', 'during', 'late on old', 'after']);
    expect(states.filter((s) => s.state === 'reconnecting')).toEqual([]);
    // The new socket carries on: pings, and its own renewal 110 minutes later.
    await clock.advance(4 * MIN);
    expect(fresh.frames('ping')).toHaveLength(1);
    expect(old.frames('ping')).toHaveLength(27);
    client.close();
  });

  it('a send in flight on the old socket whose ack never came there is resent on the new one', async () => {
    const { client, clock, sockets, open } = harness({ maxConnectionMs: 10 * MIN, pingIntervalMs: 60 * MIN, requestTimeoutMs: 10_000 });
    client.connect();
    const old = await open('r.1');
    await clock.advance(10 * MIN - 5_000);
    const sending = client.send('ann', 'x', { id: 'over' });
    await clock.advance(5_000);
    const fresh = sockets[1]!;
    fresh.accept();
    await settle();
    fresh.replySync([], 'r.2');
    await clock.advance(5_000); // the ack timeout on the old socket: resent on the new primary
    expect(fresh.last('send').id).toBe('over');
    fresh.ack(fresh.last('send'), '01S');
    await expect(sending).resolves.toMatchObject({ msgId: '01S' });
    await clock.advance(10_000);
    expect(old.closedByClient).toBeDefined();
    client.close();
  });

  it('the old socket closing before the new one caught up: the new one takes over without a reconnect', async () => {
    const { client, clock, sockets, open, states, texts } = harness({ maxConnectionMs: 10 * MIN, pingIntervalMs: 60 * MIN });
    client.connect();
    const old = await open('r.1');
    await clock.advance(10 * MIN);
    const fresh = sockets[1]!;
    fresh.accept();
    await settle();
    old.drop(1001); // API Gateway's limit, or the network
    fresh.push(message('01B', 'live'));
    fresh.replySync([message('01A', 'missed')], 'r.2');
    await settle();
    expect(texts()).toEqual(['missed', 'live']);
    expect(states.filter((s) => s.state === 'reconnecting')).toEqual([]);
    expect(sockets).toHaveLength(2);
    const sending = client.send('ann', 'y');
    await settle();
    fresh.ack(fresh.last('send'), '01Z');
    await expect(sending).resolves.toMatchObject({ msgId: '01Z' });
    client.close();
  });

  it('the old socket closed by the gateway while the new one is still connecting (the user was at the connection limit): no backoff, no gap', async () => {
    const { client, clock, sockets, open, states, texts } = harness({ maxConnectionMs: 10 * MIN, pingIntervalMs: 60 * MIN });
    client.connect();
    const old = await open('r.1');
    await clock.advance(10 * MIN);
    const fresh = sockets[1]!;
    const queued = client.send('ann', 'while switching');
    old.drop(1000); // $connect of the new socket closed the user's oldest connection
    expect(states[states.length - 1]).toEqual({ state: 'connecting', reason: 'closed (1000)' });
    fresh.accept();
    await settle();
    expect(states[states.length - 1]).toEqual({ state: 'open' });
    expect(fresh.last('sync').after).toBe('r.1');
    fresh.replySync([message('01A', 'missed')], 'r.2');
    fresh.ack(fresh.last('send'), '01Q');
    await expect(queued).resolves.toMatchObject({ msgId: '01Q' });
    expect(texts()).toEqual(['missed']);
    expect(states.filter((s) => s.state === 'reconnecting')).toEqual([]);
    expect(sockets).toHaveLength(2);
    client.close();
  });

  it('a new socket that fails to open is tried again later while the old one keeps working', async () => {
    const { client, clock, sockets, open, states } = harness({ maxConnectionMs: 10 * MIN, pingIntervalMs: 60 * MIN });
    client.connect();
    const old = await open('r.1');
    await clock.advance(10 * MIN);
    sockets[1]!.drop(1006);
    expect(states.filter((s) => s.state === 'reconnecting')).toEqual([]);
    await clock.advance(500);
    expect(sockets).toHaveLength(3);
    expect(old.alive).toBe(true);
    client.close();
  });
});
