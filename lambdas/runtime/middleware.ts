import middy, { type MiddlewareObj } from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import type { Context } from 'aws-lambda';
import { errorFrame, frameIdOf } from '../domain/frames';
import { toClientError } from '../domain/errors';
import { logger, tracer } from './observability';
import type { WsEvent, WsResult } from './ws-event';

/**
 * Every handler: structured JSON logs with the request id as correlation id, X-Ray tracing.
 * Handlers that emit metrics add `withMetrics` (observability.ts).
 * `correlationIdPath` is the same for API Gateway WebSocket and HTTP API events.
 */
export function observed<E, R>(handler: (event: E, context: Context) => Promise<R>) {
  return middy<E, R>(handler)
    .use(injectLambdaContext(logger, { correlationIdPath: 'requestContext.requestId', resetKeys: true }))
    .use(captureLambdaHandler(tracer, { captureResponse: false }));
}

/**
 * A failed WebSocket route answers an error frame (PROTOCOL.md §2) and the socket stays open.
 * Typed errors keep their code and message; anything else becomes `internal` and is logged
 * here with its stack, which never reaches the client.
 */
export function errorFrames(): MiddlewareObj<WsEvent, WsResult> {
  return {
    onError: async (request) => {
      const { code, message } = toClientError(request.error);
      if (code === 'internal') logger.error('route failed', request.error as Error);
      else logger.info('request refused', { code, reason: message });
      request.response = { statusCode: 200, body: JSON.stringify(errorFrame(code, message, frameIdOf(request.event.body))) };
    },
  };
}

/** A WebSocket message route whose handler returns the reply frame (or nothing). */
export function wsRoute(handler: (event: WsEvent) => Promise<object | undefined>) {
  return observed<WsEvent, WsResult>(async (event) => {
    const frame = await handler(event);
    return frame ? { statusCode: 200, body: JSON.stringify(frame) } : { statusCode: 200 };
  }).use(errorFrames());
}
