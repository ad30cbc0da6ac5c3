import type { Clock } from './clock';
import { epochSeconds } from './clock';
import type { ConnectionRecord, ConnectionRegistry } from './connection-registry';

/**
 * `$connect`, `$disconnect` and `ping`. A connection row is written once, at `$connect`, and
 * lives as long as API Gateway can keep the socket open (plus a margin); `$disconnect`, a 410
 * on delivery or the TTL removes it. A ping writes nothing: rows used to live 15 minutes past
 * the last ping, so every ping was a write (and a copy in the `byUser` index), and a throttled
 * ping silently took an online user out of live delivery.
 */
export interface LifecycleDeps {
  registry: ConnectionRegistry;
  clock: Clock;
  /** Seconds a row lives after its connection opened (`ROW_LIFETIME_SECONDS` by default). */
  rowLifetimeSeconds: number;
}

/** API Gateway closes every WebSocket connection 2 hours after it opened, active or not. */
export const API_GATEWAY_MAX_CONNECTION_SECONDS = 2 * 60 * 60;
/**
 * The row outlives that limit by 10 minutes, so that no clock skew between API Gateway's
 * `connectedAt` and DynamoDB's TTL can expire the row of a socket that is still open.
 */
const ROW_LIFETIME_MARGIN_SECONDS = 10 * 60;
/** 2 h 10 min after the connection opened. */
export const ROW_LIFETIME_SECONDS = API_GATEWAY_MAX_CONNECTION_SECONDS + ROW_LIFETIME_MARGIN_SECONDS;

export interface ConnectionIdentity {
  connectionId: string;
  userId: string;
  deviceId: string;
  /** Epoch ms at which API Gateway accepted the connection. */
  connectedAt: number;
}

export async function openConnection(deps: LifecycleDeps, identity: ConnectionIdentity): Promise<ConnectionRecord> {
  // Counted from connectedAt, as API Gateway counts its 2 hours, not from when $connect ran.
  const record = { ...identity, expiresAt: epochSeconds(identity.connectedAt) + deps.rowLifetimeSeconds };
  await deps.registry.put(record);
  return record;
}

export async function closeConnection(deps: LifecycleDeps, connectionId: string): Promise<void> {
  await deps.registry.remove(connectionId);
}

/**
 * `ping` only keeps API Gateway's 10-minute idle timeout away; it has nothing to do with
 * delivery, so it needs the clock and nothing else (no table, no write).
 */
export function pingConnection(deps: Pick<LifecycleDeps, 'clock'>): { ts: number } {
  return { ts: deps.clock.nowMs() };
}

/**
 * The connections to close so that a user who just opened `newConnectionId` holds at most
 * `maxPerUser`: the oldest others, so the new device always wins (a user re-opening the app is
 * never locked out by sockets that died without `$disconnect`). The new connection counts
 * whether or not `live` shows it yet: the `byUser` index is eventually consistent.
 */
export function connectionsOverLimit(live: readonly ConnectionRecord[], newConnectionId: string, maxPerUser: number): string[] {
  const others = live
    .filter((c) => c.connectionId !== newConnectionId)
    .sort((a, b) => a.connectedAt - b.connectedAt || (a.connectionId < b.connectionId ? -1 : a.connectionId > b.connectionId ? 1 : 0));
  return others.slice(0, Math.max(0, others.length - (maxPerUser - 1))).map((c) => c.connectionId);
}
