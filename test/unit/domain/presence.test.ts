import { jest } from '@jest/globals';
import {
  countPresence,
  defaultPresenceSettings,
  planPresence,
  PresenceConflictError,
  readPresence,
  splitForTransactions,
  stepsOf,
  type ConnectionChange,
  type PresenceDeps,
  type PresencePlan,
} from '../../../lambdas/domain/presence';
import { FakePresenceStore, insertOf, modificationOf, removalOf } from '../../support/fakes';
import { seededRandom } from '../../support/prng';

const depsOf = (store: FakePresenceStore, overrides: Partial<PresenceDeps> = {}): PresenceDeps & { sleeps: number[] } => {
  const sleeps: number[] = [];
  return { store, ...defaultPresenceSettings, sleep: async (ms) => void sleeps.push(ms), random: () => 0.5, ...overrides, sleeps };
};

/** What the counters must say for a set of rows (connectionId -> userId). */
const truthOf = (rows: ReadonlyMap<string, string>) => ({ online: rows.size, users: new Set(rows.values()).size });

/** Per-user counts of a set of rows, as the store keeps them (no entry for 0). */
const countsOf = (rows: ReadonlyMap<string, string>) => {
  const counts = new Map<string, number>();
  for (const userId of rows.values()) counts.set(userId, (counts.get(userId) ?? 0) + 1);
  return counts;
};

const seeded = seededRandom;

describe('stepsOf: what one change does to the counters', () => {
  it('an insert is +1 for the new row’s user, a removal −1 for the old row’s user', () => {
    expect(stepsOf(insertOf('e1', 'alice'))).toEqual([{ changeId: 'e1', userId: 'alice', delta: 1 }]);
    expect(stepsOf(removalOf('e2', 'alice'))).toEqual([{ changeId: 'e2', userId: 'alice', delta: -1 }]);
  });

  it('a modification of the same user moves nothing; one that changes the user moves one row between them', () => {
    expect(stepsOf(modificationOf('e3', 'alice'))).toEqual([]);
    expect(stepsOf(modificationOf('e4', 'alice', 'bob'))).toEqual([
      { changeId: 'e4', userId: 'alice', delta: -1 },
      { changeId: 'e4', userId: 'bob', delta: 1 },
    ]);
  });

  it('a row without a userId counts for nobody', () => {
    expect(stepsOf({ id: 'e5' })).toEqual([]);
  });
});

describe('planPresence: aggregation and crossings', () => {
  it('sums a mixed batch per user and counts only users crossing 0', () => {
    const counts = new Map([
      ['stays', 1], // 1 -> 2: no crossing
      ['leaves', 2], // 2 -> 0: −1 user
      ['flaps', 1], // 1 -> 0 -> 1: no crossing, checked only
    ]);
    const plan = planPresence(
      [
        insertOf('e1', 'arrives'), // 0 -> 1: +1 user
        insertOf('e2', 'stays'),
        removalOf('e3', 'leaves'),
        removalOf('e4', 'flaps'),
        modificationOf('e5', 'stays'), // ignored
        insertOf('e6', 'flaps'),
        removalOf('e7', 'leaves'),
        insertOf('e8', 'arrives'), // 1 -> 2
      ],
      counts,
    );
    expect(plan.changeIds).toEqual(['e1', 'e2', 'e3', 'e4', 'e6', 'e7', 'e8']);
    expect(Object.fromEntries(plan.users.map((u) => [u.userId, [u.from, u.to]]))).toEqual({
      arrives: [0, 2],
      stays: [1, 2],
      leaves: [2, 0],
      flaps: [1, 1],
    });
    expect(plan.onlineDelta).toBe(2 + 1 - 2 + 0);
    expect(plan.usersDelta).toBe(1 - 1);
    expect(plan.clamped).toEqual([]);
  });

  it('names each change once, even if the batch repeats a record', () => {
    const plan = planPresence([insertOf('e1', 'alice'), insertOf('e1', 'alice')], new Map());
    expect(plan.changeIds).toEqual(['e1']);
    expect(plan.onlineDelta).toBe(1);
  });

  it('never takes a count below 0: a removal that finds 0 is dropped and reported, in stream order', () => {
    // A row written before the stream existed is removed, then the user connects again.
    const plan = planPresence([removalOf('e1', 'old'), insertOf('e2', 'old'), removalOf('e3', 'gone')], new Map());
    expect(plan.users).toEqual([
      { userId: 'old', from: 0, to: 1 },
      { userId: 'gone', from: 0, to: 0 },
    ]);
    expect(plan.onlineDelta).toBe(1);
    expect(plan.usersDelta).toBe(1);
    expect(plan.clamped).toEqual([
      { changeId: 'e1', userId: 'old', delta: -1 },
      { changeId: 'e3', userId: 'gone', delta: -1 },
    ]);
  });
});

