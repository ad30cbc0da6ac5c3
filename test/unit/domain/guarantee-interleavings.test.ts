/**
 * The interleavings that could break the messaging guarantees (docs/architecture.md,
 * "Guarantees"), one scenario each, played deterministically on the fakes: failed and throttled
 * live pushes, rows that land late, storing attempts that die part-way, concurrent retries of one
 * client id, a claim that expires under its owner, failures after the ack.
 */
import { monotonicFactory } from 'ulid';
import type { ConnectionIdentity } from '../../../lambdas/domain/connection-lifecycle';
import { syncInbox, type SyncDeps, type SyncPage } from '../../../lambdas/domain/inbox-sync';
import { MAX_ROW_WRITE_AGE_MS, RESUME_OVERLAP_MS } from '../../../lambdas/domain/inbox-position';
import { WriteDeadlineError } from '../../../lambdas/domain/messaging-ports';
import { persistMessage, STORE_CHUNK_SIZE, type PersistDeps } from '../../../lambdas/domain/persist-message';
import { CLAIM_LEASE_MS, RETRY_WAIT_MS, sendMessage, type SendDeps } from '../../../lambdas/domain/send-message';
import type { SendFrame } from '../../../lambdas/domain/frames';
import {
  connectionRecord,
  fakeDeliveryDeps,
  FakeConnectionRegistry,
  FakeConnectionSender,
  FakeGroupDirectory,
  FakeMessageStore,
  FakeUplinkQueue,
  ManualClock,
} from '../../support/fakes';

const T0 = Date.UTC(2026, 0, 1, 12);

/**
 * `sleepAdvancesClock`: a waiting attempt's sleep moves the shared manual clock (single waiter
 * scenarios); with many concurrent waiters it only yields, or they would push each other's
 * clocks past their deadlines.
 */
function world(groups: Record<string, string[]> = {}, sleepAdvancesClock = true) {
  const clock = new ManualClock(T0);
  const messages = new FakeMessageStore(() => clock.nowMs());
  const registry = new FakeConnectionRegistry();
  const sender = new FakeConnectionSender();
  const uplink = new FakeUplinkQueue();
  const directory = new FakeGroupDirectory(groups);
  const nextUlid = monotonicFactory();
  let attempt = 0;
  const send: SendDeps = {
    messages,
    groups: directory,
    uplink,
    registry,
    delivery: fakeDeliveryDeps(sender, registry),
    clock,
    newMsgId: (nowMs) => nextUlid(nowMs),
    newAttemptId: () => `attempt-${++attempt}`,
    sleep: async (ms) => {
      if (sleepAdvancesClock) clock.advance(ms);
      await new Promise((resolve) => setImmediate(resolve));
    },
    dedupWindowSeconds: 300,
  };
  const persist: PersistDeps = {
    messages,
    groups: directory,
    registry,
    delivery: fakeDeliveryDeps(sender, registry),
    clock,
    newPosition: (nowMs) => nextUlid(nowMs),
    inboxTtlSeconds: 7 * 86_400,
  };
  const sync: SyncDeps = { messages, groups: directory, clock, overlapMs: RESUME_OVERLAP_MS, maxReplyBytes: 120 * 1024, inboxTtlSeconds: 7 * 86_400 };
  /** Drains the queue through the persister, as the event source mapping would. */
  const storeQueued = async () => {
    while (uplink.enqueued.length > 0) await persistMessage(persist, uplink.enqueued.shift()!, 1);
  };
  /** Follows `next` to the end; returns every msgId and the last reply's resume cursor. */
  const syncAll = async (userId: string, after?: string) => {
    const ids: string[] = [];
    let page: SyncPage;
    let cursor = after;
    do {
      page = await syncInbox(sync, userId, { action: 'sync', after: cursor, limit: 5 });
      ids.push(...page.messages.map((m) => m.msgId));
      cursor = page.next ?? undefined;
    } while (page.next);
    return { ids, cursor: page.cursor };
  };
  const caller = (connectionId: string, userId: string): ConnectionIdentity => ({ connectionId, userId, deviceId: `${connectionId}-d`, connectedAt: T0 - 60_000 });
  return { clock, messages, registry, sender, uplink, directory, send, persist, sync, storeQueued, syncAll, caller };
}

