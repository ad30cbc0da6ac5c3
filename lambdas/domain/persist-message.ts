import type { Clock } from './clock';
import { epochSeconds } from './clock';
import type { ConnectionRegistry } from './connection-registry';
import { connectionsOf, deliver, emptyReport, type DeliveryDeps, type DeliveryReport } from './delivery';
import type { GroupDirectory, MessageStore, QueuedMessage } from './messaging-ports';
import { audienceOf, messageFrameOf, openedAfter } from './send-message';

/**
 * The uplink persister: stores one queued message and one inbox row per audience member
 * (recipients and the sender, for multi-device history), idempotently.
 *
 * SQS delivers at least once and a Lambda can die half-way, so storing is a small state
 * machine on the message row: `storing` (a fresh position joins the row's positions) ->
 * inbox rows -> rows at every earlier position deleted -> `stored`. A redelivery of a `stored`
 * message does nothing. A redelivery of a message stuck in `storing` stores it again at a
 * fresh position and deletes the rows of every earlier attempt (the positions were recorded
 * before their rows were written, so none is forgotten), so each inbox ends with exactly one
 * row per message, at a position minted when it became readable (which is what the sync
 * overlap relies on; see inbox-position.ts).
 *
 * After storing, it pushes the message to audience connections opened after the message's
 * ts: `send` delivers live only to connections opened at or before ts (send-message.ts), so
 * each connection is served by exactly one of the two.
 */

export interface PersistDeps {
  messages: MessageStore;
  groups: GroupDirectory;
  registry: ConnectionRegistry;
  delivery: DeliveryDeps;
  clock: Clock;
  newPosition: () => string;
  inboxTtlSeconds: number;
  /** Test-only fault injection: throw after the inbox rows are written (see config). */
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
}

export async function persistMessage(deps: PersistDeps, message: QueuedMessage, attempt: number): Promise<PersistResult> {
  const earlier = await deps.messages.getMessageState(message.msgId);
  if (earlier?.state === 'stored') return { outcome: 'duplicate', lateDelivery: emptyReport() };

  const frame = messageFrameOf(message);
  const audience = await audienceOf(deps.groups, message.from, message.to);
  const expiresAt = epochSeconds(message.ts) + deps.inboxTtlSeconds;
  const position = deps.newPosition();

  await deps.messages.beginStore(frame, position, expiresAt);
  await deps.messages.putInboxRows(audience, position, frame, expiresAt);
  if (deps.injectFault?.(message, attempt)) throw new InjectedFaultError(message.msgId);
  for (const stale of earlier?.positions ?? []) {
    if (stale !== position) await deps.messages.deleteInboxRows(audience, stale);
  }
  await deps.messages.markStored(message.msgId);

  const late = await connectionsOf(
    deps.registry,
    audience,
    deps.clock.nowMs(),
    (c) => !openedAfter(c, message.ts) || c.connectionId === message.fromConnection,
  );
  const lateDelivery = await deliver(deps.delivery, late, JSON.stringify(frame));
  return { outcome: 'stored', lateDelivery };
}
