/**
 * Presence counters for the admin API's `GET /v1/stats`: how many connections are online and how
 * many distinct users have at least one, kept exact without a scan per request.
 *
 * The counters are moved by the connections table's change stream (handlers/presence-counter.ts),
 * which sees every insert and removal, whoever made it: `$connect`, `$disconnect` (kicks
 * included), a 410 clean-up and TTL. The store keeps
 *   - one count per user, `n` = that user's rows (absent = 0),
 *   - the totals: `online` = Σ n, `users` = #{users with n > 0},
 *   - one "applied" marker per change that moved a counter, kept longer than the stream keeps a
 *     record (24 h), so a change delivered again is recognised and skipped.
 *
 * Exactness. A stream is at-least-once: a failed batch is retried whole, and several shards are
 * processed concurrently (rows of one user live in several shards: the key is the connection id).
 * Each transaction (`PresenceStore.applyBatch`) commits a plan only if the state it was computed
 * from still holds: every change it counts has no marker yet (conditional put), and every user it
 * touches still has the count it was read with (conditional update). It adds the totals in the
 * same transaction. So a change is counted at most once (its marker), the totals always equal the
 * sum of the per-user counts (same transaction), and concurrent shards moving the same user
 * serialise (one commits, the other re-reads and tries again). Every change is counted at least
 * once because the stream delivers it until the consumer succeeds.
 *
 * Why markers per change and not a checkpoint per shard: Lambda's stream event carries no shard
 * id, and sequence numbers only order records within a shard, so a checkpoint keyed on the
 * stream would confuse shards (one shard's lower numbers would look "already applied"). Markers
 * need no shard id, and they stay right whatever batch boundaries a retry, a bisected batch or a
 * parallelization factor brings. Their cost: one more small write per counted change.
 *
 * No AWS here: stream records are turned into `ConnectionChange`s by the handler, and the DynamoDB
 * adapter is adapters/dynamo-presence-store.ts.
 */

/** One change of a connections row, as far as presence is concerned. */
export interface ConnectionChange {
  /** Unique id of the change (a stream record's `eventID`): the unit of "already counted". */
  id: string;
  /** The row's userId before the change; undefined when the row did not exist (an insert) or had none. */
  oldUserId?: string;
  /** The row's userId after the change; undefined when the row is gone (a removal) or has none. */
  newUserId?: string;
}

/** +1 or −1 on one user's count. */
export interface PresenceStep {
  changeId: string;
  userId: string;
  delta: 1 | -1;
}

/**
 * What a change does to the counters: an insert +1 for its user, a removal −1; a modification
 * nothing, unless it moved the row to another user (never done by the gateway, counted anyway).
 */
export function stepsOf(change: ConnectionChange): PresenceStep[] {
  if (change.oldUserId === change.newUserId) return [];
  const steps: PresenceStep[] = [];
  if (change.oldUserId !== undefined) steps.push({ changeId: change.id, userId: change.oldUserId, delta: -1 });
  if (change.newUserId !== undefined) steps.push({ changeId: change.id, userId: change.newUserId, delta: 1 });
  return steps;
}

/** Changes that move a counter (the others need neither a marker nor a write), each id once. */
export function countedChanges(changes: readonly ConnectionChange[]): ConnectionChange[] {
  const seen = new Set<string>();
  return changes.filter((change) => stepsOf(change).length > 0 && !seen.has(change.id) && (seen.add(change.id), true));
}

const usersOf = (changes: readonly ConnectionChange[]): string[] => [...new Set(changes.flatMap((c) => stepsOf(c).map((s) => s.userId)))];

/** What the store holds for the changes and users of a batch (read consistently). */
export interface PresenceState {
  /** Ids among those asked for that are already counted. */
  applied: ReadonlySet<string>;
  /** Counts of the users asked for; a user missing here has 0. */
  counts: ReadonlyMap<string, number>;
}

/** One user's count moves from `from` (as read) to `to`; `from === to` is only a check. */
export interface UserMove {
  userId: string;
  from: number;
  to: number;
}

