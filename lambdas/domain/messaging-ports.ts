import type { MessageFrame, Recipient } from './frames';

/**
 * The small interfaces the messaging domain talks through. Adapters: adapters/dynamo-message-store.ts,
 * adapters/dynamo-group-directory.ts, adapters/sqs-uplink-queue.ts, adapters/management-api-sender.ts.
 */

/** What travels on the uplink queue: everything needed to store and deliver one message. */
export interface QueuedMessage {
  msgId: string;
  from: string;
  fromDevice: string;
  /** The sending connection: it got the ack and must not get the message frame. */
  fromConnection: string;
  to: Recipient;
  body: unknown;
  ts: number;
}

export interface UplinkQueue {
  /** Durably queues a message; resolves only once the queue has it. */
  enqueue(message: QueuedMessage): Promise<void>;
}

/** A client retry (same user, same frame `id`) within the de-duplication window. */
export interface ClientIdClaim {
  msgId: string;
  ts: number;
  /** Whether the earlier attempt got as far as the queue. */
  queued: boolean;
}

export interface StoredMessageState {
  msgId: string;
  /** Every inbox position a storing attempt has begun at, oldest first. */
  positions: string[];
  state: 'storing' | 'stored';
}

export interface InboxRow {
  position: string;
  frame: MessageFrame;
}

export interface MessageStore {
  /**
   * Claims (userId, clientId) for `candidate` unless an unexpired claim exists; returns the
   * existing claim in that case and undefined when the candidate won.
   */
  claimClientId(userId: string, clientId: string, candidate: { msgId: string; ts: number }, expiresAt: number): Promise<ClientIdClaim | undefined>;
  markClientIdQueued(userId: string, clientId: string): Promise<void>;

  getMessageState(msgId: string): Promise<StoredMessageState | undefined>;
  /**
   * Records that a storing attempt at `position` has begun: the message row is `storing` and
   * `position` joins its positions, before any inbox row is written at it.
   */
  beginStore(frame: MessageFrame, position: string, expiresAt: number): Promise<void>;
  putInboxRows(userIds: readonly string[], position: string, frame: MessageFrame, expiresAt: number): Promise<void>;
  deleteInboxRows(userIds: readonly string[], position: string): Promise<void>;
  markStored(msgId: string): Promise<void>;

  /**
   * Unexpired inbox rows of a user with position > `afterPosition` (all when undefined), in
   * position order, at most `max` of them, and whether more exist.
   */
  readInbox(userId: string, afterPosition: string | undefined, max: number, nowMs: number): Promise<{ rows: InboxRow[]; more: boolean }>;
}

export interface GroupDirectory {
  isMember(groupId: string, userId: string): Promise<boolean>;
  members(groupId: string): Promise<string[]>;
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
}
