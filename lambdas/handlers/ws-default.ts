import { badRequest } from '../domain/errors';
import { parseJsonFrame } from '../domain/frames';
import { wsRoute } from '../runtime/ws-route';

/** `$default`: a frame whose `action` matches no route. Always an error frame; the socket stays open. */
export const handler = wsRoute(async (event) => {
  const frame = parseJsonFrame(event.body);
  if (typeof frame.action !== 'string') throw badRequest('frame has no "action"; expected one of send, sync, ping');
  throw badRequest(`unknown action "${frame.action.slice(0, 64)}"; expected one of send, sync, ping`);
});
