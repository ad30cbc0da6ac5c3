/**
 * In-memory fakes of the domain interfaces (lambdas/domain/*-ports.ts, connection-registry.ts,
 * clock.ts). They follow the documented contracts, including the awkward parts: expired rows
 * are invisible, a stale-row removal only removes a row of the same user, an expired client-id
 * claim can be taken again, inbox positions sort as plain strings.
 */
import { epochSeconds, type Clock } from '../../lambdas/domain/clock';
import type { ConnectionRecord, ConnectionRegistry, OpenedRange, ScanKey } from '../../lambdas/domain/connection-registry';
import type { DeliveryDeps } from '../../lambdas/domain/delivery';
import type { NonceStore } from '../../lambdas/domain/admin-auth';
import type { FanoutQueue, FanoutTask, JobCounters, JobRecord, JobStore } from '../../lambdas/domain/fanout';
import type { MessageFrame } from '../../lambdas/domain/frames';
import {
  WriteDeadlineError,
  type ClientIdClaim,
  type ConnectionSender,
  type GroupDirectory,
  type InboxRow,
  type MessageStore,
  type PostOutcome,
  type QueuedMessage,
  type StoreAttempt,
  type StoredMessageState,
  type UplinkQueue,
} from '../../lambdas/domain/messaging-ports';
import { readInboxWithin, type InboxPageFetch, type StoredInboxRow } from '../../lambdas/adapters/inbox-pages';

/** Plain string order, the order of a DynamoDB string sort key (not localeCompare). */
const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export class ManualClock implements Clock {
  constructor(private now: number = Date.UTC(2026, 0, 1)) {}
  nowMs(): number {
    return this.now;
  }
  set(ms: number): void {
    this.now = ms;
  }
  advance(ms: number): void {
    this.now += ms;
  }
}

export class FakeConnectionRegistry implements ConnectionRegistry {
  readonly rows = new Map<string, ConnectionRecord>();
  /** Every write asked for, in order (`put c1`, `remove c1`, `removeStale c1`), taken effect or not. */
  readonly writes: string[] = [];

  async put(record: ConnectionRecord): Promise<void> {
    this.writes.push(`put ${record.connectionId}`);
    this.rows.set(record.connectionId, { ...record });
  }

  async remove(connectionId: string): Promise<void> {
    this.writes.push(`remove ${connectionId}`);
    this.rows.delete(connectionId);
  }

  async removeStale(connectionId: string, userId: string): Promise<boolean> {
    this.writes.push(`removeStale ${connectionId}`);
    if (this.rows.get(connectionId)?.userId !== userId) return false;
    return this.rows.delete(connectionId);
  }

  async get(connectionId: string, nowMs: number): Promise<ConnectionRecord | undefined> {
    const row = this.rows.get(connectionId);
    return row && row.expiresAt > epochSeconds(nowMs) ? { ...row } : undefined;
  }

  /** Every listByUser call: whose connections, and the connectedAt range asked for (the adapter's key condition). */
  readonly lookups: Array<{ userId: string; opened: OpenedRange }> = [];

  async listByUser(userId: string, nowMs: number, opened: OpenedRange = {}): Promise<ConnectionRecord[]> {
    this.lookups.push({ userId, opened: { ...opened } });
    return [...this.rows.values()]
      .filter((row) => row.userId === userId && row.expiresAt > epochSeconds(nowMs))
      .filter((row) => (opened.after === undefined || row.connectedAt > opened.after) && (opened.notAfter === undefined || row.connectedAt <= opened.notAfter))
      .sort((a, b) => a.connectedAt - b.connectedAt)
      .map((row) => ({ ...row }));
  }

