import type { Clock } from './clock';
import { DEFAULT_SYNC_LIMIT, type MessageFrame, type SyncFrame } from './frames';
import { expiryFloorOf, nextCursorOf, resumeCursorOf, RESUME_OVERLAP_MS, syncStartOf } from './inbox-position';
import { forbidden } from './errors';
import type { GroupDirectory, MessageStore } from './messaging-ports';

/**
 * The `sync` route: a page of the caller's inbox. A reply is one WebSocket message, which
 * API Gateway caps at 128 KiB, so a page also stops at `maxReplyBytes` of message frames
 * (bodies are at most 32 KiB, so a page always holds at least three). The store reads little more
 * than that budget (adapters/inbox-pages.ts), and nothing older than the inbox TTL.
 *
 * Every reply carries `cursor`, the resume point (inbox-position.ts): a client that always
 * resumes from the `cursor` of the last reply it got never misses an acknowledged message,
 * whatever happened to live pushes. `next` is set while more pages exist right now.
 */
export interface SyncDeps {
  messages: MessageStore;
  groups: Pick<GroupDirectory, 'isMember'>;
  clock: Clock;
  overlapMs: number;
  maxReplyBytes: number;
  /** How long inbox rows live (INBOX_TTL_DAYS): no read starts among rows that have expired. */
  inboxTtlSeconds: number;
}

export interface SyncPage {
  messages: MessageFrame[];
  next: string | null;
  cursor: string;
}

export const defaultSyncSettings = { overlapMs: RESUME_OVERLAP_MS, maxReplyBytes: 120 * 1024 } as const;

/** Whose inbox a sync reads: the caller's, or an account inbox the caller may read (an agent of the account). */
async function inboxOwnerOf(deps: SyncDeps, userId: string, frame: SyncFrame): Promise<string> {
  if (frame.inbox === undefined) return userId;
  // The account inbox of wechat:{accountId} has the group's id; its members are the account's agents.
  if (!(await deps.groups.isMember(frame.inbox, userId))) throw forbidden(`only members of group "${frame.inbox}" may read its inbox`);
  return frame.inbox;
}

export async function syncInbox(deps: SyncDeps, userId: string, frame: SyncFrame): Promise<SyncPage> {
  const limit = frame.limit ?? DEFAULT_SYNC_LIMIT;
  const nowMs = deps.clock.nowMs();
  const { start, floor } = syncStartOf(frame.after, nowMs, deps.overlapMs);
  // Expired rows wait up to 48 h for TTL deletion: start above them. Cursors keep their meaning,
  // since every row below that floor is expired and would be skipped anyway.
  const expiryFloor = expiryFloorOf(nowMs, deps.inboxTtlSeconds * 1000, deps.overlapMs);
  const from = start !== undefined && start > expiryFloor ? start : expiryFloor;
  const { rows, more } = await deps.messages.readInbox(await inboxOwnerOf(deps, userId, frame), from, limit, deps.maxReplyBytes, nowMs);

  const messages: MessageFrame[] = [];
  let bytes = 0;
  let lastPosition: string | undefined;
  let cut = more;
  for (const row of rows) {
    const size = Buffer.byteLength(JSON.stringify(row.frame), 'utf8') + 1;
    if (messages.length > 0 && bytes + size > deps.maxReplyBytes) {
      cut = true;
      break;
    }
    bytes += size;
    messages.push(row.frame);
    lastPosition = row.position;
  }
  if (!cut || lastPosition === undefined) return { messages, next: null, cursor: resumeCursorOf(undefined, floor) };
  return { messages, next: nextCursorOf(lastPosition, floor), cursor: resumeCursorOf(lastPosition, floor) };
}
