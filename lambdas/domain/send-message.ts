import type { Clock } from './clock';
import { isReservedUserId } from './client-token';
import { epochSeconds } from './clock';
import type { ConnectionIdentity } from './connection-lifecycle';
import type { ConnectionRegistry } from './connection-registry';
import { connectionsOf, deliver, postWithRetry, type DeliveryDeps, type DeliveryReport } from './delivery';
import { badRequest, forbidden, GatewayError } from './errors';
import { agentGroupOf } from './wechat-callback';
import { isWechatUserId, serviceMessageOf } from './wechat-outbound';
import type { MessageFrame, SendFrame } from './frames';
import { MAX_CARRIED_AUDIENCE, type GroupDirectory, type MessageStore, type QueuedMessage, type UplinkQueue } from './messaging-ports';

/**
 * The `send` route (docs/protocol.md). Order matters and is the guarantee:
 *   1. authorize (only members send to a group: the members are read once, and that list is
 *      the message's audience) and assign msgId/ts;
 *   2. with a client `id`: own the claim on it (see below);
 *   3. queue durably (SQS FIFO), with the audience when it was read and fits the queue message;
 *   4. ack the sender: from here on the message is never lost (the persister stores it), and
 *      nothing that fails later is reported to the sender as an error for this frame;
 *   5. deliver live to every online device of the recipients and the sender's other devices
 *      that was opened at or before the message's ts; the persister pushes to the ones opened
 *      later (they may miss this listing, and must not get the message twice). An audience of
 *      more than `inlineMaxMembers` is not posted here at all: thousands of posts do not fit
 *      the route's 29 s beside everyone else's traffic, so the message is queued for a fan-out
 *      job, which the persister starts once the inbox rows are written (persist-message.ts).
 *
 * A repeated client `id` never delivers twice. One attempt at a time owns the claim, for a
 * lease longer than the route can run (CLAIM_LEASE_MS > 29 s); only the owner queues, acks
 * and delivers. A retry that finds the claim `queued` only acks (same msgId). One that finds it
 * `pending` waits for it (a concurrent duplicate from another device or socket), and answers
 * `rate_limited` if it stays pending longer than RETRY_WAIT_MS. A retry takes the claim over
 * (same msgId) when the owner released it (it failed before the queue) or its lease ran out
 * (it died). If the owner dies after queueing, the message is stored all the same and the
 * recipients get it from `sync` (the resume rule), never from a second live push.
 */
export const CLAIM_LEASE_MS = 35_000;
export const RETRY_WAIT_MS = 3_000;
const RETRY_POLL_MS = 100;
/**
 * Audiences up to this size are posted inside the send route, larger ones by a fan-out job: the
 * size up to which an admin push posts inline too (INLINE_PUSH_MAX_USERS), a few hundred posts
 * at live delivery's 32 in flight, well under a second.
 */
export const DEFAULT_INLINE_MAX_MEMBERS = 100;

export interface SendDeps {
  messages: MessageStore;
  groups: GroupDirectory;
  uplink: UplinkQueue;
  registry: ConnectionRegistry;
  delivery: DeliveryDeps;
  clock: Clock;
  newMsgId: (nowMs: number) => string;
  newAttemptId: () => string;
  sleep: (ms: number) => Promise<void>;
  /** Seconds a client `id` is remembered (docs/protocol.md: 5 minutes). */
  dedupWindowSeconds: number;
  /** Largest audience posted inside the route (SEND_INLINE_MAX_MEMBERS); default DEFAULT_INLINE_MAX_MEMBERS. */
  inlineMaxMembers?: number;
}

export interface SendResult {
  msgId: string;
  ts: number;
  duplicate: boolean;
  delivery: DeliveryReport | undefined;
  /** What failed after the message was queued: logged and counted, never sent to the client. */
  afterAckFailures: Array<{ step: 'markQueued' | 'ack' | 'delivery'; error: unknown }>;
}

export function messageFrameOf(message: QueuedMessage): MessageFrame {
  // An admin push to users does not tell each recipient who else got it.
  const to = 'users' in message.to ? { push: 'users' as const } : message.to;
  return { type: 'message', msgId: message.msgId, from: message.from, to, body: message.body, ts: message.ts };
}

