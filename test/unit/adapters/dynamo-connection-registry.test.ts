import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoConnectionRegistry } from '../../../lambdas/adapters/dynamo-connection-registry';
import { connectionRecord } from '../../support/fakes';

const ddb = mockClient(DynamoDBDocumentClient);
const TABLE = 'connections-table';
const NOW = Date.UTC(2026, 0, 1, 12, 0, 0, 999);
const NOW_S = Math.floor(NOW / 1000);

const registry = () => new DynamoConnectionRegistry(DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' })), TABLE);
const ccf = () => new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });

beforeEach(() => ddb.reset());

describe('DynamoConnectionRegistry', () => {
  it('listByUser queries byUser with an expiresAt filter and follows LastEvaluatedKey', async () => {
    const a = connectionRecord('a', 'u1', NOW);
    const b = connectionRecord('b', 'u1', NOW + 1);
    const c = connectionRecord('c', 'u1', NOW + 2);
    const page1Key = { connectionId: 'a', userId: 'u1', connectedAt: NOW };
    const page2Key = { connectionId: 'b', userId: 'u1', connectedAt: NOW + 1 };
    ddb
      .on(QueryCommand)
      .resolvesOnce({ Items: [a], LastEvaluatedKey: page1Key })
      .resolvesOnce({ Items: [b], LastEvaluatedKey: page2Key })
      .resolvesOnce({ Items: [c] });

    await expect(registry().listByUser('u1', NOW)).resolves.toEqual([a, b, c]);

    const calls = ddb.commandCalls(QueryCommand);
    expect(calls).toHaveLength(3);
    for (const call of calls) {
      expect(call.args[0].input).toMatchObject({
        TableName: TABLE,
        IndexName: 'byUser',
        KeyConditionExpression: 'userId = :u',
        FilterExpression: 'expiresAt > :now',
        ExpressionAttributeValues: { ':u': 'u1', ':now': NOW_S },
      });
    }
    expect(calls.map((call) => call.args[0].input.ExclusiveStartKey)).toEqual([undefined, page1Key, page2Key]);
  });

  it('removeStale deletes on condition userId = the user and reports success', async () => {
    ddb.on(DeleteCommand).resolves({});
    await expect(registry().removeStale('a', 'u1')).resolves.toBe(true);
    expect(ddb.commandCalls(DeleteCommand)[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Key: { connectionId: 'a' },
      ConditionExpression: 'userId = :u',
      ExpressionAttributeValues: { ':u': 'u1' },
    });
  });

  it('removeStale returns false when the condition fails', async () => {
    ddb.on(DeleteCommand).rejects(ccf());
    await expect(registry().removeStale('a', 'u1')).resolves.toBe(false);
  });

  it('removeStale rethrows other errors', async () => {
    ddb.on(DeleteCommand).rejects(new Error('throttled'));
    await expect(registry().removeStale('a', 'u1')).rejects.toThrow('throttled');
  });

  it('get ignores an expired row that TTL has not deleted yet', async () => {
    const live = connectionRecord('a', 'u1', NOW, { expiresAt: NOW_S + 1 });
    ddb
      .on(GetCommand)
      .resolvesOnce({ Item: connectionRecord('a', 'u1', NOW, { expiresAt: NOW_S }) })
      .resolvesOnce({ Item: live })
      .resolvesOnce({});
    await expect(registry().get('a', NOW)).resolves.toBeUndefined();
    await expect(registry().get('a', NOW)).resolves.toEqual(live);
    await expect(registry().get('missing', NOW)).resolves.toBeUndefined();
    expect(ddb.commandCalls(GetCommand)[0]!.args[0].input).toEqual({ TableName: TABLE, Key: { connectionId: 'a' } });
  });

  it('put writes the record as it is, and only the attributes something reads (no update: a row is written once)', async () => {
    ddb.on(PutCommand).resolves({});
    const record = connectionRecord('a', 'u1', NOW);
    await registry().put(record);
    expect(ddb.commandCalls(PutCommand)[0]!.args[0].input).toEqual({ TableName: TABLE, Item: record });
    expect(Object.keys(ddb.commandCalls(PutCommand)[0]!.args[0].input.Item!).sort()).toEqual(['connectedAt', 'connectionId', 'deviceId', 'expiresAt', 'userId']);
    expect(ddb.commandCalls(UpdateCommand)).toEqual([]);
  });
});