  /** Like a DynamoDB parallel scan: rows split among segments by hash, `limit` rows READ per page (expired ones dropped after). */
  async scanPage(segment: number, totalSegments: number, startKey: ScanKey | undefined, limit: number, nowMs: number) {
    const inSegment = [...this.rows.values()]
      .filter((row) => hashOf(row.connectionId) % totalSegments === segment)
      .sort((a, b) => byString(a.connectionId, b.connectionId));
    const from = startKey ? inSegment.findIndex((row) => row.connectionId > (startKey.connectionId as string)) : 0;
    const read = from < 0 ? [] : inSegment.slice(from, from + limit);
    const more = from >= 0 && from + limit < inSegment.length;
    return {
      records: read.filter((row) => row.expiresAt > epochSeconds(nowMs)).map((row) => ({ ...row })),
      nextKey: more ? { connectionId: read[read.length - 1]!.connectionId } : undefined,
    };
  }
}

const hashOf = (text: string) => [...text].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);

interface ClaimRow extends ClientIdClaim {
  expiresAt: number;
}

interface MessageRow extends StoreAttempt {
  msgId: string;
  state: StoredMessageState['state'];
  expiresAt: number;
}

interface InboxEntry {
  frame: MessageFrame;
  expiresAt: number;
}

/** A Query page stops once it has read 1 MB. */
const QUERY_PAGE_BYTES = 1024 * 1024;

/** Thrown like DynamoDB's ConditionalCheckFailedException where the adapter would see one. */
export class FakeConditionalCheckFailed extends Error {
  constructor() {
    super('The conditional request failed');
    this.name = 'ConditionalCheckFailedException';
  }
}

type StoreMethod = keyof MessageStore;
/** Runs before an operation takes effect: throw to make it fail, await to delay it. */
export type StoreHook = (method: StoreMethod, args: unknown[]) => Promise<void> | void;

/**
 * The messages table in memory, with DynamoDB's semantics where the code relies on them:
 * conditional writes fail instead of creating rows, an update never creates a claim, an
 * expired row still exists (TTL lags) but conditions and reads treat it as the adapter does,
 * and a write refused by its deadline writes nothing. `hook` lets a test crash or delay any
 * operation; `now` is the clock the deadline is checked against (the adapter uses Date.now()).
 */
export class FakeMessageStore implements MessageStore {
  readonly claims = new Map<string, ClaimRow>();
  readonly messages = new Map<string, MessageRow>();
  /** msgId -> chunk index -> position: rows of their own, as in the adapter (no message row needed). */
  readonly chunks = new Map<string, Map<number, string>>();
  /** userId -> position -> row. */
  readonly inboxes = new Map<string, Map<string, InboxEntry>>();
  hook: StoreHook = () => undefined;

  constructor(private readonly now: () => number = () => Date.now()) {}

  private static claimKey = (userId: string, clientId: string) => `${userId}\u0000${clientId}`;

  private async before(method: StoreMethod, ...args: unknown[]): Promise<void> {
    await this.hook(method, args);
  }

  async claimClientId(userId: string, clientId: string, candidate: ClientIdClaim, expiresAt: number, nowMs: number): Promise<ClientIdClaim | undefined> {
    await this.before('claimClientId', userId, clientId, candidate, expiresAt, nowMs);
    const key = FakeMessageStore.claimKey(userId, clientId);
    const existing = this.claims.get(key);
    if (existing && existing.expiresAt > epochSeconds(nowMs)) return claimView(existing);
    this.claims.set(key, { ...candidate, expiresAt });
    return undefined;
  }

  async getClientIdClaim(userId: string, clientId: string, nowMs: number): Promise<ClientIdClaim | undefined> {
    await this.before('getClientIdClaim', userId, clientId, nowMs);
    const row = this.claims.get(FakeMessageStore.claimKey(userId, clientId));
    return row && row.expiresAt > epochSeconds(nowMs) ? claimView(row) : undefined;
  }

  async takeOverClientId(userId: string, clientId: string, fromOwner: string, toOwner: string, leaseUntil: number): Promise<boolean> {
    await this.before('takeOverClientId', userId, clientId, fromOwner, toOwner, leaseUntil);
    const row = this.claims.get(FakeMessageStore.claimKey(userId, clientId));
    if (!row || row.owner !== fromOwner || row.state !== 'pending') return false;
    Object.assign(row, { owner: toOwner, leaseUntil });
    return true;
  }

