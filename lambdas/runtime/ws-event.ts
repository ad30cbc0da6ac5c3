import { unauthorized } from '../domain/errors';
import type { ConnectionIdentity } from '../domain/connection-lifecycle';

/** The parts of an API Gateway WebSocket event that wxgate reads (AWS and local mode alike). */
export interface WsEvent {
  requestContext: {
    routeKey: string;
    eventType: 'CONNECT' | 'MESSAGE' | 'DISCONNECT';
    connectionId: string;
    connectedAt: number;
    requestId: string;
    domainName?: string;
    stage?: string;
    /** What the $connect authorizer returned as `context`; API Gateway repeats it on every route. */
    authorizer?: { userId?: unknown; deviceId?: unknown; principalId?: unknown };
  };
  body?: string | null;
  isBase64Encoded?: boolean;
}

export interface WsResult {
  statusCode: number;
  body?: string;
}

/** Who sent this event, from the authorizer context. */
export function callerOf(event: WsEvent): ConnectionIdentity {
  const { connectionId, connectedAt, authorizer } = event.requestContext;
  if (typeof authorizer?.userId !== 'string' || typeof authorizer.deviceId !== 'string') {
    // Only reachable if a route is deployed without the $connect authorizer.
    throw unauthorized('connection has no authenticated user');
  }
  return { connectionId, connectedAt, userId: authorizer.userId, deviceId: authorizer.deviceId };
}
