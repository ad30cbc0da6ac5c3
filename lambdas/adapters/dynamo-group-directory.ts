import { GetCommand, QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { GroupDirectory } from '../domain/messaging-ports';
import { batchWriteAll, queryAll } from './dynamo-paging';

/** The groups table (lib/gateway-declaration.ts `tables.groups`): one (groupId, userId) row per member. */
export class DynamoGroupDirectory implements GroupDirectory {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async isMember(groupId: string, userId: string): Promise<boolean> {
    const { Item } = await this.client.send(new GetCommand({ TableName: this.tableName, Key: { groupId, userId } }));
    return Item !== undefined;
  }

  async members(groupId: string): Promise<string[]> {
    const rows = await queryAll<{ userId: string }>(this.client, {
      TableName: this.tableName,
      KeyConditionExpression: 'groupId = :g',
      ExpressionAttributeValues: { ':g': groupId },
      ProjectionExpression: 'userId',
    });
    return rows.map((row) => row.userId);
  }

  async membersPage(groupId: string, after: string | undefined, limit: number): Promise<{ members: string[]; next: string | undefined }> {
    const page = await this.client.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: 'groupId = :g',
        ExpressionAttributeValues: { ':g': groupId },
        ProjectionExpression: 'userId',
        ExclusiveStartKey: after === undefined ? undefined : { groupId, userId: after },
        Limit: limit,
        ConsistentRead: true,
      }),
    );
    const members = (page.Items ?? []).map((row) => row.userId as string);
    return { members, next: page.LastEvaluatedKey ? (page.LastEvaluatedKey.userId as string) : undefined };
  }

  async countMembers(groupId: string): Promise<number> {
    let count = 0;
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.client.send(
        new QueryCommand({ TableName: this.tableName, KeyConditionExpression: 'groupId = :g', ExpressionAttributeValues: { ':g': groupId }, Select: 'COUNT', ExclusiveStartKey: start, ConsistentRead: true }),
      );
      count += page.Count ?? 0;
      start = page.LastEvaluatedKey;
    } while (start);
    return count;
  }

  async addMembers(groupId: string, userIds: readonly string[]): Promise<void> {
    const joinedAt = Date.now();
    await batchWriteAll(this.client, this.tableName, [...new Set(userIds)].map((userId) => ({ PutRequest: { Item: { groupId, userId, joinedAt } } })));
  }

  async removeMembers(groupId: string, userIds: readonly string[]): Promise<void> {
    await batchWriteAll(this.client, this.tableName, [...new Set(userIds)].map((userId) => ({ DeleteRequest: { Key: { groupId, userId } } })));
  }
}