  async releaseClientId(userId: string, clientId: string, owner: string): Promise<boolean> {
    await this.before('releaseClientId', userId, clientId, owner);
    const row = this.claims.get(FakeMessageStore.claimKey(userId, clientId));
    if (!row || row.owner !== owner || row.state !== 'pending') return false;
    row.leaseUntil = 0;
    return true;
  }

  async markClientIdQueued(userId: string, clientId: string, owner: string): Promise<boolean> {
    await this.before('markClientIdQueued', userId, clientId, owner);
    const row = this.claims.get(FakeMessageStore.claimKey(userId, clientId));
    if (!row || row.owner !== owner) return false; // conditional: never creates a row
    row.state = 'queued';
    return true;
  }

  /** What TTL eventually does: the row is gone. */
  deleteClaim(userId: string, clientId: string): void {
    this.claims.delete(FakeMessageStore.claimKey(userId, clientId));
  }

  async getMessageState(msgId: string): Promise<StoredMessageState | undefined> {
    await this.before('getMessageState', msgId);
    const row = this.messages.get(msgId);
    return row && { msgId, state: row.state, ...attemptView(row), chunksDone: Object.fromEntries(this.chunks.get(msgId) ?? []) };
  }

  async beginStore(msgId: string, audience: readonly string[], position: string, expiresAt: number): Promise<StoreAttempt> {
    await this.before('beginStore', msgId, audience, position, expiresAt);
    const row = this.messages.get(msgId);
    const next: MessageRow = {
      msgId,
      state: 'storing',
      positions: [...new Set([...(row?.positions ?? []), position])],
      audience: row?.audience.length ? row.audience : [...audience],
      expiresAt,
    };
    this.messages.set(msgId, next);
    return attemptView(next);
  }

  async putInboxRows(userIds: readonly string[], position: string, frame: MessageFrame, expiresAt: number, notAfterMs: number): Promise<void> {
    await this.before('putInboxRows', userIds, position, frame, expiresAt, notAfterMs);
    if (this.now() > notAfterMs) throw new WriteDeadlineError(`inbox rows of ${frame.msgId} at ${position}`);
    for (const userId of userIds) {
      let inbox = this.inboxes.get(userId);
      if (!inbox) this.inboxes.set(userId, (inbox = new Map()));
      inbox.set(position, { frame: structuredClone(frame), expiresAt });
    }
  }

  async deleteInboxRows(userIds: readonly string[], position: string): Promise<void> {
    await this.before('deleteInboxRows', userIds, position);
    for (const userId of userIds) this.inboxes.get(userId)?.delete(position);
  }

  async markChunkStored(msgId: string, index: number, position: string, expiresAt: number): Promise<boolean> {
    await this.before('markChunkStored', msgId, index, position, expiresAt);
    let chunks = this.chunks.get(msgId);
    if (!chunks) this.chunks.set(msgId, (chunks = new Map()));
    if (chunks.has(index)) return false;
    chunks.set(index, position);
    return true;
  }

  async markStored(msgId: string): Promise<void> {
    await this.before('markStored', msgId);
    const row = this.messages.get(msgId);
    if (row) row.state = 'stored';
  }

  /** What readInbox read, expired rows included, as a Query would be billed for it: pages, rows, bytes of frame JSON. */
  readonly inboxReads = { pages: 0, rows: 0, bytes: 0 };