/** The group whose members are in a message's audience: the group sent to, or the account's agents for a reply to a WeChat user. */
export function audienceGroupOf(to: QueuedMessage['to']): string | undefined {
  if ('group' in to) return to.group;
  return 'wechat' in to ? agentGroupOf(to.wechat.accountId) : undefined;
}

/**
 * Users who get the message: the recipients and, for a client's message, the sender (for the
 * sender's other devices). An admin push has no sending user. `members`: those of
 * audienceGroupOf(to), when it names a group.
 */
export function audienceFrom(from: string, to: QueuedMessage['to'], members: readonly string[], origin?: QueuedMessage['origin']): string[] {
  const sender = origin === undefined ? [from] : [];
  if ('users' in to) return [...new Set([...to.users, ...sender])];
  if ('user' in to) return [...new Set([to.user, ...sender])];
  // A WeChat user's message is also kept in the account inbox (the group's own id, a reserved
  // user id), so that it is stored even when no agent is a member yet, and an agent who joins
  // later reads it there (`sync` with `inbox`).
  const accountInbox = origin === 'wechat' && 'group' in to ? [to.group] : [];
  if ('group' in to) return [...new Set([...members, ...accountInbox, ...sender])];
  // An agent's reply to a WeChat user: every agent of the account sees it, and the account inbox keeps the conversation.
  return [...new Set([...members, agentGroupOf(to.wechat.accountId), ...sender])];
}

/** audienceFrom, reading the members when the message names a group. */
export async function audienceOf(groups: GroupDirectory, from: string, to: QueuedMessage['to'], origin?: QueuedMessage['origin']): Promise<string[]> {
  const group = audienceGroupOf(to);
  return audienceFrom(from, to, group === undefined ? [] : await groups.members(group), origin);
}

/** What to carry on the queue (QueuedMessage.audience): an audience that took a membership read, while it fits an SQS message. */
export const carriedAudience = (group: string | undefined, audience: string[]): string[] | undefined =>
  group !== undefined && audience.length <= MAX_CARRIED_AUDIENCE ? audience : undefined;

type Claimed = { role: 'owner'; msgId: string; ts: number } | { role: 'duplicate'; msgId: string; ts: number };

/** Owns the claim on (user, client id), or finds the message it already names. */
async function acquireClientId(deps: SendDeps, userId: string, clientId: string, owner: string, candidate: { msgId: string; ts: number }): Promise<Claimed> {
  const expiresAt = epochSeconds(candidate.ts) + deps.dedupWindowSeconds;
  const waitUntil = deps.clock.nowMs() + RETRY_WAIT_MS;
  let claim = await deps.messages.claimClientId(
    userId,
    clientId,
    { ...candidate, state: 'pending', owner, leaseUntil: candidate.ts + CLAIM_LEASE_MS },
    expiresAt,
    candidate.ts,
  );
  for (;;) {
    if (!claim) return { role: 'owner', ...candidate };
    if (claim.state === 'queued') return { role: 'duplicate', msgId: claim.msgId, ts: claim.ts };
    const now = deps.clock.nowMs();
    if (claim.leaseUntil <= now && (await deps.messages.takeOverClientId(userId, clientId, claim.owner, owner, now + CLAIM_LEASE_MS))) {
      return { role: 'owner', msgId: claim.msgId, ts: claim.ts };
    }
    if (now >= waitUntil) {
      throw new GatewayError('rate_limited', 'a send with this id is still in progress; retry it in a few seconds with the same id');
    }
    await deps.sleep(RETRY_POLL_MS);
    // Expired and gone meanwhile (after the 5-minute window): claim it afresh.
    claim = (await deps.messages.getClientIdClaim(userId, clientId, deps.clock.nowMs())) ??
      (await deps.messages.claimClientId(userId, clientId, { ...candidate, state: 'pending', owner, leaseUntil: deps.clock.nowMs() + CLAIM_LEASE_MS }, expiresAt, deps.clock.nowMs()));
  }
}

