import type { Clock } from './clock';
import { epochSeconds } from './clock';
import type { ConnectionIdentity } from './connection-lifecycle';
import type { ConnectionRegistry } from './connection-registry';
import { connectionsOf, deliver, postWithRetry, type DeliveryDeps, type DeliveryReport } from './delivery';
import { badRequest, forbidden } from './errors';
import type { MessageFrame, Recipient, SendFrame } from './frames';
import type { GroupDirectory, MessageStore, QueuedMessage, UplinkQueue } from './messaging-ports';

/**
 * The `send` route (PROTOCOL.md §2). Order matters and is the guarantee:
 *   1. authorize (only members send to a group) and assign msgId/ts;
 *   2. queue durably (SQS FIFO);
 *   3. ack the sender: from here on the message is never lost (the persister stores it);
 *   4. deliver live to every online device of the recipients and the sender's other devices
 *      that was opened at or before the message's ts; the persister pushes to the ones opened
 *      later (they may miss this listing, and must not get the message twice).
 * A retry with the same client `id` within the window returns the first msgId; if the first
 * attempt got as far as the queue, nothing is queued or delivered again.
 */
export interface SendDeps {
  messages: MessageStore;
  groups: GroupDirectory;
  uplink: UplinkQueue;
  registry: ConnectionRegistry;
  delivery: DeliveryDeps;
  clock: Clock;
  newMsgId: (nowMs: number) => string;
  /** Seconds a client `id` is remembered (PROTOCOL.md: 5 minutes). */
  dedupWindowSeconds: number;
}

export interface SendResult {
  msgId: string;
  ts: number;
  duplicate: boolean;
  delivery: DeliveryReport | undefined;
}

export function messageFrameOf(message: QueuedMessage): MessageFrame {
  return { type: 'message', msgId: message.msgId, from: message.from, to: message.to, body: message.body, ts: message.ts };
}

/** Whether a connection was opened after a message's ts (the persister's to serve, not send's). */
export const openedAfter = (connection: { connectedAt: number }, ts: number): boolean => connection.connectedAt > ts;

/** Users who get the message: the recipients and the sender (for the sender's other devices). */
export async function audienceOf(groups: GroupDirectory, from: string, to: Recipient): Promise<string[]> {
  if ('user' in to) return [...new Set([to.user, from])];
  if ('group' in to) return [...new Set([...(await groups.members(to.group)), from])];
  return [from];
}

export async function sendMessage(deps: SendDeps, caller: ConnectionIdentity, frame: SendFrame): Promise<SendResult> {
  const { to } = frame;
  // The ack is one more post, throttle-aware like deliveries. A sender already gone (410) has
  // nobody to tell; its message is queued all the same.
  const ack = (msgId: string, ts: number) =>
    postWithRetry(deps.delivery, caller.connectionId, JSON.stringify({ type: 'ack', id: frame.id, msgId, ts }));
  if ('wechat' in to) throw badRequest('sending to WeChat users is not enabled on this gateway yet');
  if ('group' in to && !(await deps.groups.isMember(to.group, caller.userId))) {
    throw forbidden(`only members of group "${to.group}" may send to it`);
  }

  let ts = deps.clock.nowMs();
  let msgId = deps.newMsgId(ts);
  if (frame.id !== undefined) {
    const earlier = await deps.messages.claimClientId(caller.userId, frame.id, { msgId, ts }, epochSeconds(ts) + deps.dedupWindowSeconds);
    if (earlier) {
      ({ msgId, ts } = earlier);
      if (earlier.queued) {
        await ack(msgId, ts);
        return { msgId, ts, duplicate: true, delivery: undefined };
      }
    }
  }

  const message: QueuedMessage = {
    msgId,
    from: caller.userId,
    fromDevice: caller.deviceId,
    fromConnection: caller.connectionId,
    to,
    body: frame.body,
    ts,
  };
  await deps.uplink.enqueue(message);
  if (frame.id !== undefined) await deps.messages.markClientIdQueued(caller.userId, frame.id);
  await ack(msgId, ts);

  const audience = await audienceOf(deps.groups, caller.userId, to);
  const targets = await connectionsOf(deps.registry, audience, deps.clock.nowMs(), (c) => c.connectionId === caller.connectionId || openedAfter(c, ts));
  const delivery = await deliver(deps.delivery, targets, JSON.stringify(messageFrameOf(message)));
  return { msgId, ts, duplicate: false, delivery };
}