  /** Pages like a DynamoDB Query (at most `limit` rows and about 1 MB, `next` whenever either stopped it), through the adapter's reader. */
  async readInbox(userId: string, afterPosition: string | undefined, max: number, maxBytes: number, nowMs: number): Promise<{ rows: InboxRow[]; more: boolean }> {
    await this.before('readInbox', userId, afterPosition, max, maxBytes, nowMs);
    const inbox = [...(this.inboxes.get(userId) ?? new Map<string, InboxEntry>()).entries()].sort(([a], [b]) => byString(a, b));
    const fetchPage: InboxPageFetch = async (after, limit) => {
      const rows: StoredInboxRow[] = [];
      let bytes = 0;
      for (const [position, row] of inbox) {
        if (rows.length === limit || bytes >= QUERY_PAGE_BYTES) break;
        if (after !== undefined && position <= after) continue;
        const frameJson = JSON.stringify(row.frame);
        rows.push({ position, frameJson, expiresAt: row.expiresAt });
        bytes += Buffer.byteLength(frameJson, 'utf8');
      }
      this.inboxReads.pages += 1;
      this.inboxReads.rows += rows.length;
      this.inboxReads.bytes += bytes;
      const stopped = rows.length === limit || bytes >= QUERY_PAGE_BYTES;
      return { rows, next: stopped ? rows[rows.length - 1]?.position : undefined };
    };
    return readInboxWithin(fetchPage, afterPosition, max, maxBytes, nowMs);
  }

  /** Every row of a user's inbox (expired ones too), in position order: for assertions. */
  inboxOf(userId: string): InboxRow[] {
    return [...(this.inboxes.get(userId) ?? new Map<string, InboxEntry>()).entries()]
      .sort(([a], [b]) => byString(a, b))
      .map(([position, row]) => ({ position, frame: row.frame }));
  }
}

const claimView = (row: ClaimRow): ClientIdClaim => ({ msgId: row.msgId, ts: row.ts, state: row.state, owner: row.owner, leaseUntil: row.leaseUntil });
const attemptView = (row: MessageRow): StoreAttempt => ({ positions: [...row.positions].sort(byString), audience: [...row.audience] });

export class FakeGroupDirectory implements GroupDirectory {
  readonly groups = new Map<string, Set<string>>();
  /** Every membership read, in order (`isMember g1 u1`, `members g1`). */
  readonly reads: string[] = [];

  constructor(initial: Record<string, readonly string[]> = {}) {
    for (const [groupId, members] of Object.entries(initial)) this.groups.set(groupId, new Set(members));
  }

  async isMember(groupId: string, userId: string): Promise<boolean> {
    this.reads.push(`isMember ${groupId} ${userId}`);
    return this.groups.get(groupId)?.has(userId) ?? false;
  }

  async members(groupId: string): Promise<string[]> {
    this.reads.push(`members ${groupId}`);
    return [...(this.groups.get(groupId) ?? [])];
  }

  async membersPage(groupId: string, after: string | undefined, limit: number) {
    const sorted = [...(this.groups.get(groupId) ?? [])].sort(byString).filter((u) => after === undefined || u > after);
    const members = sorted.slice(0, limit);
    return { members, next: sorted.length > limit ? members[members.length - 1] : undefined };
  }

  async countMembers(groupId: string): Promise<number> {
    return this.groups.get(groupId)?.size ?? 0;
  }

  async addMembers(groupId: string, userIds: readonly string[]): Promise<void> {
    let members = this.groups.get(groupId);
    if (!members) this.groups.set(groupId, (members = new Set()));
    for (const userId of userIds) members.add(userId);
  }

  async removeMembers(groupId: string, userIds: readonly string[]): Promise<void> {
    for (const userId of userIds) this.groups.get(groupId)?.delete(userId);
  }
}

export class FakeUplinkQueue implements UplinkQueue {
  /** Messages the queue accepted. */
  readonly enqueued: QueuedMessage[] = [];
  /** Every enqueue call, accepted or not. */
  readonly attempts: QueuedMessage[] = [];
  /** Errors to throw, one per upcoming enqueue call. */
  readonly failures: Error[] = [];

  failNext(error: Error = new Error('queue unavailable')): this {
    this.failures.push(error);
    return this;
  }

