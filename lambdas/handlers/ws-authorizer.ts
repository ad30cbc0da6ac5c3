import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { TokenRejectedError, verifyClientToken } from '../domain/client-token';
import { loadJwtSecret } from '../runtime/jwt-secret';
import { observed } from '../runtime/middleware';
import { logger } from '../runtime/observability';

/**
 * REQUEST authorizer on `$connect`. API Gateway answers the upgrade with 401 when the handler
 * throws `Unauthorized` (no or unreadable token) and 403 for a Deny policy (a well-formed
 * token that is expired, badly signed or lacks claims). The connection never exists then.
 */
function policy(effect: 'Allow' | 'Deny', principalId: string, resource: string, context?: Record<string, string>): APIGatewayAuthorizerResult {
  return {
    principalId,
    policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: effect, Resource: resource }] },
    context,
  };
}

export const handler = observed<APIGatewayRequestAuthorizerEvent, APIGatewayAuthorizerResult>(async (event) => {
  const token = event.queryStringParameters?.token;
  if (!token) throw new Error('Unauthorized');
  try {
    const identity = await verifyClientToken(token, await loadJwtSecret());
    return policy('Allow', identity.userId, event.methodArn, { userId: identity.userId, deviceId: identity.deviceId });
  } catch (err) {
    if (!(err instanceof TokenRejectedError)) throw err;
    logger.info('client token refused', { reason: err.reason });
    if (err.reason === 'malformed') throw new Error('Unauthorized');
    return policy('Deny', 'anonymous', event.methodArn);
  }
});
