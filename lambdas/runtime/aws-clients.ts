import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

/**
 * SDK clients, created once per Lambda instance and reused across invocations (keep-alive
 * sockets). Endpoints come from the standard SDK settings: in local mode the runtime sets
 * AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL_SQS, so this code has no local special case.
 * Not wrapped by an X-Ray tracer (observability.ts says why); in Lambda the SDK itself passes
 * the invocation's trace header on with every request.
 */
let documentClient: DynamoDBDocumentClient | undefined;
let sqsClient: SQSClient | undefined;
const managementClients = new Map<string, ApiGatewayManagementApiClient>();

export function dynamoDocumentClient(): DynamoDBDocumentClient {
  // A bounded request time keeps the persister's write deadline meaningful (inbox-position.ts,
  // RESUME_OVERLAP_MS): a write is either answered within seconds or retried, not left hanging.
  documentClient ??= DynamoDBDocumentClient.from(new DynamoDBClient({ maxAttempts: 3, requestHandler: { requestTimeout: 3000 } }), {
    marshallOptions: { removeUndefinedValues: true },
  });
  return documentClient;
}

export function sqs(): SQSClient {
  sqsClient ??= new SQSClient({});
  return sqsClient;
}

export function managementApi(endpoint: string): ApiGatewayManagementApiClient {
  let client = managementClients.get(endpoint);
  if (!client) {
    // Delivery does its own jittered retries on 429/5xx (adapters/management-api-sender.ts).
    client = new ApiGatewayManagementApiClient({ endpoint, maxAttempts: 1 });
    managementClients.set(endpoint, client);
  }
  return client;
}