  async enqueue(message: QueuedMessage): Promise<void> {
    this.attempts.push(structuredClone(message));
    const failure = this.failures.shift();
    if (failure) throw failure;
    this.enqueued.push(structuredClone(message));
  }
}

/** `throw` makes `post` reject instead of answering an outcome. */
export type ScriptedOutcome = PostOutcome | 'throw';

export interface RecordedPost {
  connectionId: string;
  data: string;
  outcome: ScriptedOutcome;
}

export class FakeConnectionSender implements ConnectionSender {
  readonly posts: RecordedPost[] = [];
  private readonly scripts = new Map<string, ScriptedOutcome[]>();
  inFlight = 0;
  maxInFlight = 0;

  /** @param delayMs how long each post stays in flight (0: answers at once). */
  constructor(private readonly delayMs = 0) {}

  /** Outcomes for the next posts to a connection, in order; after them every post is `ok`. */
  script(connectionId: string, ...outcomes: ScriptedOutcome[]): this {
    this.scripts.set(connectionId, [...(this.scripts.get(connectionId) ?? []), ...outcomes]);
    return this;
  }

  async post(connectionId: string, data: string): Promise<PostOutcome> {
    const outcome = this.scripts.get(connectionId)?.shift() ?? 'ok';
    this.posts.push({ connectionId, data, outcome });
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
      else await Promise.resolve();
      if (outcome === 'throw') throw new Error(`post to ${connectionId} blew up`);
      return outcome;
    } finally {
      this.inFlight--;
    }
  }

  readonly disconnects: string[] = [];

  async disconnect(connectionId: string): Promise<PostOutcome> {
    const outcome = this.scripts.get(connectionId)?.shift() ?? 'ok';
    this.disconnects.push(connectionId);
    if (outcome === 'throw') throw new Error(`disconnect of ${connectionId} blew up`);
    return outcome;
  }

  /** Parsed frames posted to one connection, in order. */
  framesTo(connectionId: string): Array<Record<string, unknown>> {
    return this.posts.filter((p) => p.connectionId === connectionId).map((p) => JSON.parse(p.data) as Record<string, unknown>);
  }

  /** Connection ids that were posted to at least once, sorted. */
  recipients(): string[] {
    return [...new Set(this.posts.map((p) => p.connectionId))].sort();
  }
}

/** A connection row of `userId`, live for an hour after `nowMs`. */
export function connectionRecord(connectionId: string, userId: string, nowMs: number, overrides: Partial<ConnectionRecord> = {}): ConnectionRecord {
  return {
    connectionId,
    userId,
    deviceId: `${connectionId}-device`,
    connectedAt: nowMs,
    expiresAt: epochSeconds(nowMs) + 3600,
    ...overrides,
  };
}

/** Delivery deps that never really sleep; `sleeps` records the requested delays. */
export function fakeDeliveryDeps(
  sender: ConnectionSender,
  registry: ConnectionRegistry,
  overrides: Partial<DeliveryDeps> = {},
): DeliveryDeps & { sleeps: number[] } {
  const sleeps: number[] = [];
  return {
    sender,
    registry,
    concurrency: 8,
    maxAttempts: 4,
    baseDelayMs: 50,
    sleep: async (ms) => void sleeps.push(ms),
    random: () => 0.5,
    ...overrides,
    sleeps,
  };
}

// --- Presence counters (lambdas/domain/presence.ts) ---
import type { ApplyOutcome, ConnectionChange, PresencePlan, PresenceState, PresenceStats, PresenceStore } from '../../lambdas/domain/presence';

/** Runs before (or after) a presence transaction takes effect: await to let others in, throw to fail it. */
export type PresenceHook = (plan: PresencePlan) => Promise<void> | void;