export async function sendMessage(deps: SendDeps, caller: ConnectionIdentity, frame: SendFrame): Promise<SendResult> {
  const { to } = frame;
  const afterAckFailures: SendResult['afterAckFailures'] = [];
  // The ack is one more post, throttle-aware like deliveries. A sender already gone (410) has
  // nobody to tell; its message is queued all the same.
  const ack = async (msgId: string, ts: number) => {
    try {
      await postWithRetry(deps.delivery, caller.connectionId, JSON.stringify({ type: 'ack', id: frame.id, msgId, ts }));
    } catch (error) {
      afterAckFailures.push({ step: 'ack', error });
    }
  };
  // One membership read: it authorizes the sender and is the audience, here and in the persister.
  const group = audienceGroupOf(to);
  const members = group === undefined ? [] : await deps.groups.members(group);
  if ('wechat' in to) {
    // Only the account's agents answer its WeChat users; the body must be a message WeChat takes.
    if (!members.includes(caller.userId)) throw forbidden(`only members of group "${group}" (the account's agents) may send to its WeChat users`);
    if (!isWechatUserId(to.wechat.openId)) throw badRequest('to.wechat.openId must be one WeChat user: an openId or WeCom user id of [A-Za-z0-9_.@-], not starting with "@" or "."');
    serviceMessageOf(frame.body);
  }
  // `wechat:…` user ids are WeChat users and account inboxes (the latter read by the account's
  // agents as its WeChat conversation): no client writes into them.
  if ('user' in to && isReservedUserId(to.user)) {
    throw forbidden(`"${to.user}" is a WeChat user or account inbox; answer a WeChat user with to.wechat (agents of the account only)`);
  }
  if ('group' in to && !members.includes(caller.userId)) {
    throw forbidden(`only members of group "${to.group}" may send to it`);
  }
  const audience = audienceFrom(caller.userId, to, members);
  const inline = audience.length <= (deps.inlineMaxMembers ?? DEFAULT_INLINE_MAX_MEMBERS);

  let ts = deps.clock.nowMs();
  let msgId = deps.newMsgId(ts);
  const owner = deps.newAttemptId();
  if (frame.id !== undefined) {
    const claimed = await acquireClientId(deps, caller.userId, frame.id, owner, { msgId, ts });
    ({ msgId, ts } = claimed);
    if (claimed.role === 'duplicate') {
      await ack(msgId, ts);
      return { msgId, ts, duplicate: true, delivery: undefined, afterAckFailures };
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
    audience: carriedAudience(group, audience),
    liveDelivery: inline ? undefined : 'fanout',
  };
  try {
    await deps.uplink.enqueue(message);
  } catch (err) {
    // Not acked: the client retries, and its retry may take over at once with the same msgId.
    if (frame.id !== undefined) await deps.messages.releaseClientId(caller.userId, frame.id, owner).catch(() => false);
    throw err;
  }

  // Queued: from here on nothing is reported to the client as a failure of this frame.
  let stillOwner = true;
  if (frame.id !== undefined) {
    try {
      stillOwner = await deps.messages.markClientIdQueued(caller.userId, frame.id, owner);
      if (!stillOwner) afterAckFailures.push({ step: 'markQueued', error: new Error('the claim was taken over or expired; live delivery left to sync') });
    } catch (error) {
      // A retry may still find the claim pending and take it over after the lease: it would
      // deliver then, so this attempt must not (the message reaches sync either way).
      stillOwner = false;
      afterAckFailures.push({ step: 'markQueued', error });
    }
  }
  await ack(msgId, ts);
  if (!stillOwner || !inline) return { msgId, ts, duplicate: false, delivery: undefined, afterAckFailures };

  try {
    // Only connections opened at or before ts, as a key condition: later ones are the persister's.
    const targets = await connectionsOf(deps.registry, audience, deps.clock.nowMs(), (c) => c.connectionId === caller.connectionId, { notAfter: ts });
    const delivery = await deliver(deps.delivery, targets, JSON.stringify(messageFrameOf(message)));
    return { msgId, ts, duplicate: false, delivery, afterAckFailures };
  } catch (error) {
    afterAckFailures.push({ step: 'delivery', error });
    return { msgId, ts, duplicate: false, delivery: undefined, afterAckFailures };
  }
}
