import type { MessageFrame, Recipient } from './frames';

/**
 * The small interfaces the messaging domain talks through. Adapters: adapters/dynamo-message-store.ts,
 * adapters/dynamo-group-directory.ts, adapters/sqs-uplink-queue.ts, adapters/management-api-sender.ts.
 */

/** An admin push to a list of users (docs/admin-api.md); its frames say `to: {"push": "users"}`. */
export interface UsersTarget {
  users: string[];
}

/**
 * The largest audience `send` carries on the uplink queue (QueuedMessage.audience). An SQS
 * message holds at most 256 KiB = 262,144 bytes. The body is at most 32 KiB of JSON, and the
 * queue's encoding (toSqsBody) writes a character above U+FFFF (4 bytes) as two `\u` escapes
 * (12 bytes): at most 3 x 32,768 = 98,304 bytes. Ids, `to`, `ts` and the JSON around them stay
 * under 1,024 bytes. A user id is at most 128 characters of [A-Za-z0-9_.:@-], 131 bytes with
 * its quotes and comma. 1,000 x 131 + 98,304 + 1,024 = 230,328 bytes, 31,816 below the limit.
 */
export const MAX_CARRIED_AUDIENCE = 1_000;

/** What travels on the uplink queue: everything needed to store and deliver one message. */
export interface QueuedMessage {
  msgId: string;
  /** A user id, or `admin/{keyId}` for an admin push ('/' never occurs in a user id). */
  from: string;
  fromDevice: string;
  /** The sending connection: it got the ack and must not get the message frame ('' for admin pushes). */
  fromConnection: string;
  to: Recipient | UsersTarget;
  body: unknown;
  ts: number;
  /**
   * `admin`: pushed through the admin API; `wechat`: a WeChat user's message from a callback.
   * Either way the sender is no user of the gateway and gets no inbox row; a WeChat message
   * has no live delivery in a send route, so the persister delivers it to every connection.
   */
  origin?: 'admin' | 'wechat';
  /**
   * The users who get an inbox row, as `send` (or an admin group push) read them, when that took
   * a membership read and they are at most MAX_CARRIED_AUDIENCE: the persister's first attempt
   * freezes this list instead of reading the group again. Absent: the persister reads it.
   */
  audience?: string[];
  /**
   * `fanout`: the audience was too large to post inside the send route, which posted nothing;
   * the persister starts a fan-out job (id = msgId) for every connection of the audience once
   * the inbox rows are written. Absent: `send` posted to the connections opened at or before
   * `ts`, and the persister posts to those opened after.
   */
  liveDelivery?: 'fanout';
}

export interface UplinkQueue {
  /** Durably queues a message; resolves only once the queue has it. */
  enqueue(message: QueuedMessage): Promise<void>;
}

/**
 * The claim on a client frame `id` (same user, same `id`) for the de-duplication window.
 * One send attempt at a time owns it (`owner`), for `leaseUntil`; the owner queues the message,
 * marks the claim `queued`, acks and delivers. Everyone else waits for `queued` and only acks.
 */
export interface ClientIdClaim {
  msgId: string;
  ts: number;
  state: 'pending' | 'queued';
  /** Opaque id of the attempt that owns the claim. */
  owner: string;
  /** Epoch ms until which the owner may still be working; after it, another attempt may take over. */
  leaseUntil: number;
}

/** What `beginStore` answers: the message row after the attempt joined it. */
export interface StoreAttempt {
  /** Every inbox position a storing attempt has begun at, oldest first. */
  positions: string[];
  /** The users who get an inbox row, fixed by the first storing attempt. */
  audience: string[];
}

export interface StoredMessageState extends StoreAttempt {
  msgId: string;
  state: 'storing' | 'stored';
  /** Chunks of `audience` (STORE_CHUNK_SIZE each, in order) already written: index -> position. */
  chunksDone: Record<number, string>;
}

export interface InboxRow {
  position: string;
  frame: MessageFrame;
}

/** A write that would be sent after its deadline is refused: see MAX_ROW_WRITE_AGE_MS. */
export class WriteDeadlineError extends Error {
  constructor(what: string) {
    super(`${what}: deadline passed before the write was sent`);
    this.name = 'WriteDeadlineError';
  }
}