/**
 * The presence counters in memory, with the transaction's semantics: all or nothing; refused
 * (`conflict`, nothing written) when a change is already marked or a user's count is no longer
 * the one planned from; a count back to 0 leaves no row; more than `maxItems` items is an error,
 * as DynamoDB refuses it. `beforeApply` runs before the conditions are checked (a test lets a
 * concurrent batch commit there); `afterApply` after the writes (throw there: the answer is lost
 * but the transaction happened).
 */
export class FakePresenceStore implements PresenceStore {
  readonly applied = new Set<string>();
  /** userId -> n; a missing user has 0 (no row). */
  readonly counts = new Map<string, number>();
  total: PresenceStats = { online: 0, users: 0 };
  beforeApply: PresenceHook = () => undefined;
  afterApply: PresenceHook = () => undefined;
  readonly stats = { reads: 0, transactions: 0, conflicts: 0, maxItems: 0 };

  constructor(private readonly maxItems = 100) {}

  async readState(changeIds: readonly string[], userIds: readonly string[]): Promise<PresenceState> {
    this.stats.reads++;
    await Promise.resolve();
    const applied = new Set(changeIds.filter((id) => this.applied.has(id)));
    const counts = new Map<string, number>();
    for (const userId of userIds) if (this.counts.has(userId)) counts.set(userId, this.counts.get(userId)!);
    return { applied, counts };
  }

  async applyBatch(plan: PresencePlan): Promise<ApplyOutcome> {
    const items = plan.changeIds.length + plan.users.length + (plan.onlineDelta !== 0 || plan.usersDelta !== 0 ? 1 : 0);
    if (items > this.maxItems) throw new Error(`transaction of ${items} items (at most ${this.maxItems})`);
    if (new Set(plan.changeIds).size !== plan.changeIds.length || new Set(plan.users.map((u) => u.userId)).size !== plan.users.length) {
      throw new Error('transaction names an item twice');
    }
    this.stats.maxItems = Math.max(this.stats.maxItems, items);
    await this.beforeApply(plan);
    const stale = plan.changeIds.some((id) => this.applied.has(id)) || plan.users.some((u) => (this.counts.get(u.userId) ?? 0) !== u.from);
    if (stale) {
      this.stats.conflicts++;
      return 'conflict';
    }
    for (const id of plan.changeIds) this.applied.add(id);
    for (const move of plan.users) {
      if (move.to === 0) this.counts.delete(move.userId);
      else this.counts.set(move.userId, move.to);
    }
    this.total = { online: this.total.online + plan.onlineDelta, users: this.total.users + plan.usersDelta };
    this.stats.transactions++;
    await this.afterApply(plan);
    return 'applied';
  }

  async readStats(): Promise<PresenceStats> {
    return { ...this.total };
  }
}

/** A connection row's insert / removal as the stream reports it. */
export const insertOf = (id: string, userId: string): ConnectionChange => ({ id, newUserId: userId });
export const removalOf = (id: string, userId: string): ConnectionChange => ({ id, oldUserId: userId });
export const modificationOf = (id: string, userId: string, newUserId = userId): ConnectionChange => ({ id, oldUserId: userId, newUserId });

/** Used nonces, with the conditional put's semantics (an expired row is free again). */
export class FakeNonceStore implements NonceStore {
  readonly rows = new Map<string, number>();
  claims = 0;

  async claimNonce(keyId: string, nonce: string, expiresAt: number, nowSeconds: number): Promise<boolean> {
    this.claims++;
    await Promise.resolve(); // concurrent claims interleave here, as two Lambda instances would
    const key = `${keyId}#${nonce}`;
    const existing = this.rows.get(key);
    if (existing !== undefined && existing >= nowSeconds) return false;
    this.rows.set(key, expiresAt);
    return true;
  }
}

/** Fan-out jobs with the admin table's semantics: task markers are conditional, counters move in the same step. */
export class FakeJobStore implements JobStore {
  readonly jobs = new Map<string, JobRecord>();
  readonly markers = new Set<string>();
  hook: (method: keyof JobStore, args: unknown[]) => Promise<void> | void = () => undefined;