/** A transaction's worth of counting, computed from a `PresenceState`. */
export interface PresencePlan {
  /** Changes to mark as counted; each must not be marked yet. */
  changeIds: string[];
  /** Every user the changes touch, with the count read and the count to write. */
  users: UserMove[];
  /** Added to `online`: Σ (to − from). */
  onlineDelta: number;
  /** Added to `users`: users going 0 → positive minus users going positive → 0. */
  usersDelta: number;
  /** Removals that found their user at 0 and were not counted below it (see `planPresence`). */
  clamped: PresenceStep[];
}

/**
 * The crossing logic. Steps are applied per user in stream order, starting from the count read.
 * A count never goes below 0: a removal that finds 0 is dropped and reported in `clamped`. With
 * every change delivered in order this never happens (a row's removal comes after its insert, in
 * the same shard); it happens for a row written before the stream existed or whose insert was
 * lost (a record older than 24 h), and dropping it keeps that user's count right from then on.
 */
export function planPresence(changes: readonly ConnectionChange[], counts: ReadonlyMap<string, number>): PresencePlan {
  const counted = countedChanges(changes);
  const moves = new Map<string, UserMove>();
  const clamped: PresenceStep[] = [];
  for (const change of counted) {
    for (const step of stepsOf(change)) {
      let move = moves.get(step.userId);
      if (!move) {
        const from = counts.get(step.userId) ?? 0;
        moves.set(step.userId, (move = { userId: step.userId, from, to: from }));
      }
      if (step.delta < 0 && move.to <= 0) {
        clamped.push(step);
        move.to = 0;
      } else move.to += step.delta;
    }
  }
  const users = [...moves.values()];
  const positive = (n: number) => (n > 0 ? 1 : 0);
  return {
    changeIds: counted.map((c) => c.id),
    users,
    onlineDelta: users.reduce((sum, m) => sum + (m.to - m.from), 0),
    usersDelta: users.reduce((sum, m) => sum + positive(m.to) - positive(m.from), 0),
    clamped,
  };
}

/**
 * Cuts the counted changes, in order, into groups whose transaction fits in `maxItems` items
 * (one marker per change, one item per distinct user, one for the totals). Each group is its own
 * transaction; a group applied before a failure is recognised by its markers when the batch
 * comes again.
 */
export function splitForTransactions(changes: readonly ConnectionChange[], maxItems: number): ConnectionChange[][] {
  const groups: ConnectionChange[][] = [];
  let group: ConnectionChange[] = [];
  let users = new Set<string>();
  for (const change of countedChanges(changes)) {
    const changeUsers = stepsOf(change).map((s) => s.userId);
    const newUsers = changeUsers.filter((u) => !users.has(u)).length;
    if (group.length > 0 && group.length + 1 + users.size + newUsers + 1 > maxItems) {
      groups.push(group);
      group = [];
      users = new Set();
    }
    group.push(change);
    for (const u of changeUsers) users.add(u);
  }
  if (group.length > 0) groups.push(group);
  return groups;
}

export interface PresenceStats {
  /** Open connections (rows of the connections table). */
  online: number;
  /** Distinct users with at least one open connection. */
  users: number;
}

export type ApplyOutcome = 'applied' | 'conflict';

export interface PresenceStore {
  /** Strongly consistent: which of `changeIds` are already counted, and the counts of `userIds`. */
  readState(changeIds: readonly string[], userIds: readonly string[]): Promise<PresenceState>;
  /**
   * All or nothing: marks `plan.changeIds` as counted (each only if not marked yet), moves every
   * user from `from` to `to` (only if its count still is `from`; a count of 0 is stored as no
   * row) and adds the deltas to the totals. `conflict` when a condition failed or a concurrent
   * transaction got in the way: then nothing was written. Other failures throw.
   */
  applyBatch(plan: PresencePlan): Promise<ApplyOutcome>;
  /** The totals as stored (strongly consistent); 0 when nothing was ever counted. */
  readStats(): Promise<PresenceStats>;
}

