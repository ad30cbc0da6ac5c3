import type { MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { AdminAuthError } from '../domain/admin-auth';
import { toClientError, type ErrorCode } from '../domain/errors';
import { observed } from './middleware';
import { logger } from './observability';

/** docs/protocol.md: errors are `{"error":{"code","message"}}` with a fitting status. */
export const httpStatusOf: Record<ErrorCode, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  rate_limited: 429,
  internal: 500,
};

export type HttpEvent = APIGatewayProxyEventV2;
export type HttpResult = APIGatewayProxyStructuredResultV2;

export const json = (statusCode: number, body: unknown): HttpResult => ({
  statusCode,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

function httpErrors(): MiddlewareObj<HttpEvent, HttpResult> {
  return {
    onError: async (request) => {
      const err = request.error;
      const { code, message } = toClientError(err);
      if (err instanceof AdminAuthError) {
        // Which check failed, and for which key id: never the secret or the signature.
        logger.warn('admin request refused', { check: err.check, keyId: request.event.headers?.['x-wxgate-key']?.slice(0, 64), path: request.event.rawPath });
      } else if (code === 'internal') logger.error('HTTP request failed', { routeKey: request.event.routeKey, error: err as Error });
      else logger.info('HTTP request refused', { routeKey: request.event.routeKey, code, reason: message });
      request.response = json(httpStatusOf[code], { error: { code, message } });
    },
  };
}

/** An HTTP API (payload 2.0) route whose handler returns the result; errors become the JSON error shape. */
export function httpRoute(handler: (event: HttpEvent) => Promise<HttpResult>) {
  return observed<HttpEvent, HttpResult>(handler).use(httpErrors());
}
