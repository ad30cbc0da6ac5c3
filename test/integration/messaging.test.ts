import { startTestGateway, type TestGateway } from '../support/test-gateway';
import { TestClient, eventually, type Frame } from '../support/ws-test-client';

/**
 * Issue 3: send, deliver to every device, offline sync, de-duplication, groups, bad input.
 * Real sockets against the local runtime; the persister runs from the local queue poller.
 */
let t: TestGateway;
let wsUrl: string;
const clients: TestClient[] = [];

beforeAll(async () => {
  t = await startTestGateway();
  wsUrl = t.gateway.wsUrl;
}, 90_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await t?.stop();
});

async function connect(userId: string, deviceId: string): Promise<TestClient> {
  const client = await TestClient.as(wsUrl, userId, deviceId);
  clients.push(client);
  // Registered once a ping round-trips: $connect has run by then.
  await client.request({ action: 'ping' });
  return client;
}

/**
 * Frames of one connection run concurrently (as in API Gateway), so a pong no longer proves that
 * an earlier send has finished. `drainQueues` resolves once no handler invocation runs (live
 * delivery and the persister included) and the queue is empty; a ping round trip on a client
 * after that proves every frame pushed to its socket before has arrived (one socket is ordered).
 */
const settle = async (...flush: TestClient[]) => {
  await t.gateway.drainQueues();
  for (const client of flush) await client.request({ action: 'ping' });
};

const messagesWith = (client: TestClient, msgId: string) => client.messages().filter((f) => f.msgId === msgId);

describe('send to a user with two devices', () => {
  let u1d1: TestClient, u1d2: TestClient, u2d1: TestClient, u2d2: TestClient;

  beforeAll(async () => {
    [u1d1, u1d2, u2d1, u2d2] = await Promise.all([connect('u1', 'd1'), connect('u1', 'd2'), connect('u2', 'd1'), connect('u2', 'd2')]);
  });

  test("both recipient devices and the sender's other device get the message; the sender's socket gets only the ack", async () => {
    const ack = await u1d1.request({ action: 'send', id: 'c1', to: { user: 'u2' }, body: { text: 'hi' } });
    expect(ack).toEqual({ type: 'ack', id: 'c1', msgId: expect.stringMatching(/^[0-9A-HJKMNP-TV-Z]{26}$/), ts: expect.any(Number) });
    const expected = { type: 'message', msgId: ack.msgId, from: 'u1', to: { user: 'u2' }, body: { text: 'hi' }, ts: ack.ts };
    for (const device of [u2d1, u2d2, u1d2]) {
      expect(await device.waitFor((f) => f.msgId === ack.msgId)).toEqual(expected);
    }
    await settle(u1d1, u2d1, u2d2, u1d2);
    expect(messagesWith(u1d1, ack.msgId)).toEqual([]);
    // Devices connected before the send get it once: live, not again from the persister.
    for (const device of [u2d1, u2d2, u1d2]) expect(messagesWith(device, ack.msgId)).toHaveLength(1);
  });

  test('the message is stored once in the inbox of the recipient and of the sender', async () => {
    const ack = await u1d1.request({ action: 'send', to: { user: 'u2' }, body: { n: 1 } });
    await t.gateway.drainQueues();
    for (const user of ['u1', 'u2']) {
      const rows = (await t.inboxRows(user)).filter((r) => r.msgId === ack.msgId);
      expect(rows).toHaveLength(1);
      expect(JSON.parse(rows[0]!.frame)).toMatchObject({ msgId: ack.msgId, from: 'u1', body: { n: 1 } });
    }
  });

  test('re-sending the same id returns the same msgId and delivers and stores only once', async () => {
    const first = await u1d1.request({ action: 'send', id: 'dup-1', to: { user: 'u2' }, body: { text: 'once' } });
    const second = await u1d1.request({ action: 'send', id: 'dup-1', to: { user: 'u2' }, body: { text: 'once' } });
    expect(second.msgId).toBe(first.msgId);
    expect(second.ts).toBe(first.ts);
    await settle(u2d1, u2d2);
    expect(messagesWith(u2d1, first.msgId)).toHaveLength(1);
    expect(messagesWith(u2d2, first.msgId)).toHaveLength(1);
    expect((await t.inboxRows('u2')).filter((r) => r.msgId === first.msgId)).toHaveLength(1);
  });

  test('a different user may reuse the same client id: it is a different message', async () => {
    const fromU1 = await u1d1.request({ action: 'send', id: 'shared-id', to: { user: 'u2' }, body: 1 });
    const fromU2 = await u2d1.request({ action: 'send', id: 'shared-id', to: { user: 'u1' }, body: 2 });
    expect(fromU2.msgId).not.toBe(fromU1.msgId);
  });
});

