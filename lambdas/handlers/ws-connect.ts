import { connectionsOverLimit, openConnection } from '../domain/connection-lifecycle';
import { maxConnectionsPerUser } from '../runtime/config';
import { connectionSender, lifecycleDeps } from '../runtime/dependencies';
import { observed } from '../runtime/middleware';
import { logger } from '../runtime/observability';
import { callerOf, type WsEvent, type WsResult } from '../runtime/ws-event';

/**
 * `$connect` (after the authorizer allowed it): remember the connection for its user and device,
 * then close the user's oldest connections beyond `MAX_CONNECTIONS_PER_USER`, so the new device
 * wins. Only connections opened up to this one are listed (a key condition), so of devices
 * connecting at the same moment none closes a newer one, and the newest always stays. There is
 * no lock: racing devices that do not see each other yet (the index lags) may exceed the limit
 * by the number racing, until that user's next connect.
 */
export const handler = observed<WsEvent, WsResult>(async (event) => {
  const maxPerUser = maxConnectionsPerUser();
  const deps = lifecycleDeps();
  const caller = callerOf(event);
  await openConnection(deps, caller);
  const live = await deps.registry.listByUser(caller.userId, deps.clock.nowMs(), { notAfter: caller.connectedAt });
  for (const connectionId of connectionsOverLimit(live, caller.connectionId, maxPerUser)) {
    // DeleteConnection: API Gateway closes the socket and runs its $disconnect, which removes the row.
    const outcome = await connectionSender().disconnect(connectionId);
    if (outcome === 'gone') await deps.registry.removeStale(connectionId, caller.userId);
    else if (outcome !== 'ok') logger.warn('a connection over the per-user limit stays open for now', { connectionId, outcome });
  }
  return { statusCode: 200 };
});