const toUser = (user: string, id?: string, body: SendFrame['body'] = 'hi'): SendFrame => ({ action: 'send', id, to: { user }, body });

describe('1. the resume rule: a client that resumes from its last cursor misses nothing, whatever live pushes did', () => {
  it('X throttled away from bob, then M pushed live: resuming from the cursor returns X; resuming after M would not', async () => {
    const w = world();
    await w.registry.put(connectionRecord('bob-1', 'bob', T0 - 60_000));
    const before = await w.syncAll('bob'); // bob is caught up at T0

    // X: every post to bob answers 429, four times (the delivery retries), so X never reaches him live.
    w.clock.advance(10_000);
    w.sender.script('bob-1', 'retryable', 'retryable', 'retryable', 'retryable');
    const x = await sendMessage(w.send, w.caller('alice-1', 'alice'), toUser('bob', 'x'));
    expect(x.delivery).toMatchObject({ failed: 1, delivered: 0 });
    await w.storeQueued();

    // Two minutes later M reaches bob live.
    w.clock.advance(120_000);
    const m = await sendMessage(w.send, w.caller('carol-1', 'carol'), toUser('bob', 'm'));
    expect(m.delivery).toMatchObject({ delivered: 1 });
    await w.storeQueued();

    w.clock.advance(5_000);
    const resumed = await w.syncAll('bob', before.cursor);
    expect(resumed.ids).toEqual([x.msgId, m.msgId]);
    // The old advice ("sync after the newest msgId you hold") skips X forever: this is why the
    // protocol's resume rule is the cursor.
    const afterM = await w.syncAll('bob', m.msgId);
    expect(afterM.ids).not.toContain(x.msgId);
  });

  it('every reply carries a cursor, the empty one and the last page included', async () => {
    const w = world();
    const empty = await syncInbox(w.sync, 'nobody', { action: 'sync' });
    expect(empty).toEqual({ messages: [], next: null, cursor: expect.stringMatching(/^r\./) });
    for (let i = 0; i < 7; i++) await sendMessage(w.send, w.caller('a-1', 'a'), toUser('b'));
    await w.storeQueued();
    const first = await syncInbox(w.sync, 'b', { action: 'sync', limit: 5 });
    const last = await syncInbox(w.sync, 'b', { action: 'sync', limit: 5, after: first.next! });
    expect([first.next === null, last.next === null]).toEqual([false, true]);
    expect(first.cursor).toMatch(/^r\./);
    expect(last.cursor).toMatch(/^r\./);
  });

  it('a client that drops mid-way through the pages and resumes from that page’s cursor loses nothing', async () => {
    const w = world();
    const sent: string[] = [];
    for (let i = 0; i < 12; i++) {
      w.clock.advance(200_000); // spread over time, so page ends sit far below the run's floor
      sent.push((await sendMessage(w.send, w.caller('a-1', 'a'), toUser('b'))).msgId);
      await w.storeQueued();
    }
    const first = await syncInbox(w.sync, 'b', { action: 'sync', limit: 5 });
    expect(first.messages).toHaveLength(5);
    // The client drops here, without following next; it resumes from the cursor it got.
    const resumed = await w.syncAll('b', first.cursor);
    expect(new Set([...first.messages.map((m) => m.msgId), ...resumed.ids])).toEqual(new Set(sent));
  });
});