describe('offline delivery through sync', () => {
  test('u4 offline, u1 sends 3 messages; u4 connects and syncs all 3 in order', async () => {
    const sender = await connect('u1', 'd3');
    const acks: Frame[] = [];
    for (const text of ['one', 'two', 'three']) acks.push(await sender.request({ action: 'send', to: { user: 'u4' }, body: { text } }));
    await t.gateway.drainQueues();

    const u4 = await connect('u4', 'phone');
    const page = await u4.request({ action: 'sync', id: 's1' });
    expect(page).toMatchObject({ type: 'sync', id: 's1', next: null });
    expect(page.messages.map((m: Frame) => m.msgId)).toEqual(acks.map((a) => a.msgId));
    expect(page.messages.map((m: Frame) => m.body.text)).toEqual(['one', 'two', 'three']);
    expect(page.messages[0]).toEqual({ type: 'message', msgId: acks[0]!.msgId, from: 'u1', to: { user: 'u4' }, body: { text: 'one' }, ts: acks[0]!.ts });
  });

  test('sync pages with limit and next, and resuming after a msgId finds newer messages', async () => {
    const sender = await connect('u1', 'd4');
    const acks: Frame[] = [];
    for (let i = 0; i < 5; i++) acks.push(await sender.request({ action: 'send', to: { user: 'u5' }, body: { i } }));
    await t.gateway.drainQueues();
    const u5 = await connect('u5', 'tab');

    const seen: string[] = [];
    let after: string | undefined;
    let pages = 0;
    do {
      const page = await u5.request({ action: 'sync', limit: 2, ...(after ? { after } : {}) });
      expect(page.messages.length).toBeLessThanOrEqual(2);
      seen.push(...page.messages.map((m: Frame) => m.msgId));
      after = page.next ?? undefined;
      pages++;
    } while (after && pages < 10);
    expect(seen).toEqual(acks.map((a) => a.msgId));
    expect(pages).toBe(3);

    // A later message; resume with the newest msgId held. The overlap may repeat old ones.
    const late = await sender.request({ action: 'send', to: { user: 'u5' }, body: { i: 5 } });
    await t.gateway.drainQueues();
    const resumed = await u5.request({ action: 'sync', after: seen[seen.length - 1] });
    const ids = resumed.messages.map((m: Frame) => m.msgId);
    expect(ids).toContain(late.msgId);
    expect(new Set(ids).size).toBe(ids.length);
  });

  test('a device that connects while the message is being stored finds it through sync once stored', async () => {
    const sender = await connect('u1', 'd5');
    const ack = await sender.request({ action: 'send', to: { user: 'u6' }, body: { text: 'while you were away' } });
    const u6 = await connect('u6', 'watch');
    await t.gateway.drainQueues();
    const synced = await u6.request({ action: 'sync' });
    expect(synced.messages.map((m: Frame) => m.msgId)).toEqual([ack.msgId]);
  });
});

describe('groups', () => {
  test('a group message reaches every member device; a non-member gets forbidden and nothing is queued', async () => {
    await t.groups.addMembers('g1', ['g-ann', 'g-ben', 'g-cat']);
    const [ann1, ann2, ben, cat, eve] = await Promise.all([
      connect('g-ann', 'd1'),
      connect('g-ann', 'd2'),
      connect('g-ben', 'd1'),
      connect('g-cat', 'd1'),
      connect('g-eve', 'd1'),
    ]);
    const ack = await ann1.request({ action: 'send', id: 'g-1', to: { group: 'g1' }, body: { text: 'hello group' } });
    expect(ack.type).toBe('ack');
    for (const device of [ann2, ben, cat]) {
      expect(await device.waitFor((f) => f.msgId === ack.msgId)).toMatchObject({ from: 'g-ann', to: { group: 'g1' }, body: { text: 'hello group' } });
    }
    await t.gateway.drainQueues();
    for (const member of ['g-ann', 'g-ben', 'g-cat']) {
      expect((await t.inboxRows(member)).filter((r) => r.msgId === ack.msgId)).toHaveLength(1);
    }

    const refused = await eve.request({ action: 'send', id: 'e-1', to: { group: 'g1' }, body: { text: 'let me in' } });
    expect(refused).toMatchObject({ type: 'error', id: 'e-1', code: 'forbidden' });
    await settle(ben);
    expect(ben.messages().filter((f) => f.from === 'g-eve')).toEqual([]);
    expect((await t.inboxRows('g-ben')).filter((r) => JSON.parse(r.frame).from === 'g-eve')).toEqual([]);
    expect(await t.inboxRows('g-eve')).toEqual([]);
    expect(eve.isOpen).toBe(true);
  });
});

