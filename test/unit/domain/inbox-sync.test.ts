import { decodeTime, encodeTime, monotonicFactory, ulid } from 'ulid';
import { GatewayError } from '../../../lambdas/domain/errors';
import { MAX_BODY_BYTES, type MessageFrame } from '../../../lambdas/domain/frames';
import { isMsgId, nextCursorOf, resumeCursorOf, syncStartOf } from '../../../lambdas/domain/inbox-position';
import { syncInbox, type SyncDeps } from '../../../lambdas/domain/inbox-sync';
import { persistMessage, type PersistDeps } from '../../../lambdas/domain/persist-message';
import {
  fakeDeliveryDeps,
  FakeConnectionRegistry,
  FakeConnectionSender,
  FakeGroupDirectory,
  FakeMessageStore,
  ManualClock,
} from '../../support/fakes';
import { seededRandom } from '../../support/prng';

const T0 = Date.UTC(2026, 0, 1, 12);
const OVERLAP = 60_000;
const TTL_S = 7 * 86_400;
const floorAt = (ms: number) => encodeTime(ms) + '0'.repeat(16);

describe('syncStartOf', () => {
  it('reads the whole inbox without after; the floor is now - overlap', () => {
    expect(syncStartOf(undefined, T0, OVERLAP)).toEqual({ start: undefined, floor: floorAt(T0 - OVERLAP) });
  });

  it('starts a msgId at the first position of the millisecond time(msgId) - overlap', () => {
    const msgId = ulid(T0 + 123_456);
    const { start } = syncStartOf(msgId, T0 + 200_000, OVERLAP);
    expect(start).toBe(floorAt(T0 + 123_456 - OVERLAP));
    // Every position minted in that millisecond or later sorts after it.
    expect(ulid(T0 + 123_456 - OVERLAP) > start!).toBe(true);
    expect(ulid(T0 + 123_456 - OVERLAP - 1) < start!).toBe(true);
  });

  it('never goes below time 0', () => {
    expect(decodeTime(syncStartOf(ulid(1000), T0, OVERLAP).start!)).toBe(0);
  });

  it('continues a next cursor exactly, keeping the floor of its run', () => {
    const position = ulid(T0);
    const floor = floorAt(T0 - 5);
    expect(syncStartOf(nextCursorOf(position, floor), T0 + 999_999, OVERLAP)).toEqual({ start: position, floor });
  });

  it('resumes a cursor from its floor with a fresh floor', () => {
    const floor = floorAt(T0 - 5);
    expect(syncStartOf(resumeCursorOf(undefined, floor), T0 + 500_000, OVERLAP)).toEqual({ start: floor, floor: floorAt(T0 + 500_000 - OVERLAP) });
  });

  it.each([
    ['garbage'],
    ['c.garbage'],
    ['r.'],
    ['n.'],
    ['r.' + 'Z'.repeat(26)],
    ['n.' + ulid(T0)],
    ['n.' + ulid(T0) + '.' + ulid(T0) + 'X'],
    [ulid(T0) + 'X'],
    // A valid alphabet whose time is beyond the 48-bit range: decodeTime throws on it.
    ['ZZZZZZZZZZZZZZZZZZZZZZZZZZ'],
    ['8ZZZZZZZZZZZZZZZZZZZZZZZZZ'],
  ])('refuses after = %p with bad_request', (after) => {
    expect(() => syncStartOf(after, T0, OVERLAP)).toThrow(GatewayError);
    expect(() => syncStartOf(after, T0, OVERLAP)).toThrow(expect.objectContaining({ code: 'bad_request' }));
  });

  it('recognises msgIds', () => {
    expect(isMsgId(ulid(T0))).toBe(true);
    expect(isMsgId('not-a-ulid-but-26-chars!!!')).toBe(false);
    expect(isMsgId('ZZZZZZZZZZZZZZZZZZZZZZZZZZ')).toBe(false);
  });
});

describe('resumeCursorOf', () => {
  it('is the floor once caught up, and the lower of page end and floor while pages remain', () => {
    const floor = floorAt(T0);
    const before = ulid(T0 - 10);
    const after = ulid(T0 + 10);
    expect(resumeCursorOf(undefined, floor)).toBe('r.' + floor);
    expect(resumeCursorOf(before, floor)).toBe('r.' + before);
    expect(resumeCursorOf(after, floor)).toBe('r.' + floor);
  });
});

function frame(msgId: string, body: unknown = 'x'): MessageFrame {
  return { type: 'message', msgId, from: 'u1', to: { user: 'u2' }, body, ts: decodeTime(msgId) };
}