export interface MessageStore {
  /**
   * Claims (userId, clientId) for `candidate` unless an unexpired claim exists (conditional
   * write); returns the existing claim in that case and undefined when the candidate won.
   */
  claimClientId(userId: string, clientId: string, candidate: ClientIdClaim, expiresAt: number, nowMs: number): Promise<ClientIdClaim | undefined>;
  /** The unexpired claim, read consistently. */
  getClientIdClaim(userId: string, clientId: string, nowMs: number): Promise<ClientIdClaim | undefined>;
  /** Moves a `pending` claim from `fromOwner` to `toOwner` (conditional); false if anything changed. */
  takeOverClientId(userId: string, clientId: string, fromOwner: string, toOwner: string, leaseUntil: number): Promise<boolean>;
  /** Lets another attempt take over at once (the owner failed before the queue); false if not the owner. */
  releaseClientId(userId: string, clientId: string, owner: string): Promise<boolean>;
  /**
   * Marks the claim `queued`, only while `owner` still owns it (conditional: never creates a
   * row, e.g. once the claim expired and was deleted). Returns whether it did.
   */
  markClientIdQueued(userId: string, clientId: string, owner: string): Promise<boolean>;

  /** The storing state and the chunks recorded so far, read consistently; undefined before the first `beginStore`. */
  getMessageState(msgId: string): Promise<StoredMessageState | undefined>;
  /**
   * Records that a storing attempt at `position` has begun: the message row is `storing`,
   * `position` joins its positions (before any inbox row is written at it), and `audience` is
   * kept only if none was recorded yet. Returns the positions and audience after the update.
   */
  beginStore(msgId: string, audience: readonly string[], position: string, expiresAt: number): Promise<StoreAttempt>;
  /** Writes the rows; refuses (WriteDeadlineError) to send any write once `notAfterMs` has passed. */
  putInboxRows(userIds: readonly string[], position: string, frame: MessageFrame, expiresAt: number, notAfterMs: number): Promise<void>;
  deleteInboxRows(userIds: readonly string[], position: string): Promise<void>;
  /**
   * Records chunk `index` as written at `position`, unless it already was (conditional); returns
   * whether this call recorded it. A record of its own, not a change to the message row: the
   * row holds the audience, and rewriting it once per chunk would cost its size every time.
   */
  markChunkStored(msgId: string, index: number, position: string, expiresAt: number): Promise<boolean>;
  /** The message row becomes `stored` (nothing else changes). */
  markStored(msgId: string): Promise<void>;

  /**
   * Unexpired inbox rows of a user with position > `afterPosition` (all when undefined), in
   * position order: at most `max`, and only while their frames' JSON text fits in `maxBytes`
   * (the first row always); `more` says whether more exist. It reads little more than it
   * returns (adapters/inbox-pages.ts).
   */
  readInbox(userId: string, afterPosition: string | undefined, max: number, maxBytes: number, nowMs: number): Promise<{ rows: InboxRow[]; more: boolean }>;
}

export interface GroupDirectory {
  isMember(groupId: string, userId: string): Promise<boolean>;
  members(groupId: string): Promise<string[]>;
  /** Members in user id order after `after` (exclusive), at most `limit`, and the id to continue after. */
  membersPage(groupId: string, after: string | undefined, limit: number): Promise<{ members: string[]; next: string | undefined }>;
  countMembers(groupId: string): Promise<number>;
  addMembers(groupId: string, userIds: readonly string[]): Promise<void>;
  removeMembers(groupId: string, userIds: readonly string[]): Promise<void>;
}

/**
 * Outcome of one PostToConnection. `retryable` covers throttling (429) and 5xx; `gone` is
 * the 410 of a connection that no longer exists; `rejected` is anything else (e.g. 413).
 */
export type PostOutcome = 'ok' | 'gone' | 'retryable' | 'rejected';

export interface ConnectionSender {
  post(connectionId: string, data: string): Promise<PostOutcome>;
  /** DeleteConnection: API Gateway closes the socket and runs `$disconnect`. */
  disconnect(connectionId: string): Promise<PostOutcome>;
}
