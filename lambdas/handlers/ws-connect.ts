import { openConnection } from '../domain/connection-lifecycle';
import { lifecycleDeps } from '../runtime/dependencies';
import { observed } from '../runtime/middleware';
import { callerOf, type WsEvent, type WsResult } from '../runtime/ws-event';

/** `$connect` (after the authorizer allowed it): remember the connection for its user and device. */
export const handler = observed<WsEvent, WsResult>(async (event) => {
  await openConnection(lifecycleDeps(), callerOf(event));
  return { statusCode: 200 };
});
