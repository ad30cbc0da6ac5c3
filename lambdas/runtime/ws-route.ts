import type { MiddlewareObj } from '@middy/core';
import { errorFrame, frameIdOf } from '../domain/frames';
import { badRequest, toClientError } from '../domain/errors';
import { observed } from './middleware';
import { logger } from './observability';
import type { WsEvent, WsResult } from './ws-event';

/**
 * A failed WebSocket route answers an error frame (docs/protocol.md) and the socket stays open.
 * Typed errors keep their code and message; anything else becomes `internal` and is logged
 * here with its stack, which never reaches the client.
 */
export function errorFrames(): MiddlewareObj<WsEvent, WsResult> {
  return {
    onError: async (request) => {
      const { code, message, retryAfterMs } = toClientError(request.error);
      if (code === 'internal') logger.error('route failed', request.error as Error);
      else logger.info('request refused', { code, reason: message });
      const id = request.event.isBase64Encoded ? undefined : frameIdOf(request.event.body);
      request.response = { statusCode: 200, body: JSON.stringify(errorFrame(code, message, id, retryAfterMs)) };
    },
  };
}

export const BINARY_FRAME_MESSAGE = 'binary frames are not supported; send JSON text frames';

/**
 * A WebSocket message route whose handler returns the reply frame (or nothing). A binary frame
 * reaches a route base64-encoded (`isBase64Encoded`): it is refused before the handler sees it,
 * so its bytes are never decoded as text and acked changed.
 */
export function wsRoute(handler: (event: WsEvent) => Promise<object | undefined>) {
  return observed<WsEvent, WsResult>(async (event) => {
    if (event.isBase64Encoded) throw badRequest(BINARY_FRAME_MESSAGE);
    const frame = await handler(event);
    return frame ? { statusCode: 200, body: JSON.stringify(frame) } : { statusCode: 200 };
  }).use(errorFrames());
}
