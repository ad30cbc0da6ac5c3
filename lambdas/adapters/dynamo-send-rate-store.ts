import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { SendRateStore } from '../domain/send-rate';

/**
 * Send-rate windows in the admin table: rate#{userId} / {windowStartMs} with the count of sends
 * so far, TTL just after the window. One conditional update per send.
 */
export class DynamoSendRateStore implements SendRateStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async admit(userId: string, windowStartMs: number, allowance: number, expiresAt: number): Promise<boolean> {
    try {
      await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: `rate#${userId}`, sk: String(windowStartMs) },
          UpdateExpression: 'ADD sends :one SET expiresAt = :exp',
          ConditionExpression: 'attribute_not_exists(sends) OR sends < :allowance',
          ExpressionAttributeValues: { ':one': 1, ':exp': expiresAt, ':allowance': allowance },
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }
}