export interface PresenceDeps {
  store: PresenceStore;
  /** Items one transaction may hold (DynamoDB: 100). */
  maxTransactionItems: number;
  /** Tries of one group before giving up (the stream then retries the whole batch). */
  maxAttempts: number;
  baseDelayMs: number;
  sleep: (ms: number) => Promise<void>;
  random: () => number;
}

export const defaultPresenceSettings = { maxTransactionItems: 100, maxAttempts: 8, baseDelayMs: 25 } as const;

export interface PresenceReport {
  /** Changes in the batch. */
  changes: number;
  /** Changes counted now. */
  counted: number;
  /** Changes found already counted (a retried or repeated batch). */
  alreadyCounted: number;
  /** Changes that move no counter (modifications). */
  ignored: number;
  /** Transactions committed. */
  transactions: number;
  /** Transactions refused by a condition and tried again. */
  conflicts: number;
  onlineDelta: number;
  usersDelta: number;
  clamped: PresenceStep[];
}

export class PresenceConflictError extends Error {
  constructor(attempts: number) {
    super(`presence counters: still conflicting after ${attempts} attempts; the batch will be retried`);
    this.name = 'PresenceConflictError';
  }
}

/**
 * Counts a batch of changes (one stream batch, in stream order) exactly once, however often it is
 * delivered and whatever runs concurrently: per group, read the markers and counts, plan, and
 * commit conditionally; on a conflict read again and re-plan (full-jitter backoff, bounded). Throws
 * when a group cannot be committed, so the caller fails and the stream delivers the batch again.
 */
export async function countPresence(deps: PresenceDeps, changes: readonly ConnectionChange[]): Promise<PresenceReport> {
  const report: PresenceReport = {
    changes: changes.length,
    counted: 0,
    alreadyCounted: 0,
    ignored: changes.length - countedChanges(changes).length,
    transactions: 0,
    conflicts: 0,
    onlineDelta: 0,
    usersDelta: 0,
    clamped: [],
  };
  for (const group of splitForTransactions(changes, deps.maxTransactionItems)) {
    const ids = group.map((c) => c.id);
    const userIds = usersOf(group);
    for (let attempt = 1; ; attempt++) {
      const state = await deps.store.readState(ids, userIds);
      const pending = group.filter((c) => !state.applied.has(c.id));
      if (pending.length === 0) {
        report.alreadyCounted += group.length;
        break;
      }
      const plan = planPresence(pending, state.counts);
      if ((await deps.store.applyBatch(plan)) === 'applied') {
        report.alreadyCounted += group.length - pending.length;
        report.counted += pending.length;
        report.transactions++;
        report.onlineDelta += plan.onlineDelta;
        report.usersDelta += plan.usersDelta;
        report.clamped.push(...plan.clamped);
        break;
      }
      report.conflicts++;
      if (attempt >= deps.maxAttempts) throw new PresenceConflictError(attempt);
      await deps.sleep(deps.random() * deps.baseDelayMs * 2 ** (attempt - 1));
    }
  }
  return report;
}

const defaultWarn = (message: string, details: Record<string, unknown>) => console.warn(JSON.stringify({ level: 'WARN', message, ...details }));

/**
 * `GET /v1/stats`: `{ online, users }` from the stored totals, one strongly consistent read.
 * Never negative and never more users than connections: an impossible value (only possible after
 * drift, see docs/architecture.md "Presence") is clamped and reported through `warn`.
 */
export async function readPresence(
  store: Pick<PresenceStore, 'readStats'>,
  warn: (message: string, details: Record<string, unknown>) => void = defaultWarn,
): Promise<PresenceStats> {
  const stored = await store.readStats();
  const online = Math.max(0, stored.online);
  const users = Math.min(Math.max(0, stored.users), online);
  if (online !== stored.online || users !== stored.users) {
    warn('presence counters out of range; clamped (a recount repairs them)', { stored: { ...stored }, reported: { online, users } });
  }
  return { online, users };
}
