import { parseClientFrame } from '../domain/frames';
import { syncInbox } from '../domain/inbox-sync';
import { syncDeps } from '../runtime/dependencies';
import { wsRoute } from '../runtime/ws-route';
import { callerOf } from '../runtime/ws-event';

/** `sync`: a page of the caller's inbox after a cursor (or msgId), with the resume cursor. */
export const handler = wsRoute(async (event) => {
  const frame = parseClientFrame('sync', event.body);
  const page = await syncInbox(syncDeps(), callerOf(event).userId, frame);
  return { type: 'sync', id: frame.id, ...page };
});