  async createJob(job: { jobId: string; msgId: string; payload: string; tasksOpen: number; createdAt: number }): Promise<void> {
    await this.hook('createJob', [job]);
    if (this.jobs.has(job.jobId)) throw new FakeConditionalCheckFailed();
    this.jobs.set(job.jobId, { jobId: job.jobId, msgId: job.msgId, payload: job.payload, tasksOpen: job.tasksOpen, createdAt: job.createdAt, state: 'queued', targeted: 0, delivered: 0, gone: 0, failed: 0 });
  }

  async getJob(jobId: string): Promise<JobRecord | undefined> {
    const job = this.jobs.get(jobId);
    return job && { ...job };
  }

  async markRunning(jobId: string): Promise<void> {
    const job = this.jobs.get(jobId);
    if (job?.state === 'queued') job.state = 'running';
  }

  async markFailed(jobId: string): Promise<void> {
    const job = this.jobs.get(jobId);
    if (job && job.state !== 'done') job.state = 'failed';
  }

  async isTaskDone(jobId: string, taskId: string): Promise<boolean> {
    return this.markers.has(`${jobId}/${taskId}`);
  }

  async openChildren(jobId: string, taskId: string, count: number): Promise<void> {
    await this.hook('openChildren', [jobId, taskId, count]);
    const key = `${jobId}/${taskId}#opened`;
    if (this.markers.has(key)) return;
    this.markers.add(key);
    this.jobs.get(jobId)!.tasksOpen += count;
  }

  async completeTask(jobId: string, taskId: string, counts: JobCounters, opened: number): Promise<boolean> {
    await this.hook('completeTask', [jobId, taskId, counts, opened]);
    const key = `${jobId}/${taskId}`;
    if (this.markers.has(key)) return false;
    const job = this.jobs.get(jobId);
    if (!job) throw new Error(`no job ${jobId}`);
    this.markers.add(key);
    job.targeted += counts.targeted;
    job.delivered += counts.delivered;
    job.gone += counts.gone;
    job.failed += counts.failed;
    job.tasksOpen += opened - 1;
    return true;
  }

  async finishIfDone(jobId: string): Promise<boolean> {
    const job = this.jobs.get(jobId);
    if (!job || job.tasksOpen !== 0 || (job.state !== 'queued' && job.state !== 'running')) return false;
    job.state = 'done';
    return true;
  }
}

/** The fan-out queue as a list the test drains, with an optional failure on the next enqueue. */
export class FakeFanoutQueue implements FanoutQueue {
  readonly tasks: FanoutTask[] = [];
  readonly sent: FanoutTask[] = [];
  failNextWith?: Error;

  async enqueue(tasks: readonly FanoutTask[]): Promise<void> {
    if (this.failNextWith) {
      const err = this.failNextWith;
      this.failNextWith = undefined;
      throw err;
    }
    this.tasks.push(...structuredClone(tasks));
    this.sent.push(...structuredClone(tasks));
  }
}

// The outbound fakes' imports sit with them (appended; ES imports are hoisted).
import type { OutboundJob, OutboundQueue, OutboundRecord, OutboundStore } from '../../lambdas/domain/wechat-outbound';

/** Drops the keys whose value is undefined, as the document client does (`removeUndefinedValues`). */
const definedOnly = <T extends object>(value: T): T => Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;

type OutboundStoreMethod = keyof OutboundStore;
type OutboundSettleUpdate = Parameters<OutboundStore['settle']>[2];

/**
 * Outbound WeChat records with the conditions of DynamoOutboundStore (and proven against it by
 * test/integration/outbound-store-contract.test.ts): create only if absent, answering the stored
 * record; claim only at the same attempt while `queued`/`retrying`, or `sending` with an expired
 * lease; settle only while `sending` at that attempt (`retrying` moves to attempt + 1; the error
 * fields become the settled attempt's, so `sent` has none). Every operation yields once before
 * it takes effect, so concurrent callers interleave as two Lambda instances would, and then
 * checks and writes in one step, as one conditional write does. `hook` can fail or delay any call.
 */