describe('splitForTransactions', () => {
  const itemsOf = (group: ConnectionChange[]) => group.length + new Set(group.flatMap((c) => stepsOf(c).map((s) => s.userId))).size + 1;

  it('cuts 50 inserts of 50 users (101 items) in two, in order', () => {
    const changes = Array.from({ length: 50 }, (_, i) => insertOf(`e${i}`, `u${i}`));
    const groups = splitForTransactions(changes, 100);
    expect(groups.length).toBe(2);
    expect(groups.flat()).toEqual(changes);
    for (const group of groups) expect(itemsOf(group)).toBeLessThanOrEqual(100);
  });

  it('keeps 50 changes of few users in one transaction and leaves out modifications', () => {
    const changes = Array.from({ length: 50 }, (_, i) => (i % 2 ? insertOf(`e${i}`, `u${i % 4}`) : modificationOf(`e${i}`, 'u0')));
    expect(splitForTransactions(changes, 100)).toEqual([changes.filter((_, i) => i % 2)]);
  });

  it('respects any limit, a user moved by a change counting once per group', () => {
    const random = seeded(7);
    const changes = Array.from({ length: 200 }, (_, i) =>
      random() < 0.2 ? modificationOf(`e${i}`, `u${Math.floor(random() * 30)}`, `u${Math.floor(random() * 30)}`) : insertOf(`e${i}`, `u${Math.floor(random() * 30)}`),
    );
    for (const max of [4, 7, 25, 100]) {
      const groups = splitForTransactions(changes, max);
      for (const group of groups) expect(itemsOf(group)).toBeLessThanOrEqual(max);
      expect(groups.flat().map((c) => c.id)).toEqual(changes.filter((c) => stepsOf(c).length > 0).map((c) => c.id));
    }
  });
});

