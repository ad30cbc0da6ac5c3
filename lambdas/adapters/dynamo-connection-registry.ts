import { DeleteCommand, GetCommand, PutCommand, ScanCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { ConnectionRecord, ConnectionRegistry, OpenedRange, ScanKey } from '../domain/connection-registry';
import { epochSeconds } from '../domain/clock';
import { queryAll } from './dynamo-paging';

/** The connections table (lib/gateway-declaration.ts `tables.connections`). */
export class DynamoConnectionRegistry implements ConnectionRegistry {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async put(record: ConnectionRecord): Promise<void> {
    await this.client.send(new PutCommand({ TableName: this.tableName, Item: { ...record } }));
  }

  async remove(connectionId: string): Promise<void> {
    await this.client.send(new DeleteCommand({ TableName: this.tableName, Key: { connectionId } }));
  }

  async removeStale(connectionId: string, userId: string): Promise<boolean> {
    try {
      await this.client.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: { connectionId },
          ConditionExpression: 'userId = :u',
          ExpressionAttributeValues: { ':u': userId },
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  async get(connectionId: string, nowMs: number): Promise<ConnectionRecord | undefined> {
    const { Item } = await this.client.send(new GetCommand({ TableName: this.tableName, Key: { connectionId } }));
    const record = Item as ConnectionRecord | undefined;
    return record && record.expiresAt > epochSeconds(nowMs) ? record : undefined;
  }

  async listByUser(userId: string, nowMs: number, opened: OpenedRange = {}): Promise<ConnectionRecord[]> {
    const values: Record<string, unknown> = { ':u': userId, ':now': epochSeconds(nowMs) };
    let range = '';
    if (opened.after !== undefined && opened.notAfter !== undefined) {
      range = ' AND connectedAt BETWEEN :from AND :to';
      Object.assign(values, { ':from': opened.after + 1, ':to': opened.notAfter });
    } else if (opened.after !== undefined) {
      range = ' AND connectedAt > :from';
      values[':from'] = opened.after;
    } else if (opened.notAfter !== undefined) {
      range = ' AND connectedAt <= :to';
      values[':to'] = opened.notAfter;
    }
    return queryAll<ConnectionRecord>(this.client, {
      TableName: this.tableName,
      IndexName: 'byUser',
      KeyConditionExpression: `userId = :u${range}`,
      FilterExpression: 'expiresAt > :now',
      ExpressionAttributeValues: values,
    });
  }

  async scanPage(segment: number, totalSegments: number, startKey: ScanKey | undefined, limit: number, nowMs: number) {
    const page = await this.client.send(
      new ScanCommand({
        TableName: this.tableName,
        Segment: segment,
        TotalSegments: totalSegments,
        ExclusiveStartKey: startKey,
        Limit: limit,
        FilterExpression: 'expiresAt > :now',
        ExpressionAttributeValues: { ':now': epochSeconds(nowMs) },
      }),
    );
    return { records: (page.Items ?? []) as ConnectionRecord[], nextKey: page.LastEvaluatedKey };
  }
}
