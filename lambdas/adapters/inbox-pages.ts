import { epochSeconds } from '../domain/clock';
import { MAX_BODY_BYTES, type MessageFrame } from '../domain/frames';
import type { InboxRow } from '../domain/messaging-ports';

/**
 * How a MessageStore reads an inbox for `sync` (MessageStore.readInbox): in pages sized so that
 * it reads little more than the reply can carry. Shared by the DynamoDB adapter and the
 * in-memory fake, which differ only in how they fetch one page.
 *
 * A Query is billed for every row it reads (4 KB per read unit, half when eventually
 * consistent), and the reply holds at most `maxBytes` of frames: reading `max + 1` rows up front
 * would make a `limit=500` sync over 32 KiB bodies read 16 MB (4,040 units measured) to return
 * three messages. Instead:
 * - the first page holds just enough rows of the largest bodies to cross the budget (4 for
 *   120 KiB: 16.5 units eventually consistent);
 * - each later page holds enough rows of the average size read so far to fill what is left
 *   of the budget, plus one;
 * - reading stops at the first unexpired row that does not fit (it proves that more exist).
 * Worst case: the rows that fit (at most `maxBytes`) plus one page that overshoots, when rows
 * after the first pages are much larger than those before; DynamoDB stops that page at 1 MB.
 * For 120 KiB that is about 1.1 MB, 143 units eventually consistent (286 strongly), plus
 * rounding to 4 KB per page.
 */

/** A row as a page holds it: the frame still as the JSON text it is stored as. */
export interface StoredInboxRow {
  position: string;
  frameJson: string;
  /** Epoch seconds (TTL). */
  expiresAt: number;
}

/**
 * One page: rows with position > `after` (all when undefined), in position order, at most
 * `limit`; `next` is where the following page starts, undefined only when the inbox ended.
 */
export type InboxPageFetch = (after: string | undefined, limit: number) => Promise<{ rows: StoredInboxRow[]; next: string | undefined }>;

/**
 * Unexpired rows after `after`: at most `max`, and only while their frames' JSON text fits in
 * `maxBytes` (the first one always); `more` is exact, proven by an unexpired row that was left out.
 */
export async function readInboxWithin(
  fetchPage: InboxPageFetch,
  after: string | undefined,
  max: number,
  maxBytes: number,
  nowMs: number,
): Promise<{ rows: InboxRow[]; more: boolean }> {
  const now = epochSeconds(nowMs);
  const rows: InboxRow[] = [];
  let bytes = 0; // frames kept: what the reply carries
  let readRows = 0;
  let readBytes = 0; // every row read, expired ones included: what a page costs
  let start = after;
  let limit = Math.min(max + 1, Math.floor(maxBytes / MAX_BODY_BYTES) + 1);
  for (;;) {
    const page = await fetchPage(start, limit);
    for (const row of page.rows) {
      const size = Buffer.byteLength(row.frameJson, 'utf8');
      readRows += 1;
      readBytes += size;
      if (row.expiresAt <= now) continue; // TTL deletion lags
      if (rows.length === max || (rows.length > 0 && bytes + size > maxBytes)) return { rows, more: true };
      rows.push({ position: row.position, frame: JSON.parse(row.frameJson) as MessageFrame });
      bytes += size;
    }
    if (page.next === undefined) return { rows, more: false };
    start = page.next;
    // A page that continues read at least one row, so readRows > 0.
    const fillingRows = Math.floor(Math.max(0, maxBytes - bytes) / (readBytes / readRows)) + 1;
    limit = Math.min(max + 1 - rows.length, fillingRows);
  }
}
