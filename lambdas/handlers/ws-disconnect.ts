import { closeConnection } from '../domain/connection-lifecycle';
import { lifecycleDeps } from '../runtime/dependencies';
import { observed } from '../runtime/middleware';
import type { WsEvent, WsResult } from '../runtime/ws-event';

/** `$disconnect` is best effort in API Gateway; TTL and 410 answers clean up what it misses. */
export const handler = observed<WsEvent, WsResult>(async (event) => {
  await closeConnection(lifecycleDeps(), event.requestContext.connectionId);
  return { statusCode: 200 };
});
