import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';

/**
 * JSON access-log line for API Gateway v2 stages (WebSocket and HTTP). `$context` variables
 * that a protocol does not have are logged as "-" by API Gateway.
 */
export function jsonAccessLogFormat(kind: 'websocket' | 'http'): AccessLogFormat {
  const common = {
    requestId: '$context.requestId',
    ip: '$context.identity.sourceIp',
    requestTime: '$context.requestTime',
    routeKey: '$context.routeKey',
    status: '$context.status',
    error: '$context.error.message',
    integrationError: '$context.integrationErrorMessage',
  };
  const fields =
    kind === 'websocket'
      ? {
          ...common,
          connectionId: '$context.connectionId',
          eventType: '$context.eventType',
          messageId: '$context.messageId',
          authorizerError: '$context.authorizer.error',
        }
      : {
          ...common,
          method: '$context.httpMethod',
          path: '$context.path',
          protocol: '$context.protocol',
          responseLength: '$context.responseLength',
          integrationLatency: '$context.integrationLatency',
        };
  return AccessLogFormat.custom(JSON.stringify(fields));
}