function syncSetup(maxReplyBytes = 120 * 1024) {
  const clock = new ManualClock(T0);
  const messages = new FakeMessageStore();
  const deps: SyncDeps = { messages, groups: new FakeGroupDirectory(), clock, overlapMs: OVERLAP, maxReplyBytes, inboxTtlSeconds: TTL_S };
  const nextPosition = monotonicFactory();
  /** Stores a frame in u2's inbox at a fresh position, `atMs` on the clock. */
  const store = async (f: MessageFrame, atMs: number, expiresAt = Math.floor(atMs / 1000) + 86_400) => {
    clock.set(atMs);
    const position = nextPosition(atMs);
    await messages.putInboxRows(['u2'], position, f, expiresAt, Number.MAX_SAFE_INTEGER);
    return position;
  };
  return { clock, messages, deps, store };
}

describe('syncInbox', () => {
  it('returns the whole inbox in position order without after, next null when caught up', async () => {
    const { deps, store } = syncSetup();
    const ids = [ulid(T0), ulid(T0 + 1), ulid(T0 + 2)];
    for (const [i, id] of ids.entries()) await store(frame(id), T0 + 10 + i);
    const reply = await syncInbox(deps, 'u2', { action: 'sync' });
    expect(reply.messages.map((m) => m.msgId)).toEqual(ids);
    expect(reply.next).toBeNull();
    await expect(syncInbox(deps, 'u9', { action: 'sync' })).resolves.toEqual({ messages: [], next: null, cursor: 'r.' + floorAt(T0 + 12 - OVERLAP) });
  });

  it('pages with limit: next until exhausted, pages concatenate to the inbox without duplicates', async () => {
    const { deps, store, messages } = syncSetup();
    const ids = Array.from({ length: 23 }, (_, i) => ulid(T0 + i));
    for (const [i, id] of ids.entries()) await store(frame(id), T0 + 100 + i);

    const seen: string[] = [];
    const nexts: Array<string | null> = [];
    let after: string | undefined;
    for (let page = 0; page < 10; page++) {
      const reply = await syncInbox(deps, 'u2', { action: 'sync', after, limit: 5 });
      expect(reply.messages.length).toBeLessThanOrEqual(5);
      seen.push(...reply.messages.map((m) => m.msgId));
      nexts.push(reply.next);
      if (!reply.next) break;
      after = reply.next;
    }
    expect(nexts).toHaveLength(5);
    expect(nexts.slice(0, 4).every((n) => typeof n === 'string' && n.startsWith('n.'))).toBe(true);
    expect(nexts[4]).toBeNull();
    expect(seen).toEqual(ids);
    expect(seen).toEqual(messages.inboxOf('u2').map((r) => r.frame.msgId));
  });

  it('gives next = null when the last page is exactly full and nothing more exists', async () => {
    const { deps, store } = syncSetup();
    for (let i = 0; i < 4; i++) await store(frame(ulid(T0 + i)), T0 + 100 + i);
    const first = await syncInbox(deps, 'u2', { action: 'sync', limit: 2 });
    const second = await syncInbox(deps, 'u2', { action: 'sync', limit: 2, after: first.next! });
    expect(second.messages).toHaveLength(2);
    expect(second.next).toBeNull();
  });

  it('splits pages at maxReplyBytes even below limit, and the pages still cover everything once', async () => {
    const body = 'b'.repeat(1000);
    const oneFrame = Buffer.byteLength(JSON.stringify(frame(ulid(T0), body))) + 1;
    const { deps, store } = syncSetup(oneFrame * 3 + 10); // room for three frames, not four
    const ids = Array.from({ length: 7 }, (_, i) => ulid(T0 + i));
    for (const [i, id] of ids.entries()) await store(frame(id, body), T0 + 100 + i);

    const pages: string[][] = [];
    let after: string | undefined;
    for (let n = 0; n < 10; n++) {
      const reply = await syncInbox(deps, 'u2', { action: 'sync', after, limit: 100 });
      pages.push(reply.messages.map((m) => m.msgId));
      if (!reply.next) break;
      after = reply.next;
    }
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
    expect(pages.flat()).toEqual(ids);
  });

  it('returns a single frame bigger than maxReplyBytes rather than an empty page', async () => {
    const { deps, store } = syncSetup(100);
    await store(frame(ulid(T0), 'x'.repeat(500)), T0 + 1);
    await store(frame(ulid(T0 + 1), 'y'.repeat(500)), T0 + 2);
    const first = await syncInbox(deps, 'u2', { action: 'sync' });
    expect(first.messages).toHaveLength(1);
    expect(first.next).not.toBeNull();
    const second = await syncInbox(deps, 'u2', { action: 'sync', after: first.next! });
    expect(second.messages).toHaveLength(1);
    expect(second.next).toBeNull();
  });

  it('refuses a garbage after with bad_request', async () => {
    const { deps } = syncSetup();
    await expect(syncInbox(deps, 'u2', { action: 'sync', after: 'nope' })).rejects.toMatchObject({ code: 'bad_request' });
  });

  it('answers after = msgId from time(msgId) - overlap', async () => {
    const { deps, store } = syncSetup();
    const early = ulid(T0);
    const mid = ulid(T0 + 60_000);
    const late = ulid(T0 + 80_000);
    await store(frame(early), T0 + 10); // stored long before time(late) - overlap
    await store(frame(mid), T0 + 60_010); // stored within the overlap before `late`
    await store(frame(late), T0 + 80_010);
    const reply = await syncInbox(deps, 'u2', { action: 'sync', after: late });
    expect(reply.messages.map((m) => m.msgId)).toEqual([mid, late]);
  });

  it('never returns expired rows', async () => {
    const { deps, store, clock } = syncSetup();
    const gone = ulid(T0);
    const kept = ulid(T0 + 1);
    await store(frame(gone), T0 + 10, Math.floor(T0 / 1000) + 60);
    await store(frame(kept), T0 + 20, Math.floor(T0 / 1000) + 3600);
    clock.set(T0 + 61_000);
    expect((await syncInbox(deps, 'u2', { action: 'sync' })).messages.map((m) => m.msgId)).toEqual([kept]);
    expect((await syncInbox(deps, 'u2', { action: 'sync', after: kept })).messages.map((m) => m.msgId)).toEqual([kept]);
  });
});

