import { DeleteConnectionCommand, PostToConnectionCommand, type ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import type { ConnectionSender, PostOutcome } from '../domain/messaging-ports';

/**
 * PostToConnection through the API Gateway Management API. The SDK names a 410 `GoneException`
 * only when the answer carries the error type, so the status code is checked as well.
 */
export function outcomeOfError(err: unknown): PostOutcome {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  const status = e?.$metadata?.httpStatusCode;
  if (e?.name === 'GoneException' || status === 410) return 'gone';
  if (e?.name === 'LimitExceededException' || e?.name === 'ThrottlingException' || status === 429) return 'retryable';
  if (status !== undefined && status >= 500) return 'retryable';
  // No HTTP answer at all (socket reset, timeout): worth another try.
  if (status === undefined && ['TimeoutError', 'ECONNRESET', 'EPIPE', 'ECONNREFUSED'].some((n) => e?.name === n || String((err as Error)?.message).includes(n))) return 'retryable';
  return 'rejected';
}

export class ManagementApiSender implements ConnectionSender {
  private readonly encoder = new TextEncoder();

  constructor(private readonly client: ApiGatewayManagementApiClient) {}

  async post(connectionId: string, data: string): Promise<PostOutcome> {
    try {
      await this.client.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: this.encoder.encode(data) }));
      return 'ok';
    } catch (err) {
      return outcomeOfError(err);
    }
  }

  async disconnect(connectionId: string): Promise<PostOutcome> {
    try {
      await this.client.send(new DeleteConnectionCommand({ ConnectionId: connectionId }));
      return 'ok';
    } catch (err) {
      return outcomeOfError(err);
    }
  }
}
