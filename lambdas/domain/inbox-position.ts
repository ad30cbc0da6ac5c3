import { decodeTime, encodeTime, isValid } from 'ulid';
import { badRequest } from './errors';

/**
 * Inbox rows sort by *position*: a ULID minted by the persister when it stores the message,
 * so the inbox order is the order in which messages became readable. msgIds are minted
 * earlier, at send time, and two conversations can be stored out of msgId order.
 *
 * Why that keeps the sync guarantee (docs/architecture.md, "Sync"): a client that resumes with
 * `after = <the newest msgId it holds>` is answered from position `time(after) - overlap`.
 * Any message it has not seen was stored after the sync that returned `after`, hence after
 * `time(after)`, hence at a position past that floor, however late it was stored. The overlap
 * absorbs clock skew between Lambdas and writes still in flight during that earlier sync.
 * A `next` cursor (more pages right now) is an exact position and needs no overlap.
 */
const CURSOR_PREFIX = 'c.';

export const isMsgId = (value: string): boolean => value.length === 26 && isValid(value);

export function cursorOf(position: string): string {
  return CURSOR_PREFIX + position;
}

/** The exclusive start position for a client's `after` (undefined: from the oldest row). */
export function startPositionOf(after: string | undefined, overlapMs: number): string | undefined {
  if (after === undefined) return undefined;
  if (after.startsWith(CURSOR_PREFIX) && isMsgId(after.slice(CURSOR_PREFIX.length))) return after.slice(CURSOR_PREFIX.length);
  if (isMsgId(after)) {
    const floorMs = Math.max(0, decodeTime(after) - overlapMs);
    // The smallest position of that millisecond; "0" sorts before every Crockford digit.
    return encodeTime(floorMs) + '0'.repeat(16);
  }
  throw badRequest('after must be a msgId or the next cursor of an earlier sync');
}
