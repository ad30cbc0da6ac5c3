import type { Clock } from './clock';
import { epochSeconds } from './clock';
import type { ConnectionRecord, ConnectionRegistry } from './connection-registry';

/**
 * `$connect`, `$disconnect` and `ping`. API Gateway closes a socket after 10 idle minutes, so a
 * connection row lives `idleTtlSeconds` past its last ping; a client pings at least every few
 * minutes (docs/protocol-notes.md) and each ping pushes the TTL out again.
 */
export interface LifecycleDeps {
  registry: ConnectionRegistry;
  clock: Clock;
  idleTtlSeconds: number;
}

export interface ConnectionIdentity {
  connectionId: string;
  userId: string;
  deviceId: string;
  /** Epoch ms at which API Gateway accepted the connection. */
  connectedAt: number;
}

export async function openConnection(deps: LifecycleDeps, identity: ConnectionIdentity): Promise<ConnectionRecord> {
  const now = deps.clock.nowMs();
  const record = { ...identity, lastActiveAt: now, expiresAt: epochSeconds(now) + deps.idleTtlSeconds };
  await deps.registry.put(record);
  return record;
}

export async function closeConnection(deps: LifecycleDeps, connectionId: string): Promise<void> {
  await deps.registry.remove(connectionId);
}

export async function pingConnection(deps: LifecycleDeps, identity: ConnectionIdentity): Promise<{ ts: number }> {
  const now = deps.clock.nowMs();
  await deps.registry.touch({ ...identity, lastActiveAt: now, expiresAt: epochSeconds(now) + deps.idleTtlSeconds });
  return { ts: now };
}