describe('what a sync reads', () => {
  const BUDGET = 120 * 1024;
  const LARGEST_BODY = 'b'.repeat(MAX_BODY_BYTES - 2); // 32 KiB once serialized, quotes included
  /** The documented worst case of one sync: rows that fit the reply, plus one Query page (1 MB, the row that crossed it included). */
  const WORST_READ_BYTES = BUDGET + 1024 * 1024 + MAX_BODY_BYTES + 1024;
  const readBy = async <T>(messages: FakeMessageStore, run: () => Promise<T>) => {
    const before = { ...messages.inboxReads };
    const result = await run();
    const { pages, rows, bytes } = messages.inboxReads;
    return { result, reads: { pages: pages - before.pages, rows: rows - before.rows, bytes: bytes - before.bytes } };
  };

  it('limit=500 over 32 KiB bodies reads one page of four rows and returns the three messages and the next it did before', async () => {
    const { deps, store, messages, clock } = syncSetup();
    const ids = Array.from({ length: 40 }, (_, i) => ulid(T0 + i));
    const positions: string[] = [];
    for (const [i, id] of ids.entries()) positions.push(await store(frame(id, LARGEST_BODY), T0 + 100 + i));
    const floor = floorAt(clock.nowMs() - OVERLAP);
    const oneFrame = Buffer.byteLength(JSON.stringify(frame(ids[0]!, LARGEST_BODY)));

    const first = await readBy(messages, () => syncInbox(deps, 'u2', { action: 'sync', limit: 500 }));
    expect(first.result).toEqual({ messages: ids.slice(0, 3).map((id) => frame(id, LARGEST_BODY)), next: nextCursorOf(positions[2]!, floor), cursor: 'r.' + floor });
    // The fourth row is the one that does not fit: it proves that more exist.
    expect(first.reads).toEqual({ pages: 1, rows: 4, bytes: 4 * oneFrame });
    expect(first.reads.bytes).toBeLessThan(BUDGET + oneFrame);

    const second = await readBy(messages, () => syncInbox(deps, 'u2', { action: 'sync', limit: 500, after: first.result.next! }));
    expect(second.result.messages.map((m) => m.msgId)).toEqual(ids.slice(3, 6));
    expect(second.reads.rows).toBe(4);
  });

  it('reads at most one page past the budget when small rows come before large ones', async () => {
    const { deps, store, messages } = syncSetup();
    const small = Array.from({ length: 100 }, (_, i) => ulid(T0 + i));
    const large = Array.from({ length: 60 }, (_, i) => ulid(T0 + 1000 + i));
    for (const [i, id] of small.entries()) await store(frame(id), T0 + 10_000 + i);
    for (const [i, id] of large.entries()) await store(frame(id, LARGEST_BODY), T0 + 20_000 + i);

    const { result, reads } = await readBy(messages, () => syncInbox(deps, 'u2', { action: 'sync', limit: 500 }));
    expect(result.messages.map((m) => m.msgId)).toEqual([...small, ...large.slice(0, 3)]);
    // Four small rows, then a page sized for small rows, which DynamoDB's 1 MB stops.
    expect(reads.pages).toBe(2);
    expect(reads.bytes).toBeGreaterThan(1024 * 1024);
    expect(reads.bytes).toBeLessThanOrEqual(WORST_READ_BYTES);
  });

  it('never reads rows older than the inbox TTL, with or without after', async () => {
    const { deps, store, messages, clock } = syncSetup();
    const old = T0 - 8 * 86_400_000;
    const oldPositions: string[] = [];
    for (let i = 0; i < 30; i++) oldPositions.push(await store(frame(ulid(old + i)), old + 100 + i, Math.floor(old / 1000) + TTL_S));
    const edge = T0 - TTL_S * 1000 + 30_000; // expires 30 s after T0: still readable
    const kept = [ulid(edge), ulid(T0 + 1)];
    await store(frame(kept[0]!), edge + 10, Math.floor(edge / 1000) + TTL_S);
    await store(frame(kept[1]!), T0 + 10);
    clock.set(T0 + 20);

    const olderThanTtl = [undefined, ulid(old), 'r.' + oldPositions[0], nextCursorOf(oldPositions[0]!, floorAt(old))];
    for (const after of olderThanTtl) {
      const { result, reads } = await readBy(messages, () => syncInbox(deps, 'u2', { action: 'sync', after }));
      expect(result.messages.map((m) => m.msgId)).toEqual(kept);
      expect(result.next).toBeNull();
      expect(reads.rows).toBe(2);
    }
  });

  it('pages through a large inbox of mixed sizes with next: every message once, in order, each sync within its worst case', async () => {
    const { deps, store, messages } = syncSetup();
    const random = seededRandom(12);
    const ids = Array.from({ length: 400 }, (_, i) => ulid(T0 + i));
    for (const [i, id] of ids.entries()) {
      const r = random();
      const size = r < 0.7 ? 1 + Math.floor(random() * 500) : r < 0.9 ? 500 + Math.floor(random() * 8000) : 8000 + Math.floor(random() * (MAX_BODY_BYTES - 8002));
      await store(frame(id, 'x'.repeat(size)), T0 + 1000 + i);
    }

    const seen: string[] = [];
    const limits = [1, 7, 100, 500];
    let after: string | undefined;
    for (let n = 0; n < 1000; n++) {
      const { result, reads } = await readBy(messages, () => syncInbox(deps, 'u2', { action: 'sync', after, limit: limits[n % limits.length] }));
      seen.push(...result.messages.map((m) => m.msgId));
      expect(Buffer.byteLength(JSON.stringify(result.messages))).toBeLessThanOrEqual(BUDGET);
      expect(reads.bytes).toBeLessThanOrEqual(WORST_READ_BYTES);
      if (!result.next) break;
      after = result.next;
    }
    expect(seen).toEqual(ids);
  });

  it("returns a row that a lagging replica hid, when resuming from that reply's cursor (the overlap at its limit)", async () => {
    const { deps, store, clock } = syncSetup();
    const replica = { ...deps, messages: new FakeMessageStore() }; // a replica that does not show the write yet
    const readAt = T0 + 600_000;
    // Minted on a clock 20 s behind the reader's, written 30 s later (write age limit, then
    // applied), and not shown by a replica 10 s behind when the reader syncs: 60 s before readAt.
    const id = ulid(readAt - OVERLAP);
    await store(frame(id), readAt - OVERLAP);
    clock.set(readAt);
    const hidden = await syncInbox(replica, 'u2', { action: 'sync' });
    expect(hidden.messages).toEqual([]);
    clock.advance(1000);
    expect((await syncInbox(deps, 'u2', { action: 'sync', after: hidden.cursor })).messages.map((m) => m.msgId)).toEqual([id]);
  });
});

