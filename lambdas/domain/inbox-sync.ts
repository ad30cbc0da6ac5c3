import type { Clock } from './clock';
import { DEFAULT_SYNC_LIMIT, type MessageFrame, type SyncFrame } from './frames';
import { cursorOf, startPositionOf } from './inbox-position';
import type { MessageStore } from './messaging-ports';

/**
 * The `sync` route: a page of the caller's inbox. A reply is one WebSocket message, which
 * API Gateway caps at 128 KiB, so a page also stops at `maxReplyBytes` of message frames
 * (bodies are at most 32 KiB, so a page always holds at least three).
 */
export interface SyncDeps {
  messages: MessageStore;
  clock: Clock;
  overlapMs: number;
  maxReplyBytes: number;
}

export const defaultSyncSettings = { overlapMs: 30_000, maxReplyBytes: 120 * 1024 } as const;

export async function syncInbox(deps: SyncDeps, userId: string, frame: SyncFrame): Promise<{ messages: MessageFrame[]; next: string | null }> {
  const limit = frame.limit ?? DEFAULT_SYNC_LIMIT;
  const start = startPositionOf(frame.after, deps.overlapMs);
  const { rows, more } = await deps.messages.readInbox(userId, start, limit, deps.clock.nowMs());

  const messages: MessageFrame[] = [];
  let bytes = 0;
  let lastPosition: string | undefined;
  for (const row of rows) {
    const size = Buffer.byteLength(JSON.stringify(row.frame), 'utf8') + 1;
    if (messages.length > 0 && bytes + size > deps.maxReplyBytes) {
      return { messages, next: cursorOf(lastPosition!) };
    }
    bytes += size;
    messages.push(row.frame);
    lastPosition = row.position;
  }
  return { messages, next: more && lastPosition ? cursorOf(lastPosition) : null };
}
