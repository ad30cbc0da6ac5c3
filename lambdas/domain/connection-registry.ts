/**
 * Where the gateway remembers who is online: connection id <-> user and device.
 * The DynamoDB adapter is `adapters/dynamo-connection-registry.ts`; tests use an in-memory fake.
 * Rows carry an `expiresAt` (epoch seconds); every read ignores expired rows because TTL
 * deletion lags (up to 48 h in AWS, never in DynamoDB Local).
 */
export interface ConnectionRecord {
  connectionId: string;
  userId: string;
  deviceId: string;
  /** Epoch ms. */
  connectedAt: number;
  /** Epoch seconds; the TTL attribute. */
  expiresAt: number;
}

export interface ConnectionRegistry {
  /** Creates or replaces the row of a connection. */
  put(record: ConnectionRecord): Promise<void>;
  /** Removes the row of a connection, if any. */
  remove(connectionId: string): Promise<void>;
  /**
   * Removes the row only while it still belongs to `userId`: used after the Management API
   * answered 410 for it, so a stale cleanup never removes anybody else's row.
   * Returns whether a row was removed.
   */
  removeStale(connectionId: string, userId: string): Promise<boolean>;
  get(connectionId: string, nowMs: number): Promise<ConnectionRecord | undefined>;
  /**
   * Every live (unexpired) connection of a user, oldest first; with `opened`, only those whose
   * connectedAt is in the range (a key condition on the index, so nothing else is read).
   */
  listByUser(userId: string, nowMs: number, opened?: OpenedRange): Promise<ConnectionRecord[]>;
  /**
   * One page of one segment of a parallel scan over every connection: the live rows read, and
   * the key to continue from (undefined at the end of the segment). Pages are at most `limit`
   * rows read (expired ones are read and dropped), so a page never silently stops at 1 MB.
   */
  scanPage(segment: number, totalSegments: number, startKey: ScanKey | undefined, limit: number, nowMs: number): Promise<{ records: ConnectionRecord[]; nextKey: ScanKey | undefined }>;
}

/** A connectedAt range, epoch ms: `after` exclusive, `notAfter` inclusive. */
export interface OpenedRange {
  after?: number;
  notAfter?: number;
}

/** Where a scan page stopped (DynamoDB's LastEvaluatedKey); opaque to the domain. */
export type ScanKey = Record<string, unknown>;
