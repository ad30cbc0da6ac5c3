import type { Clock } from './clock';
import type { ConnectionRegistry } from './connection-registry';
import { connectionsOf, deliver, type DeliveryDeps } from './delivery';
import { GatewayError } from './errors';
import { broadcastTasks, startJob, userTasks, type FanoutQueue, type JobStore } from './fanout';
import type { MessageFrame } from './frames';
import type { GroupDirectory, QueuedMessage, UplinkQueue } from './messaging-ports';
import { carriedAudience, messageFrameOf } from './send-message';

/**
 * `POST /v1/push` (docs/admin-api.md). A push to users or a group takes the path of a client's
 * send: one msgId, on the FIFO uplink queue before the answer (so the persister stores an inbox
 * row per recipient and `sync` finds it), then live delivery. Audiences of at most
 * INLINE_PUSH_MAX_USERS users are posted inside the request and answered 200 with exact counts;
 * larger ones answer 202 and are posted by a fan-out job. A push to everyone is always a job and
 * is not stored (docs/protocol.md: broadcast reaches online connections only).
 */
export const INLINE_PUSH_MAX_USERS = 100;

export type PushTarget = { users: string[] } | { group: string } | { all: true };

export interface AdminPushDeps {
  uplink: UplinkQueue;
  groups: GroupDirectory;
  registry: ConnectionRegistry;
  delivery: DeliveryDeps;
  jobs: JobStore;
  queue: FanoutQueue;
  clock: Clock;
  newMsgId: (nowMs: number) => string;
  newJobId: () => string;
}

export type PushResult =
  | { status: 200; msgId: string; online: number; delivered: number; offline: number }
  | { status: 202; jobId: string; msgId: string };

/** Who an admin push comes from: '/' never occurs in a user id, so no client can pose as it. */
export const adminSender = (keyId: string) => `admin/${keyId}`;

export async function adminPush(deps: AdminPushDeps, keyId: string, to: PushTarget, body: unknown): Promise<PushResult> {
  const ts = deps.clock.nowMs();
  const msgId = deps.newMsgId(ts);
  const from = adminSender(keyId);

  if ('all' in to) {
    const frame: MessageFrame = { type: 'message', msgId, from, to: { push: 'all' }, body, ts };
    const jobId = deps.newJobId();
    await startJob(deps, { jobId, msgId, payload: JSON.stringify(frame) }, broadcastTasks(jobId));
    return { status: 202, jobId, msgId };
  }

  const audience = 'users' in to ? [...new Set(to.users)] : await deps.groups.members(to.group);
  if (audience.length === 0) throw new GatewayError('not_found', `group "${(to as { group: string }).group}" has no members`);
  const message: QueuedMessage = {
    msgId,
    from,
    fromDevice: 'admin',
    fromConnection: '',
    to: 'users' in to ? { users: audience } : to,
    body,
    ts,
    origin: 'admin',
    // The members just read are the audience: the persister need not read them again.
    audience: carriedAudience('group' in to ? to.group : undefined, audience),
  };
  await deps.uplink.enqueue(message);
  const payload = JSON.stringify(messageFrameOf(message));

  if (audience.length > INLINE_PUSH_MAX_USERS) {
    const jobId = deps.newJobId();
    await startJob(deps, { jobId, msgId, payload }, userTasks(jobId, audience, ts));
    return { status: 202, jobId, msgId };
  }
  // Connections opened after ts are the persister's (as for a client's send): not even read here.
  const targets = await connectionsOf(deps.registry, audience, deps.clock.nowMs(), () => false, { notAfter: ts });
  const report = await deliver(deps.delivery, targets, payload);
  const online = new Set(targets.map((t) => t.userId)).size;
  return { status: 200, msgId, online, delivered: report.delivered, offline: audience.length - online };
}