describe('the sync guarantee: a message stored late is never missed', () => {
  it('returns A (older msgId, stored after B) to a client resuming from the cursor of the sync that returned B', async () => {
    const clock = new ManualClock(T0);
    const messages = new FakeMessageStore(() => clock.nowMs());
    const registry = new FakeConnectionRegistry();
    const nextPosition = monotonicFactory();
    const persist: PersistDeps = {
      messages,
      groups: new FakeGroupDirectory(),
      registry,
      delivery: fakeDeliveryDeps(new FakeConnectionSender(), registry),
      clock,
      newPosition: (nowMs) => nextPosition(nowMs),
      inboxTtlSeconds: 86_400,
    };
    const sync: SyncDeps = { messages, groups: new FakeGroupDirectory(), clock, overlapMs: OVERLAP, maxReplyBytes: 120 * 1024, inboxTtlSeconds: TTL_S };
    // A is sent (and acked) first, by u3; B a second later, by u1. Both to u2, different conversations.
    const a = { msgId: ulid(T0), from: 'u3', fromDevice: 'd', fromConnection: 'c3', to: { user: 'u2' }, body: 'A', ts: T0 };
    const b = { msgId: ulid(T0 + 1000), from: 'u1', fromDevice: 'd', fromConnection: 'c1', to: { user: 'u2' }, body: 'B', ts: T0 + 1000 };
    expect(a.msgId < b.msgId).toBe(true);

    clock.set(T0 + 1500);
    await persistMessage(persist, b, 1); // B's conversation is stored first
    clock.set(T0 + 1600);
    const first = await syncInbox(sync, 'u2', { action: 'sync' });
    expect(first.messages.map((m) => m.msgId)).toEqual([b.msgId]);

    clock.set(T0 + 20_000);
    await persistMessage(persist, a, 1); // A's conversation is stored late

    const resumed = await syncInbox(sync, 'u2', { action: 'sync', after: first.cursor });
    expect(resumed.messages.map((m) => m.msgId)).toContain(a.msgId);
    // Inbox order is storage order, not msgId order.
    expect(messages.inboxOf('u2').map((r) => r.frame.msgId)).toEqual([b.msgId, a.msgId]);
  });
});

