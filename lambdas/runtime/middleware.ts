import middy, { type MiddlewareObj } from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { Context } from 'aws-lambda';
import { logger } from './observability';

/**
 * Every handler: structured JSON logs with the Lambda context and, for API Gateway events, the
 * request id as correlation id. Handlers that emit metrics add `withMetrics` (observability.ts);
 * WebSocket message routes use `wsRoute` (ws-route.ts), which adds error frames. This module
 * knows nothing of frames, so the authorizer, `$connect`, `$disconnect` and the queue consumers
 * do not bundle the frame schemas.
 */
export function observed<E, R>(handler: (event: E, context: Context) => Promise<R>) {
  return middy<E, R>(handler)
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(requestCorrelationId<E, R>());
}

/**
 * The correlation id of an API Gateway invocation: `requestContext.requestId`, the same field in
 * WebSocket, HTTP API (payload 2.0) and REQUEST authorizer events. It is API Gateway's id of the
 * request, written in its access log too, and the id a queued message carries on to its consumer
 * (adapters/sqs-correlation.ts). Read here with a property access: Powertools' JMESPath search
 * (its `correlationIdPath`) would bundle a JMESPath interpreter for one field. Events without it
 * (SQS, DynamoDB streams) get theirs per record, or none. `resetKeys` above clears it afterwards.
 */
export function requestIdOf(event: unknown): string | undefined {
  const id = (event as { requestContext?: { requestId?: unknown } } | null | undefined)?.requestContext?.requestId;
  return typeof id === 'string' && id !== '' ? id : undefined;
}

function requestCorrelationId<E, R>(): MiddlewareObj<E, R> {
  return {
    before: async (request) => {
      const id = requestIdOf(request.event);
      if (id) logger.setCorrelationId(id);
    },
  };
}