describe('2. rows that land late are never behind a cursor', () => {
  it('a row written 19 s after its position was minted, while a sync hands out cursors, is found by resuming', async () => {
    const w = world();
    await sendMessage(w.send, w.caller('a-1', 'a'), toUser('b', undefined, 'late'));
    const queued = w.uplink.enqueued.shift()!;
    // The persister mints its position now, then its write is held for 19 s.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    w.messages.hook = async (method, args) => {
      if (method === 'putInboxRows' && (args[0] as string[]).includes('b')) await held;
    };
    const storing = persistMessage(w.persist, queued, 1);
    await new Promise((resolve) => setImmediate(resolve));

    // Meanwhile b syncs twice, following next and taking the final cursor.
    w.clock.advance(5_000);
    const meanwhile = await w.syncAll('b');
    expect(meanwhile.ids).toEqual([]);
    w.clock.advance(14_000); // 19 s after the position was minted
    w.messages.hook = () => undefined;
    release();
    await storing;

    w.clock.advance(1_000);
    expect((await w.syncAll('b', meanwhile.cursor)).ids).toEqual([queued.msgId]);
  });

  it('a row landing behind a next cursor, in the middle of a paged run, is covered by the run’s final cursor', async () => {
    const w = world();
    for (let i = 0; i < 6; i++) await sendMessage(w.send, w.caller('a-1', 'a'), toUser('b'));
    const late = w.uplink.enqueued.splice(2, 1)[0]!; // the third message is stored late
    // Its position is minted first, but its row is held until after page 1 was read.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    w.messages.hook = async (method, args) => {
      if (method === 'putInboxRows' && (args[2] as { msgId: string }).msgId === late.msgId) await held;
    };
    const storing = persistMessage(w.persist, late, 1);
    await new Promise((resolve) => setImmediate(resolve));
    w.clock.advance(10);
    await w.storeQueued();
    w.clock.advance(1_000);
    const page1 = await syncInbox(w.sync, 'b', { action: 'sync', limit: 3 });
    w.messages.hook = () => undefined;
    release();
    await storing;
    const page2 = await syncInbox(w.sync, 'b', { action: 'sync', limit: 3, after: page1.next! });
    expect(page2.next).toBeNull();
    const seen = [...page1.messages, ...page2.messages].map((m) => m.msgId);
    expect(seen).not.toContain(late.msgId); // its position sorts before page 1's end
    expect((await w.syncAll('b', page2.cursor)).ids).toContain(late.msgId);
  });

  it('no write is sent at a position older than the write deadline; the retry stores it once at a fresh position', async () => {
    const w = world();
    await sendMessage(w.send, w.caller('a-1', 'a'), toUser('b'));
    const queued = w.uplink.enqueued.shift()!;
    w.messages.hook = (method) => {
      if (method === 'putInboxRows') w.clock.advance(MAX_ROW_WRITE_AGE_MS + 1); // throttled until past the deadline
    };
    await expect(persistMessage(w.persist, queued, 1)).rejects.toBeInstanceOf(WriteDeadlineError);
    expect(w.messages.inboxOf('b')).toEqual([]);
    w.messages.hook = () => undefined;
    await expect(persistMessage(w.persist, queued, 2)).resolves.toMatchObject({ outcome: 'stored' });
    expect(w.messages.inboxOf('b').map((r) => r.frame.msgId)).toEqual([queued.msgId]);
  });
});

describe('3. storing converges to exactly one row per member when attempts die part-way', () => {
  it('a 100-member group whose attempts time out after 40 rows: never two visible rows, finally one each', async () => {
    const members = Array.from({ length: 100 }, (_, i) => `m${String(i).padStart(3, '0')}`);
    const w = world({ big: members });
    await sendMessage(w.send, w.caller('m000-1', 'm000'), { action: 'send', to: { group: 'big' }, body: 'all' });
    const queued = w.uplink.enqueued.shift()!;
    let rowsThisAttempt = 0;
    w.messages.hook = (method, args) => {
      if (method !== 'putInboxRows') return;
      rowsThisAttempt += (args[0] as string[]).length;
      if (rowsThisAttempt > 40) throw new Error('Task timed out after 60.00 seconds');
    };
    const audience = [...members];
    const maxRowsPerMember = () => Math.max(...audience.map((u) => w.messages.inboxOf(u).length));
    let attempts = 0;
    for (;;) {
      attempts++;
      rowsThisAttempt = 0;
      w.clock.advance(1_000);
      const outcome = await persistMessage(w.persist, queued, attempts).then(
        () => 'stored',
        () => 'died',
      );
      expect(maxRowsPerMember()).toBeLessThanOrEqual(1);
      if (outcome === 'stored') break;
      expect(attempts).toBeLessThan(10);
    }
    // 4 chunks of 25; each attempt finishes one chunk before its 41st row.
    expect(attempts).toBe(Math.ceil(members.length / STORE_CHUNK_SIZE));
    for (const u of audience) expect(w.messages.inboxOf(u).map((r) => r.frame.msgId)).toEqual([queued.msgId]);
  });

  it('the audience is frozen by the first attempt: a member removed before the retry loses the failed attempt’s row too', async () => {
    const w = world({ g: ['a', 'b', 'c'] });
    await sendMessage(w.send, w.caller('a-1', 'a'), { action: 'send', to: { group: 'g' }, body: 'x' });
    const queued = w.uplink.enqueued.shift()!;
    w.messages.hook = (method) => {
      if (method === 'markChunkStored') throw new Error('crash after the rows');
    };
    await expect(persistMessage(w.persist, queued, 1)).rejects.toThrow('crash');
    w.messages.hook = () => undefined;
    await w.directory.removeMembers('g', ['c']);
    await persistMessage(w.persist, queued, 2);
    for (const u of ['a', 'b', 'c']) expect(w.messages.inboxOf(u).map((r) => r.frame.msgId)).toEqual([queued.msgId]);
  });
});

