import { pingConnection } from '../domain/connection-lifecycle';
import { parseClientFrame } from '../domain/frames';
import { lifecycleDeps } from '../runtime/dependencies';
import { wsRoute } from '../runtime/middleware';
import { callerOf } from '../runtime/ws-event';

/** `ping` -> `pong`, and the connection's activity and TTL move forward. */
export const handler = wsRoute(async (event) => {
  const frame = parseClientFrame('ping', event.body);
  const { ts } = await pingConnection(lifecycleDeps(), callerOf(event));
  return { type: 'pong', id: frame.id, ts };
});
