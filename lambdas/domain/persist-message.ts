import type { Clock } from './clock';
import { epochSeconds } from './clock';
import type { ConnectionRegistry } from './connection-registry';
import { connectionsOf, deliver, emptyReport, type DeliveryDeps, type DeliveryReport } from './delivery';
import type { GroupDirectory, MessageStore, QueuedMessage } from './messaging-ports';
import { audienceOf, messageFrameOf } from './send-message';

/**
 * The uplink persister: stores one queued message and one inbox row per audience member
 * (recipients and the sender, for multi-device history), idempotently.
 *
 * SQS delivers at least once and a Lambda can die half-way, so storing is a small state
 * machine on the message row: `storing` (at a fresh position) -> inbox rows -> `stored`.
 * A redelivery of a `stored` message does nothing. A redelivery of a message stuck in
 * `storing` stores it again at a fresh position and deletes the rows of the earlier attempt,
 * so each inbox ends with exactly one row per message, at a position minted when it became
 * readable (which is what the sync overlap relies on; see inbox-position.ts).
 *
 * After storing, it pushes the message to audience connections opened after the message's
 * ts, less a margin: `send` may not have seen them (a connection's row is written a moment
 * after API Gateway accepts it). A client that also syncs may see the message twice and
 * de-duplicates by msgId; it never misses it.
 */
export const LATE_DELIVERY_MARGIN_MS = 10_000;

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
  if (earlier && earlier.position !== position) await deps.messages.deleteInboxRows(audience, earlier.position);
  await deps.messages.markStored(message.msgId);

  const late = await connectionsOf(
    deps.registry,
    audience,
    deps.clock.nowMs(),
    (c) => c.connectedAt < message.ts - LATE_DELIVERY_MARGIN_MS || c.connectionId === message.fromConnection,
  );
  const lateDelivery = await deliver(deps.delivery, late, JSON.stringify(frame));
  return { outcome: 'stored', lateDelivery };
}