describe('the account inbox of a WeChat account', () => {
  function setup() {
    const clock = new ManualClock(T0);
    const messages = new FakeMessageStore(() => clock.nowMs());
    const registry = new FakeConnectionRegistry();
    const groups = new FakeGroupDirectory();
    const nextPosition = monotonicFactory();
    const persist: PersistDeps = {
      messages,
      groups,
      registry,
      delivery: fakeDeliveryDeps(new FakeConnectionSender(), registry),
      clock,
      newPosition: (nowMs) => nextPosition(nowMs),
      inboxTtlSeconds: 86_400,
    };
    const sync: SyncDeps = { messages, groups, clock, overlapMs: OVERLAP, maxReplyBytes: 120 * 1024, inboxTtlSeconds: TTL_S };
    const callback = (n: number) => ({
      msgId: ulid(T0 + n),
      from: 'wechat:acc:oUser',
      fromDevice: 'wechat',
      fromConnection: 'wechat',
      to: { group: 'wechat:acc' },
      body: { wechat: { MsgType: 'text', Content: `m${n}`, MsgId: String(n) } },
      ts: T0 + n,
      origin: 'wechat' as const,
    });
    return { clock, messages, groups, persist, sync, callback };
  }

  it('keeps a callback that arrived while the account had no agent, for the agent who joins later', async () => {
    const { groups, persist, sync, callback, messages } = setup();
    const first = callback(1);
    expect((await persistMessage(persist, first, 1)).outcome).toBe('stored');
    expect(messages.inboxOf('wechat:acc').map((r) => r.frame.msgId)).toEqual([first.msgId]);

    await groups.addMembers('wechat:acc', ['agent1']);
    const page = await syncInbox(sync, 'agent1', { action: 'sync', inbox: 'wechat:acc' });
    expect(page.messages.map((m) => m.msgId)).toEqual([first.msgId]);
    // Not in the agent's own inbox: it was not a member when the message was stored.
    expect((await syncInbox(sync, 'agent1', { action: 'sync' })).messages).toEqual([]);
  });

  it('stores a callback once in the account inbox and once per agent', async () => {
    const { groups, persist, callback, messages } = setup();
    await groups.addMembers('wechat:acc', ['agent1', 'agent2']);
    const m = callback(2);
    await persistMessage(persist, m, 1);
    await persistMessage(persist, m, 2); // a redelivery changes nothing
    for (const owner of ['wechat:acc', 'agent1', 'agent2']) expect(messages.inboxOf(owner).map((r) => r.frame.msgId)).toEqual([m.msgId]);
  });

  it('refuses the account inbox to a user who is not an agent of the account', async () => {
    const { persist, sync, callback } = setup();
    await persistMessage(persist, callback(3), 1);
    await expect(syncInbox(sync, 'u9', { action: 'sync', inbox: 'wechat:acc' })).rejects.toMatchObject({ code: 'forbidden' });
  });
});
