import { systemClock } from '../domain/clock';
import { pingConnection } from '../domain/connection-lifecycle';
import { parseClientFrame } from '../domain/frames';
import { wsRoute } from '../runtime/ws-route';

/** `ping` -> `pong`, and nothing else: the connection row lives until API Gateway's 2-hour limit anyway. */
export const handler = wsRoute(async (event) => {
  const frame = parseClientFrame('ping', event.body);
  const { ts } = pingConnection({ clock: systemClock });
  return { type: 'pong', id: frame.id, ts };
});