export class FakeOutboundStore implements OutboundStore {
  readonly records = new Map<string, OutboundRecord>();
  /** The TTL each record was created with (epoch seconds); like the adapter, reads ignore it. */
  readonly expiresAt = new Map<string, number>();
  readonly calls: Array<{ method: OutboundStoreMethod; args: unknown[] }> = [];
  hook: (method: OutboundStoreMethod, args: unknown[]) => Promise<void> | void = () => undefined;

  private async before(method: OutboundStoreMethod, args: unknown[]): Promise<void> {
    this.calls.push({ method, args: structuredClone(args) });
    await Promise.resolve();
    await this.hook(method, args);
  }

  async create(record: OutboundRecord, expiresAt: number): Promise<OutboundRecord> {
    await this.before('create', [record, expiresAt]);
    const existing = this.records.get(record.id);
    if (existing) return structuredClone(existing);
    this.records.set(record.id, structuredClone(definedOnly(record)));
    this.expiresAt.set(record.id, expiresAt);
    return structuredClone(record);
  }

  async get(id: string): Promise<OutboundRecord | undefined> {
    await this.before('get', [id]);
    const record = this.records.get(id);
    return record && structuredClone(record);
  }

  async claim(id: string, attempt: number, nowMs: number, leaseUntilMs: number): Promise<OutboundRecord | undefined> {
    await this.before('claim', [id, attempt, nowMs, leaseUntilMs]);
    const record = this.records.get(id);
    if (!record || record.attempt !== attempt) return undefined;
    const free = record.state === 'queued' || record.state === 'retrying' || (record.state === 'sending' && record.untilMs < nowMs);
    if (!free) return undefined;
    const claimed: OutboundRecord = { ...record, state: 'sending', untilMs: leaseUntilMs, updatedAt: nowMs };
    this.records.set(id, claimed);
    return structuredClone(claimed);
  }

  async settle(id: string, attempt: number, update: OutboundSettleUpdate, nowMs: number): Promise<boolean> {
    await this.before('settle', [id, attempt, update, nowMs]);
    const record = this.records.get(id);
    if (!record || record.state !== 'sending' || record.attempt !== attempt) return false;
    const { errcode: _errcode, errmsg: _errmsg, ...rest } = record;
    this.records.set(
      id,
      definedOnly({
        ...rest,
        state: update.state,
        untilMs: update.untilMs,
        updatedAt: nowMs,
        attempt: update.state === 'retrying' ? attempt + 1 : attempt,
        errcode: update.errcode,
        errmsg: update.errmsg,
        sentAt: update.sentAt ?? record.sentAt,
      }),
    );
    return true;
  }

  /** A test's view of a record (throws if absent). */
  record(id: string): OutboundRecord {
    const record = this.records.get(id);
    if (!record) throw new Error(`no outbound record ${id}`);
    return structuredClone(record);
  }
}

export interface QueuedOutboundJob {
  job: OutboundJob;
  delaySeconds: number;
}

/** The outbound queue as lists: `sent` keeps every enqueue, `pending` is what a test drains with `next()`. */
export class FakeOutboundQueue implements OutboundQueue {
  readonly sent: QueuedOutboundJob[] = [];
  readonly pending: QueuedOutboundJob[] = [];
  failNextWith?: Error;

  async enqueue(job: OutboundJob, delaySeconds: number): Promise<void> {
    await Promise.resolve();
    if (this.failNextWith) {
      const err = this.failNextWith;
      this.failNextWith = undefined;
      throw err;
    }
    const entry = { job: structuredClone(job), delaySeconds };
    this.sent.push(entry);
    this.pending.push(structuredClone(entry));
  }

  /** The oldest pending job (whatever its delay: the test moves the clock itself). */
  next(): QueuedOutboundJob | undefined {
    return this.pending.shift();
  }
}