describe('4. a repeated client id never delivers twice', () => {
  it.each([2, 50])('the same id from %i sockets of one user at once: one msgId, one queued message, one live copy per device', async (sockets) => {
    const w = world({}, false);
    for (const c of ['bob-1', 'bob-2']) await w.registry.put(connectionRecord(c, 'bob', T0 - 60_000));
    const callers = Array.from({ length: sockets }, (_, i) => w.caller(`alice-${i}`, 'alice'));
    for (const c of callers) await w.registry.put(connectionRecord(c.connectionId, 'alice', T0 - 60_000));

    const results = await Promise.all(callers.map((c) => sendMessage(w.send, c, toUser('bob', 'same-id'))));

    const msgIds = new Set(results.map((r) => r.msgId));
    expect(msgIds.size).toBe(1);
    expect(w.uplink.enqueued).toHaveLength(1);
    expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
    const messageFramesTo = (c: string) => w.sender.framesTo(c).filter((f) => f.type === 'message');
    for (const c of ['bob-1', 'bob-2']) expect(messageFramesTo(c)).toHaveLength(1);
    // Every sending socket got exactly one ack with that msgId; each other alice socket at most one copy.
    for (const c of callers) {
      expect(w.sender.framesTo(c.connectionId).filter((f) => f.type === 'ack').map((f) => f.msgId)).toEqual([...msgIds]);
      expect(messageFramesTo(c.connectionId).length).toBeLessThanOrEqual(1);
    }
  });

  it('an owner that died after queueing: a concurrent retry answers rate_limited and delivers nothing; after the lease one retry takes over and delivers once', async () => {
    const w = world();
    await w.registry.put(connectionRecord('bob-1', 'bob', T0 - 60_000));
    // The first attempt hangs forever right after the queue took the message (a Lambda that died).
    w.messages.hook = (method) => (method === 'markClientIdQueued' ? new Promise<never>(() => undefined) : undefined);
    void sendMessage(w.send, w.caller('alice-1', 'alice'), toUser('bob', 'id-1'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(w.uplink.enqueued).toHaveLength(1);
    w.messages.hook = () => undefined;

    const started = w.clock.nowMs();
    await expect(sendMessage(w.send, w.caller('alice-2', 'alice'), toUser('bob', 'id-1'))).rejects.toMatchObject({ code: 'rate_limited' });
    expect(w.clock.nowMs() - started).toBeGreaterThanOrEqual(RETRY_WAIT_MS);
    expect(w.sender.framesTo('bob-1')).toEqual([]);

    w.clock.set(T0 + CLAIM_LEASE_MS + 1);
    const takeover = await sendMessage(w.send, w.caller('alice-3', 'alice'), toUser('bob', 'id-1'));
    expect(takeover).toMatchObject({ msgId: w.uplink.enqueued[0]!.msgId, duplicate: false });
    expect(w.sender.framesTo('bob-1').filter((f) => f.type === 'message').map((f) => f.msgId)).toEqual([takeover.msgId]);
    // SQS drops the second enqueue of the same msgId (FIFO de-duplication); the persister would skip it anyway.
    expect(new Set(w.uplink.enqueued.map((m) => m.msgId)).size).toBe(1);
    const again = await sendMessage(w.send, w.caller('alice-4', 'alice'), toUser('bob', 'id-1'));
    expect(again).toMatchObject({ msgId: takeover.msgId, duplicate: true, delivery: undefined });
    expect(w.sender.framesTo('bob-1').filter((f) => f.type === 'message')).toHaveLength(1);
  });

  it('an owner whose enqueue failed releases the claim: the client’s retry goes through at once with the same msgId', async () => {
    const w = world();
    w.uplink.failNext(new Error('SQS unavailable'));
    await expect(sendMessage(w.send, w.caller('a-1', 'a'), toUser('b', 'k'))).rejects.toThrow('SQS unavailable');
    const first = w.uplink.attempts[0]!.msgId;
    const started = w.clock.nowMs();
    const retry = await sendMessage(w.send, w.caller('a-1', 'a'), toUser('b', 'k'));
    expect(retry).toMatchObject({ msgId: first, duplicate: false });
    expect(w.clock.nowMs()).toBe(started); // no waiting
  });
});

describe('5. a client id cannot be poisoned', () => {
  it('a claim that expired and was deleted before markQueued is not re-created; the id works again afterwards', async () => {
    const w = world();
    w.messages.hook = (method, args) => {
      if (method === 'markClientIdQueued') w.messages.deleteClaim(args[0] as string, args[1] as string); // TTL ran
    };
    const first = await sendMessage(w.send, w.caller('a-1', 'a'), toUser('b', 'k'));
    w.messages.hook = () => undefined;
    expect(w.messages.claims.size).toBe(0); // nothing created: no row without msgId and TTL
    expect(first.afterAckFailures.map((f) => f.step)).toEqual(['markQueued']);
    expect(w.sender.framesTo('a-1')).toEqual([{ type: 'ack', id: 'k', msgId: first.msgId, ts: first.ts }]);

    w.clock.advance(400_000);
    const later = await sendMessage(w.send, w.caller('a-1', 'a'), toUser('b', 'k'));
    expect(later).toMatchObject({ duplicate: false });
    expect(later.msgId).not.toBe(first.msgId);
    expect(w.uplink.enqueued.map((m) => m.msgId)).toEqual([first.msgId, later.msgId]);
  });
});

describe('6. after the ack, failures are logged and counted, never sent as an error', () => {
  it('a throttled connection lookup during delivery: the send resolves with the failure recorded', async () => {
    const w = world();
    w.registry.listByUser = async () => {
      throw Object.assign(new Error('Rate exceeded'), { name: 'ProvisionedThroughputExceededException' });
    };
    const result = await sendMessage(w.send, w.caller('a-1', 'a'), toUser('b', 'k'));
    expect(result.afterAckFailures.map((f) => f.step)).toEqual(['delivery']);
    expect(w.sender.framesTo('a-1')).toEqual([{ type: 'ack', id: 'k', msgId: result.msgId, ts: result.ts }]);
    expect(w.uplink.enqueued).toHaveLength(1);
  });

  it('markQueued throttled: acked, no live delivery by this attempt; a retry after the lease delivers exactly once', async () => {
    const w = world();
    await w.registry.put(connectionRecord('b-1', 'b', T0 - 60_000));
    w.messages.hook = (method) => {
      if (method === 'markClientIdQueued') throw new Error('throttled');
    };
    const first = await sendMessage(w.send, w.caller('a-1', 'a'), toUser('b', 'k'));
    w.messages.hook = () => undefined;
    expect(first.afterAckFailures.map((f) => f.step)).toEqual(['markQueued']);
    expect(w.sender.framesTo('a-1').map((f) => f.type)).toEqual(['ack']);
    expect(w.sender.framesTo('b-1')).toEqual([]);

    w.clock.set(T0 + CLAIM_LEASE_MS + 1);
    const retry = await sendMessage(w.send, w.caller('a-1', 'a'), toUser('b', 'k'));
    expect(retry.msgId).toBe(first.msgId);
    expect(w.sender.framesTo('b-1').filter((f) => f.type === 'message').map((f) => f.msgId)).toEqual([first.msgId]);
  });

  it('a post of the ack that throws is recorded, and delivery still happens', async () => {
    const w = world();
    await w.registry.put(connectionRecord('b-1', 'b', T0 - 60_000));
    w.sender.script('a-1', 'throw');
    const result = await sendMessage(w.send, w.caller('a-1', 'a'), toUser('b'));
    expect(result.afterAckFailures.map((f) => f.step)).toEqual(['ack']);
    expect(w.sender.framesTo('b-1').map((f) => f.msgId)).toEqual([result.msgId]);
  });
});