describe('countPresence', () => {
  it('follows connects and disconnects of 2 users × 2 devices exactly', async () => {
    const store = new FakePresenceStore();
    const deps = depsOf(store);
    await countPresence(deps, [insertOf('1', 'alice'), insertOf('2', 'alice'), insertOf('3', 'bob')]);
    expect(await readPresence(store)).toEqual({ online: 3, users: 2 });
    await countPresence(deps, [insertOf('4', 'bob'), modificationOf('5', 'bob'), removalOf('6', 'alice')]);
    expect(await readPresence(store)).toEqual({ online: 3, users: 2 });
    await countPresence(deps, [removalOf('7', 'alice')]);
    expect(await readPresence(store)).toEqual({ online: 2, users: 1 });
    expect(store.counts).toEqual(new Map([['bob', 2]])); // alice's row is gone, not left at 0
    await countPresence(deps, [removalOf('8', 'bob'), removalOf('9', 'bob')]);
    expect(await readPresence(store)).toEqual({ online: 0, users: 0 });
    expect(store.counts.size).toBe(0);
  });

  it('counts a retried batch once', async () => {
    const store = new FakePresenceStore();
    const deps = depsOf(store);
    const batch = [insertOf('1', 'alice'), insertOf('2', 'bob'), removalOf('3', 'bob')];
    const first = await countPresence(deps, batch);
    expect(first).toMatchObject({ changes: 3, counted: 3, alreadyCounted: 0, transactions: 1 });
    const again = await countPresence(deps, batch);
    expect(again).toMatchObject({ counted: 0, alreadyCounted: 3, transactions: 0 });
    expect(await readPresence(store)).toEqual({ online: 1, users: 1 });
  });

  it('counts a batch once when the first answer was lost after the transaction committed', async () => {
    const store = new FakePresenceStore();
    let lose = true;
    store.afterApply = () => {
      if (lose) {
        lose = false;
        throw new Error('socket hang up');
      }
    };
    const batch = [insertOf('1', 'alice'), insertOf('2', 'alice')];
    await expect(countPresence(depsOf(store), batch)).rejects.toThrow('socket hang up');
    // The stream delivers the batch again, larger this time (Lambda may add newer records).
    const report = await countPresence(depsOf(store), [...batch, insertOf('3', 'bob')]);
    expect(report).toMatchObject({ counted: 1, alreadyCounted: 2 });
    expect(await readPresence(store)).toEqual({ online: 3, users: 2 });
  });

  it('a batch cut in several transactions that failed half-way is finished, not redone, by the retry', async () => {
    const store = new FakePresenceStore(10);
    const batch = Array.from({ length: 12 }, (_, i) => insertOf(`e${i}`, `u${i}`));
    let transactions = 0;
    store.beforeApply = () => {
      if (++transactions === 3) throw new Error('throttled');
    };
    await expect(countPresence(depsOf(store, { maxTransactionItems: 10 }), batch)).rejects.toThrow('throttled');
    const partial = await readPresence(store);
    expect(partial.online).toBeGreaterThan(0);
    expect(partial.online).toBeLessThan(12);
    const report = await countPresence(depsOf(store, { maxTransactionItems: 10 }), batch);
    expect(report.alreadyCounted + report.counted).toBe(12);
    expect(report.alreadyCounted).toBe(partial.online);
    expect(await readPresence(store)).toEqual({ online: 12, users: 12 });
  });

  it('keeps every transaction within 100 items for a batch of 50 connects of 50 users', async () => {
    const store = new FakePresenceStore(100);
    const report = await countPresence(depsOf(store), Array.from({ length: 50 }, (_, i) => insertOf(`e${i}`, `u${i}`)));
    expect(report.transactions).toBe(2);
    expect(store.stats.maxItems).toBeLessThanOrEqual(100);
    expect(await readPresence(store)).toEqual({ online: 50, users: 50 });
  });

  it('two shards connecting the same user concurrently: one commits, the other re-reads and counts on top', async () => {
    const store = new FakePresenceStore();
    const deps = depsOf(store);
    let shardB: Promise<unknown> | undefined;
    store.beforeApply = async (plan: PresencePlan) => {
      if (plan.changeIds.includes('a1') && !shardB) {
        // Shard B reads, plans and commits between shard A's read and A's commit.
        shardB = countPresence(deps, [insertOf('b1', 'alice')]);
        await shardB;
      }
    };
    const reportA = await countPresence(deps, [insertOf('a1', 'alice')]);
    expect(reportA.conflicts).toBe(1);
    expect(reportA.usersDelta).toBe(0); // B already took alice from 0 to 1
    expect(deps.sleeps.length).toBe(1);
    expect(await readPresence(store)).toEqual({ online: 2, users: 1 });
    expect(store.counts.get('alice')).toBe(2);
  });

  it('two shards removing a user’s last two devices concurrently take users down by exactly one', async () => {
    const store = new FakePresenceStore();
    const deps = depsOf(store);
    await countPresence(deps, [insertOf('a1', 'alice'), insertOf('b1', 'alice'), insertOf('c1', 'bob')]);
    // Both read alice = 2 before either commits: the first two transactions wait for each other.
    let arrivals = 0;
    let release!: () => void;
    const barrier = new Promise<void>((resolve) => (release = resolve));
    store.beforeApply = async () => {
      if (++arrivals > 2) return;
      if (arrivals === 2) release();
      await barrier;
    };
    const pending = Promise.all([countPresence(deps, [removalOf('a2', 'alice')]), countPresence(deps, [removalOf('b2', 'alice')])]);
    const [r1, r2] = await pending;
    expect(r1.conflicts + r2.conflicts).toBe(1);
    expect(r1.usersDelta + r2.usersDelta).toBe(-1);
    expect(await readPresence(store)).toEqual({ online: 1, users: 1 });
    expect(store.counts.has('alice')).toBe(false);
  });

  it('gives up after maxAttempts conflicts (the stream retries the batch) with full-jitter backoff', async () => {
    const store = new FakePresenceStore();
    store.beforeApply = (plan) => {
      // Someone else always moves alice first.
      const current = store.counts.get('alice') ?? 0;
      store.counts.set('alice', current + 1);
      void plan;
    };
    const deps = depsOf(store, { maxAttempts: 4, baseDelayMs: 10, random: () => 1 });
    await expect(countPresence(deps, [insertOf('e1', 'alice')])).rejects.toBeInstanceOf(PresenceConflictError);
    expect(deps.sleeps).toEqual([10, 20, 40]);
    expect(store.applied.size).toBe(0);
  });

  it('a batch of modifications only reads and writes nothing', async () => {
    const store = new FakePresenceStore();
    const report = await countPresence(depsOf(store), [modificationOf('m1', 'alice'), modificationOf('m2', 'bob')]);
    expect(report).toMatchObject({ changes: 2, ignored: 2, counted: 0, transactions: 0 });
    expect(store.stats.reads).toBe(0);
  });

  it('seeded interleavings: 4 shards, redelivered and lost-answer batches, the counters always end equal to the rows', async () => {
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const random = seeded(seed);
      const store = new FakePresenceStore(100);
      const deps = depsOf(store, { random, maxAttempts: 50 });
      const rows = new Map<string, string>();
      // Build each shard's change log: connection ids are hashed to shards, so a user's devices spread over shards.
      const logs: ConnectionChange[][] = [[], [], [], []];
      let next = 0;
      for (let i = 0; i < 400; i++) {
        const live = [...rows.keys()];
        if (live.length > 0 && random() < 0.45) {
          const id = live[Math.floor(random() * live.length)]!;
          logs[Number(id.slice(1)) % 4]!.push(removalOf(`ev${next++}`, rows.get(id)!));
          rows.delete(id);
        } else if (live.length > 0 && random() < 0.1) {
          const id = live[Math.floor(random() * live.length)]!;
          logs[Number(id.slice(1)) % 4]!.push(modificationOf(`ev${next++}`, rows.get(id)!));
        } else {
          const id = `c${next}`;
          const userId = `u${Math.floor(random() * 6)}`;
          rows.set(id, userId);
          logs[next % 4]!.push(insertOf(`ev${next++}`, userId));
        }
      }
      // Each shard: batches of up to 50 in order; a batch may fail after committing (lost answer) or be delivered twice.
      store.afterApply = () => {
        if (random() < 0.15) throw new Error('lost answer');
      };
      store.beforeApply = () => new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 2)));
      await Promise.all(
        logs.map(async (log) => {
          for (let at = 0; at < log.length; ) {
            const size = 1 + Math.floor(random() * 50);
            const batch = log.slice(at, at + size);
            try {
              await countPresence(deps, batch);
              if (random() < 0.2) await countPresence(deps, batch); // duplicate delivery
              at += size;
            } catch {
              // retried: the same batch again (at unchanged)
            }
          }
        }),
      );
      expect({ seed, stats: await readPresence(store) }).toEqual({ seed, stats: truthOf(rows) });
      expect({ seed, counts: store.counts }).toEqual({ seed, counts: countsOf(rows) });
    }
  });
});

describe('readPresence', () => {
  it('returns the stored totals', async () => {
    const warn = jest.fn();
    const store = new FakePresenceStore();
    store.total = { online: 7, users: 3 };
    expect(await readPresence(store, warn)).toEqual({ online: 7, users: 3 });
    expect(warn).not.toHaveBeenCalled();
  });

  it('is 0/0 before anything was counted', async () => {
    expect(await readPresence(new FakePresenceStore())).toEqual({ online: 0, users: 0 });
  });

  it('clamps counters that drifted below 0, or more users than connections, and says so', async () => {
    const warn = jest.fn();
    const store = new FakePresenceStore();
    store.total = { online: -2, users: -1 };
    expect(await readPresence(store, warn)).toEqual({ online: 0, users: 0 });
    store.total = { online: 2, users: 5 };
    expect(await readPresence(store, warn)).toEqual({ online: 2, users: 2 });
    expect(warn).toHaveBeenCalledTimes(2);
    expect(warn.mock.calls[0]![1]).toEqual({ stored: { online: -2, users: -1 }, reported: { online: 0, users: 0 } });
  });
});
