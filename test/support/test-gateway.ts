import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, QueryCommand, GetCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoConnectionRegistry } from '../../lambdas/adapters/dynamo-connection-registry';
import { DynamoGroupDirectory } from '../../lambdas/adapters/dynamo-group-directory';
import { startLocalGateway, type LocalGateway, type LocalGatewayOptions } from '../../local/local-gateway';

/**
 * The real local runtime on ephemeral ports, plus direct table access for assertions.
 * Credentials and Region match what the runtime gives the handlers: DynamoDB Local keeps a
 * separate database per access key and Region.
 */
export interface TestGateway {
  gateway: LocalGateway;
  ddb: DynamoDBDocumentClient;
  registry: DynamoConnectionRegistry;
  groups: DynamoGroupDirectory;
  connectionRow(connectionId: string): Promise<Record<string, any> | undefined>;
  inboxRows(userId: string): Promise<Array<Record<string, any>>>;
  stop(): Promise<void>;
}

export async function startTestGateway(options: LocalGatewayOptions = {}): Promise<TestGateway> {
  const gateway = await startLocalGateway({ httpPort: 0, wsPort: 0, logger: () => undefined, ...options });
  const ddb = DynamoDBDocumentClient.from(
    new DynamoDBClient({ endpoint: gateway.dynamoEndpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }),
  );
  return {
    gateway,
    ddb,
    registry: new DynamoConnectionRegistry(ddb, gateway.tableNames.connections),
    groups: new DynamoGroupDirectory(ddb, gateway.tableNames.groups),
    connectionRow: async (connectionId) =>
      (await ddb.send(new GetCommand({ TableName: gateway.tableNames.connections, Key: { connectionId }, ConsistentRead: true }))).Item,
    inboxRows: async (userId) =>
      (
        await ddb.send(
          new QueryCommand({
            TableName: gateway.tableNames.messages,
            KeyConditionExpression: 'pk = :pk',
            ExpressionAttributeValues: { ':pk': `inbox#${userId}` },
            ConsistentRead: true,
          }),
        )
      ).Items ?? [],
    stop: async () => {
      ddb.destroy();
      await gateway.stop();
    },
  };
}