describe('stale connections', () => {
  test('a post to a vanished connection removes its row and only that row', async () => {
    const sender = await connect('u1', 'd6');
    const live = await connect('u7', 'real');
    const now = Date.now();
    await t.registry.put({ connectionId: 'ghostConnId0000=', userId: 'u7', deviceId: 'ghost', connectedAt: now - 60_000, expiresAt: Math.floor(now / 1000) + 900 });
    const ack = await sender.request({ action: 'send', to: { user: 'u7' }, body: { text: 'anyone?' } });
    await live.waitFor((f) => f.msgId === ack.msgId);
    await eventually(() => t.connectionRow('ghostConnId0000='), (row) => row === undefined, 5_000, 'ghost row removed');
    const rows = await t.registry.listByUser('u7', Date.now());
    expect(rows.map((r) => r.deviceId)).toEqual(['real']);
    expect(await t.registry.listByUser('u1', Date.now())).not.toHaveLength(0);
  });
});

describe('expired rows', () => {
  test('a connection row past its TTL but not yet swept is neither listed nor posted to', async () => {
    const sender = await connect('u1', 'd7');
    const now = Date.now();
    const expired = { connectionId: 'expiredConn0000=', userId: 'u8', deviceId: 'old', connectedAt: now - 3_600_000, expiresAt: Math.floor(now / 1000) - 60 };
    await t.registry.put(expired);
    expect(await t.registry.listByUser('u8', Date.now())).toEqual([]);
    await sender.request({ action: 'send', to: { user: 'u8' }, body: { text: 'hello?' } });
    await settle(sender);
    // Had delivery targeted it, the 410 would have removed the row; it is still there, untouched.
    expect(await t.connectionRow(expired.connectionId)).toEqual(expired);
    // The local sweeper (standing in for DynamoDB TTL) removes it.
    expect(await t.gateway.sweepExpired()).toBeGreaterThanOrEqual(1);
    expect(await t.connectionRow(expired.connectionId)).toBeUndefined();
  });
});

describe('bad input', () => {
  const cases: Array<[string, string, string]> = [
    ['not JSON', 'bad_request', '{"action":"send", nope'],
    ['no recipient', 'bad_request', JSON.stringify({ action: 'send', id: 'b1', body: 1 })],
    ['recipient of the wrong type', 'bad_request', JSON.stringify({ action: 'send', id: 'b2', to: { user: 5 }, body: 1 })],
    ['two kinds of recipient', 'bad_request', JSON.stringify({ action: 'send', id: 'b3', to: { user: 'bad-u', group: 'g1' }, body: 1 })],
    ['unknown recipient shape', 'bad_request', JSON.stringify({ action: 'send', id: 'b4', to: { channel: 'x' }, body: 1 })],
    ['missing body', 'bad_request', JSON.stringify({ action: 'send', id: 'b5', to: { user: 'bad-u' } })],
    ['a user id with spaces', 'bad_request', JSON.stringify({ action: 'send', id: 'b6', to: { user: 'a b' }, body: 1 })],
    ['a body over 32 KiB', 'too_large', JSON.stringify({ action: 'send', id: 'b7', to: { user: 'bad-u' }, body: 'x'.repeat(32 * 1024) })],
    ['a sync limit over 500', 'bad_request', JSON.stringify({ action: 'sync', id: 'b8', limit: 501 })],
    ['a sync cursor that is not one', 'bad_request', JSON.stringify({ action: 'sync', id: 'b9', after: 'garbage' })],
  ];

  test.each(cases)('%s gets a clear %s error, the socket stays open, nothing is queued', async (_name, code, raw) => {
    const client = await connect('bad-sender', 'd1');
    client.sendRaw(raw);
    const id = (() => {
      try {
        return JSON.parse(raw).id as string;
      } catch {
        return undefined;
      }
    })();
    const error = await client.waitFor((f) => f.type === 'error' && (id === undefined ? f.id === undefined : f.id === id));
    expect(error.code).toBe(code);
    expect(error.message.length).toBeGreaterThan(5);
    expect(error.message).not.toMatch(/\n\s+at /);
    expect(client.isOpen).toBe(true);
    await t.gateway.drainQueues();
    expect(await t.inboxRows('bad-u')).toEqual([]);
    expect(await t.inboxRows('bad-sender')).toEqual([]);
  });

  test('a body of exactly 32 KiB is accepted', async () => {
    const client = await connect('big-sender', 'd1');
    const body = 'y'.repeat(32 * 1024 - 2); // the JSON string adds two quotes
    const ack = await client.request({ action: 'send', to: { user: 'big-receiver' }, body });
    expect(ack.type).toBe('ack');
    await t.gateway.drainQueues();
    const rows = await t.inboxRows('big-receiver');
    expect(rows.map((r) => JSON.parse(r.frame).body)).toEqual([body]);
  });
});
