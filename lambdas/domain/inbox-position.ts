import { decodeTime, encodeTime, isValid } from 'ulid';
import { badRequest } from './errors';

/**
 * Inbox rows sort by *position*: a ULID minted by the persister when it begins storing a
 * message, so the inbox order is (almost) the order in which messages became readable.
 * msgIds are minted earlier, at send time, and two conversations can be stored out of msgId
 * order.
 *
 * "Almost": a row becomes readable some time after its position was minted. That lag is bounded
 * (the persister writes no row at a position older than MAX_ROW_WRITE_AGE_MS, see
 * persist-message.ts), so a row that was not readable when a `sync` read the inbox at time T has
 * a position minted after T - RESUME_OVERLAP_MS. Every cursor therefore carries a *floor*, and
 * resuming re-reads from that floor; see docs/architecture.md, "The resume rule".
 */

/** The persister never sends an inbox write at a position older than this (checked before every batch). */
export const MAX_ROW_WRITE_AGE_MS = 20_000;

/**
 * How far back a resumed `sync` re-reads. It must cover the longest time between minting a
 * position and its row becoming visible to a `sync` read, plus clock skew between the instance
 * that minted the position and the one that reads:
 *   20 s  write-age limit (MAX_ROW_WRITE_AGE_MS: no write is sent later than that)
 * + 10 s  for a write that was sent just before the limit to be applied (the DynamoDB client's
 *         request timeout is 3 s, with at most 3 attempts: runtime/aws-clients.ts)
 * + 10 s  replication lag: `sync` queries are eventually consistent (half the read units), so one
 *         may be answered by a replica that does not show a recent write yet. DynamoDB promises
 *         only "after a short time" (its guide long said "usually within a second"); 10 s is ten
 *         times that, and the skew term below leaves about 20 s more in practice
 * + 20 s  clock skew between Lambda instances (their clocks are synchronised to milliseconds by
 *         the Amazon Time Sync Service; 20 s is a wide margin)
 * = 60 s.
 */
export const RESUME_OVERLAP_MS = 60_000;

const NEXT_PREFIX = 'n.';
const RESUME_PREFIX = 'r.';
/** The smallest position of a millisecond; "0" sorts before every Crockford digit. */
const floorOfMs = (ms: number): string => encodeTime(Math.max(0, ms)) + '0'.repeat(16);

export const isMsgId = (value: string): boolean => value.length === 26 && isValid(value) && decodeTimeSafe(value) !== undefined;

function decodeTimeSafe(id: string): number | undefined {
  try {
    return decodeTime(id);
  } catch {
    return undefined; // e.g. "ZZZZ…": a valid alphabet, but a time beyond the 48-bit range
  }
}

const isPosition = (value: string | undefined): value is string => value !== undefined && isMsgId(value);

/**
 * Where one `sync` request reads from: rows with position > `start` (all when undefined), and
 * the floor below which no row can still appear for the run of pages it belongs to.
 */
export interface SyncStart {
  start: string | undefined;
  floor: string;
}

/**
 * `after` as a client may send it:
 * - omitted: the whole inbox; floor = now - overlap;
 * - `r.<floor>` (the `cursor` of any earlier reply): the resume rule, from that floor;
 * - `n.<position>.<floor>` (a `next` of the reply before): exactly after that page, keeping the
 *   run's floor so its final `cursor` still covers rows that landed behind the pages;
 * - a msgId: from time(msgId) - overlap. Kept for compatibility; it is NOT the resume rule (a
 *   msgId from a live push says nothing about what an earlier sync saw).
 */
export function syncStartOf(after: string | undefined, nowMs: number, overlapMs: number): SyncStart {
  const floorNow = floorOfMs(nowMs - overlapMs);
  if (after === undefined) return { start: undefined, floor: floorNow };
  if (after.startsWith(RESUME_PREFIX)) {
    const floor = after.slice(RESUME_PREFIX.length);
    if (isPosition(floor)) return { start: floor, floor: floorNow };
  } else if (after.startsWith(NEXT_PREFIX)) {
    const [position, floor] = after.slice(NEXT_PREFIX.length).split('.');
    if (isPosition(position) && isPosition(floor) && after.length === NEXT_PREFIX.length + 53) return { start: position, floor };
  } else if (isMsgId(after)) {
    return { start: floorOfMs(decodeTime(after) - overlapMs), floor: floorNow };
  }
  throw badRequest('after must be the cursor or next of an earlier sync reply, or a msgId');
}

/**
 * The lowest position a `sync` reads from: rows minted before it have expired, so reading them
 * (until TTL deletes them) would cost read units for nothing. A row expires `ttlMs` after its
 * message's `ts`, taken on the sending instance's clock before the position was minted on the
 * persister's, so `overlapMs` (which includes the clock skew) is the margin.
 */
export const expiryFloorOf = (nowMs: number, ttlMs: number, overlapMs: number): string => floorOfMs(nowMs - ttlMs - overlapMs);

/** The `next` cursor after a page that ended at `position`. */
export const nextCursorOf = (position: string, floor: string): string => `${NEXT_PREFIX}${position}.${floor}`;

/**
 * The resume `cursor` of a reply. When the reply reached the end of the inbox (`pending` is
 * undefined), every row readable at read time was returned, so only rows still landing can be
 * unseen, and they sort after the floor. When more pages remain, the client has not seen what
 * follows the page's last row (`pending`), so the cursor is the lower of the two.
 */
export function resumeCursorOf(pending: string | undefined, floor: string): string {
  return RESUME_PREFIX + (pending !== undefined && pending < floor ? pending : floor);
}
