/**
 * In-memory fakes of the domain interfaces (lambdas/domain/*-ports.ts, connection-registry.ts,
 * clock.ts). They follow the documented contracts, including the awkward parts: expired rows
 * are invisible, a stale-row removal only removes a row of the same user, an expired client-id
 * claim can be taken again, inbox positions sort as plain strings.
 */
import { epochSeconds, type Clock } from '../../lambdas/domain/clock';
import type { ConnectionRecord, ConnectionRegistry } from '../../lambdas/domain/connection-registry';
import type { DeliveryDeps } from '../../lambdas/domain/delivery';
import type { MessageFrame } from '../../lambdas/domain/frames';
import type {
  ClientIdClaim,
  ConnectionSender,
  GroupDirectory,
  InboxRow,
  MessageStore,
  PostOutcome,
  QueuedMessage,
  StoredMessageState,
  UplinkQueue,
} from '../../lambdas/domain/messaging-ports';

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

  async put(record: ConnectionRecord): Promise<void> {
    this.rows.set(record.connectionId, { ...record });
  }

  async touch(record: ConnectionRecord): Promise<void> {
    // Like the DynamoDB update: keeps connectedAt of an existing row, re-creates a swept one.
    const existing = this.rows.get(record.connectionId);
    this.rows.set(record.connectionId, { ...record, connectedAt: existing?.connectedAt ?? record.connectedAt });
  }

  async remove(connectionId: string): Promise<void> {
    this.rows.delete(connectionId);
  }

  async removeStale(connectionId: string, userId: string): Promise<boolean> {
    if (this.rows.get(connectionId)?.userId !== userId) return false;
    return this.rows.delete(connectionId);
  }

  async get(connectionId: string, nowMs: number): Promise<ConnectionRecord | undefined> {
    const row = this.rows.get(connectionId);
    return row && row.expiresAt > epochSeconds(nowMs) ? { ...row } : undefined;
  }

  async listByUser(userId: string, nowMs: number): Promise<ConnectionRecord[]> {
    return [...this.rows.values()]
      .filter((row) => row.userId === userId && row.expiresAt > epochSeconds(nowMs))
      .sort((a, b) => a.connectedAt - b.connectedAt)
      .map((row) => ({ ...row }));
  }
}

interface ClaimRow extends ClientIdClaim {
  expiresAt: number;
}

interface MessageRow extends StoredMessageState {
  frame: MessageFrame;
  expiresAt: number;
}

interface InboxEntry {
  frame: MessageFrame;
  expiresAt: number;
}

export class FakeMessageStore implements MessageStore {
  readonly claims = new Map<string, ClaimRow>();
  readonly messages = new Map<string, MessageRow>();
  /** userId -> position -> row. */
  readonly inboxes = new Map<string, Map<string, InboxEntry>>();

  private static claimKey = (userId: string, clientId: string) => `${userId}\u0000${clientId}`;

  async claimClientId(userId: string, clientId: string, candidate: { msgId: string; ts: number }, expiresAt: number): Promise<ClientIdClaim | undefined> {
    const key = FakeMessageStore.claimKey(userId, clientId);
    const existing = this.claims.get(key);
    if (existing && existing.expiresAt > epochSeconds(candidate.ts)) {
      return { msgId: existing.msgId, ts: existing.ts, queued: existing.queued };
    }
    this.claims.set(key, { msgId: candidate.msgId, ts: candidate.ts, queued: false, expiresAt });
    return undefined;
  }

  async markClientIdQueued(userId: string, clientId: string): Promise<void> {
    const claim = this.claims.get(FakeMessageStore.claimKey(userId, clientId));
    if (claim) claim.queued = true;
  }

  async getMessageState(msgId: string): Promise<StoredMessageState | undefined> {
    const row = this.messages.get(msgId);
    return row && { msgId: row.msgId, positions: [...row.positions].sort(), state: row.state };
  }

  async beginStore(frame: MessageFrame, position: string, expiresAt: number): Promise<void> {
    const positions = new Set(this.messages.get(frame.msgId)?.positions ?? []).add(position);
    this.messages.set(frame.msgId, { msgId: frame.msgId, positions: [...positions], state: 'storing', frame, expiresAt });
  }

  async putInboxRows(userIds: readonly string[], position: string, frame: MessageFrame, expiresAt: number): Promise<void> {
    for (const userId of userIds) {
      let inbox = this.inboxes.get(userId);
      if (!inbox) this.inboxes.set(userId, (inbox = new Map()));
      inbox.set(position, { frame: structuredClone(frame), expiresAt });
    }
  }

  async deleteInboxRows(userIds: readonly string[], position: string): Promise<void> {
    for (const userId of userIds) this.inboxes.get(userId)?.delete(position);
  }

  async markStored(msgId: string): Promise<void> {
    const row = this.messages.get(msgId);
    if (row) row.state = 'stored';
  }

  async readInbox(userId: string, afterPosition: string | undefined, max: number, nowMs: number): Promise<{ rows: InboxRow[]; more: boolean }> {
    const now = epochSeconds(nowMs);
    const live = [...(this.inboxes.get(userId) ?? new Map<string, InboxEntry>()).entries()]
      .filter(([position, row]) => (afterPosition === undefined || position > afterPosition) && row.expiresAt > now)
      .sort(([a], [b]) => byString(a, b))
      .map(([position, row]) => ({ position, frame: structuredClone(row.frame) }));
    return { rows: live.slice(0, max), more: live.length > max };
  }

  /** Every row of a user's inbox (expired ones too), in position order: for assertions. */
  inboxOf(userId: string): InboxRow[] {
    return [...(this.inboxes.get(userId) ?? new Map<string, InboxEntry>()).entries()]
      .sort(([a], [b]) => byString(a, b))
      .map(([position, row]) => ({ position, frame: row.frame }));
  }
}

export class FakeGroupDirectory implements GroupDirectory {
  readonly groups = new Map<string, Set<string>>();

  constructor(initial: Record<string, readonly string[]> = {}) {
    for (const [groupId, members] of Object.entries(initial)) this.groups.set(groupId, new Set(members));
  }

  async isMember(groupId: string, userId: string): Promise<boolean> {
    return this.groups.get(groupId)?.has(userId) ?? false;
  }

  async members(groupId: string): Promise<string[]> {
    return [...(this.groups.get(groupId) ?? [])];
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
    lastActiveAt: nowMs,
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
