import type { Clock } from './clock';
import { epochSeconds } from './clock';
import type { ConnectionRegistry } from './connection-registry';
import { connectionsOf, deliver, emptyReport, type DeliveryDeps, type DeliveryReport } from './delivery';
import { startJobOnce, userTasks, type FanoutDeps } from './fanout';
import { MAX_ROW_WRITE_AGE_MS } from './inbox-position';
import type { GroupDirectory, MessageStore, QueuedMessage } from './messaging-ports';
import { audienceOf, messageFrameOf } from './send-message';
import { serviceMessageOf, submitOutbound, type SubmitDeps } from './wechat-outbound';

/**
 * The uplink persister: stores one queued message and one inbox row per audience member
 * (recipients and the sender, for multi-device history), idempotently and in small pieces.
 *
 * SQS delivers at least once and a Lambda can die half-way, so storing is a state machine on
 * the message row (`msg#{msgId}`) and its chunk records:
 *   1. `beginStore`: a fresh position joins the row's positions (before any row is written at
 *      it), and the audience is frozen on the first attempt (so a retry writes, and cleans, the
 *      same users even if the group changed meanwhile). The first attempt takes the audience
 *      `send` carried on the queue when there is one (no second membership read), else reads it.
 *   2. The audience is cut into chunks of STORE_CHUNK_SIZE (one BatchWriteItem). For each chunk
 *      not yet done: delete its rows at every earlier position (a dead attempt may have written
 *      some), write them at this position, then record the chunk as done at this position.
 *   3. A reply to a WeChat user is handed to the outbound queue (wechat-outbound.ts); a message
 *      `send` left to a fan-out job (`liveDelivery: 'fanout'`) starts that job, once (below).
 *   4. `stored`, then push to audience connections opened after the message's ts (send served
 *      the others; see send-message.ts), unless a fan-out job posts to all of them.
 *
 * Hence: a member never has two visible rows of one message at once (delete before write), a
 * retry never redoes a finished chunk (attempts converge however large the audience is), and
 * no write is sent at a position older than MAX_ROW_WRITE_AGE_MS (an attempt that gets that
 * slow stops and is retried at a fresh position), which is what sync's resume floor relies on.
 *
 * Attempts for one message never overlap in AWS: the FIFO queue keeps a message invisible for
 * its visibility timeout (360 s), and Lambda stops an attempt at its timeout (60 s). The chunk
 * record is still conditional (the first attempt to record a chunk keeps it), and no path
 * deletes a row without writing the same member's row again right after, so even overlapping
 * attempts can duplicate a row, never lose one.
 */
export const STORE_CHUNK_SIZE = 25;

export interface PersistDeps {
  messages: MessageStore;
  groups: GroupDirectory;
  registry: ConnectionRegistry;
  delivery: DeliveryDeps;
  clock: Clock;
  newPosition: (nowMs: number) => string;
  inboxTtlSeconds: number;
  /**
   * Where an agent's reply to a WeChat user goes once stored (wechat-outbound.ts). Absent where
   * no such message can arrive (the WeChat inbound consumer).
   */
  outbound?: SubmitDeps;
  /** The fan-out jobs of messages `send` did not post inline. Absent where none can arrive (the WeChat inbound consumer). */
  fanout?: Pick<FanoutDeps, 'jobs' | 'queue'>;
  /** Test-only fault injection: throw after the first chunk's rows are written (see config). */
  injectFault?: (message: QueuedMessage, attempt: number) => boolean;
}

export class InjectedFaultError extends Error {
  constructor(msgId: string) {
    super(`injected persister fault for ${msgId}`);
    this.name = 'InjectedFaultError';
  }
}

export interface PersistResult {
  outcome: 'stored' | 'duplicate';
  lateDelivery: DeliveryReport;
  /** The fan-out job that posts the message live, when `send` left that to one. */
  jobId?: string;
}

export function chunksOf<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

export async function persistMessage(deps: PersistDeps, message: QueuedMessage, attempt: number): Promise<PersistResult> {
  const earlier = await deps.messages.getMessageState(message.msgId);
  if (earlier?.state === 'stored') return { outcome: 'duplicate', lateDelivery: emptyReport() };

  const frame = messageFrameOf(message);
  const expiresAt = epochSeconds(message.ts) + deps.inboxTtlSeconds;
  const mintedAt = deps.clock.nowMs();
  const position = deps.newPosition(mintedAt);
  const notAfterMs = mintedAt + MAX_ROW_WRITE_AGE_MS;
  const audience = earlier?.audience.length ? earlier.audience : (message.audience ?? (await audienceOf(deps.groups, message.from, message.to, message.origin)));

  const state = await deps.messages.beginStore(message.msgId, audience, position, expiresAt);
  const stale = state.positions.filter((p) => p !== position);
  // Attempts never overlap (see above), so the chunks read before this attempt began are all there are.
  const chunksDone = earlier?.chunksDone ?? {};
  for (const [index, chunk] of chunksOf(state.audience, STORE_CHUNK_SIZE).entries()) {
    if (chunksDone[index] !== undefined) continue;
    for (const p of stale) await deps.messages.deleteInboxRows(chunk, p);
    await deps.messages.putInboxRows(chunk, position, frame, expiresAt, notAfterMs);
    if (index === 0 && deps.injectFault?.(message, attempt)) throw new InjectedFaultError(message.msgId);
    await deps.messages.markChunkStored(message.msgId, index, position, expiresAt);
  }
  if ('wechat' in message.to) {
    // Before `stored`: a crash here is redelivered and submits again (idempotent on the msgId).
    if (!deps.outbound) throw new Error(`message ${message.msgId} is for a WeChat user, and this consumer cannot send to WeChat`);
    await submitOutbound(deps.outbound, {
      id: message.msgId,
      accountId: message.to.wechat.accountId,
      openId: message.to.wechat.openId,
      kind: 'service',
      message: serviceMessageOf(message.body),
      requester: message.from,
    });
  }
  if (message.liveDelivery === 'fanout') {
    // After the rows (a connection its task misses finds the message with `sync`), before
    // `stored` (a crash here is redelivered and starts the job again, which startJobOnce makes
    // harmless). The job is the message's only live delivery: send posted nothing, so its tasks
    // take every connection of the frozen audience, whenever it was opened, but the sender's.
    if (!deps.fanout) throw new Error(`message ${message.msgId} is left to a fan-out job, and this consumer cannot start one`);
    const jobId = message.msgId;
    await startJobOnce({ ...deps.fanout, clock: deps.clock }, { jobId, msgId: message.msgId, payload: JSON.stringify(frame) }, userTasks(jobId, state.audience, undefined, message.fromConnection));
    await deps.messages.markStored(message.msgId);
    return { outcome: 'stored', lateDelivery: emptyReport(), jobId };
  }
  await deps.messages.markStored(message.msgId);

  // Connections opened after ts (a key condition): send served the others. A WeChat message
  // reached no one live (its callback only queued it): every connection is ours.
  const late = await connectionsOf(
    deps.registry,
    state.audience,
    deps.clock.nowMs(),
    (c) => c.connectionId === message.fromConnection,
    message.origin === 'wechat' ? undefined : { after: message.ts },
  );
  const lateDelivery = await deliver(deps.delivery, late, JSON.stringify(frame));
  return { outcome: 'stored', lateDelivery };
}
