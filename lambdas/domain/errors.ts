/**
 * Typed errors with the client-facing codes of docs/protocol.md.
 * Anything that is not a GatewayError is reported to clients as `internal`, with a fixed
 * message: a stack trace or an SDK message never reaches a client.
 */
export const errorCodes = [
  'bad_request',
  'unauthorized',
  'forbidden',
  'not_found',
  'conflict',
  'too_large',
  'rate_limited',
  'internal',
] as const;

export type ErrorCode = (typeof errorCodes)[number];

export class GatewayError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** For `rate_limited`: how long to wait before trying again. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'GatewayError';
  }
}

export const badRequest = (message: string) => new GatewayError('bad_request', message);
export const forbidden = (message: string) => new GatewayError('forbidden', message);
export const tooLarge = (message: string) => new GatewayError('too_large', message);
export const unauthorized = (message: string) => new GatewayError('unauthorized', message);

/** The client-safe view of any thrown value. */
export function toClientError(err: unknown): { code: ErrorCode; message: string; retryAfterMs?: number } {
  if (err instanceof GatewayError) return { code: err.code, message: err.message, ...(err.retryAfterMs !== undefined ? { retryAfterMs: err.retryAfterMs } : {}) };
  return { code: 'internal', message: 'internal error; the request was not completed' };
}
