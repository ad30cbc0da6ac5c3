import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { epochSeconds } from '../domain/clock';
import type { TokenRow, TokenStore } from '../domain/wechat-access-token';

/**
 * Access tokens in the wechat table (lib/gateway-declaration.ts `tables.wechat`):
 *   token#{accountId} / token   accessToken, expiresAtMs, fetchedAtMs, lastForcedAtMs and the
 *                               refresh lease (leaseOwner, leaseUntilMs)
 * The lease and the save are conditional writes, so two Lambda instances never both refresh.
 */
const tokenKey = (accountId: string) => ({ pk: `token#${accountId}`, sk: 'token' });

/**
 * TTL of a token row, a day past its last write: a row of an account that was removed goes away,
 * while a live account rewrites its row at least every two hours (a token lives 7200 s), long
 * before it. Nothing in the row matters after a day (a forced-refresh time matters for a minute).
 */
export const TOKEN_ROW_TTL_SECONDS = 86_400;

const isConditionFailure = (err: unknown) => err instanceof ConditionalCheckFailedException;

export class DynamoWechatTokenStore implements TokenStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async read(accountId: string): Promise<TokenRow | undefined> {
    // Consistent: a waiter must see the holder's save, and a new holder the row as it is now.
    const { Item } = await this.client.send(new GetCommand({ TableName: this.tableName, Key: tokenKey(accountId), ConsistentRead: true }));
    if (!Item) return undefined;
    const row: TokenRow = {};
    if (typeof Item.accessToken === 'string') row.accessToken = Item.accessToken;
    if (typeof Item.expiresAtMs === 'number') row.expiresAtMs = Item.expiresAtMs;
    if (typeof Item.fetchedAtMs === 'number') row.fetchedAtMs = Item.fetchedAtMs;
    if (typeof Item.leaseOwner === 'string') row.leaseOwner = Item.leaseOwner;
    if (typeof Item.leaseUntilMs === 'number') row.leaseUntilMs = Item.leaseUntilMs;
    if (typeof Item.lastForcedAtMs === 'number') row.lastForcedAtMs = Item.lastForcedAtMs;
    return row;
  }

  async tryLease(accountId: string, owner: string, nowMs: number, leaseUntilMs: number): Promise<boolean> {
    try {
      await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: tokenKey(accountId),
          UpdateExpression: 'SET leaseOwner = :owner, leaseUntilMs = :until, expiresAt = :ttl',
          // No lease, or one that ran out (its holder died or overran): take it.
          ConditionExpression: 'attribute_not_exists(leaseUntilMs) OR leaseUntilMs <= :now',
          ExpressionAttributeValues: { ':owner': owner, ':until': leaseUntilMs, ':now': nowMs, ':ttl': epochSeconds(nowMs) + TOKEN_ROW_TTL_SECONDS },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  async saveToken(accountId: string, owner: string, token: string, expiresAtMs: number, forced: boolean, nowMs: number): Promise<boolean> {
    try {
      await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: tokenKey(accountId),
          UpdateExpression:
            'SET accessToken = :token, expiresAtMs = :expires, fetchedAtMs = :now, expiresAt = :ttl' +
            (forced ? ', lastForcedAtMs = :now' : '') +
            ' REMOVE leaseOwner, leaseUntilMs',
          // Still ours, even if it ran out, as long as nobody took it over: the token is good.
          ConditionExpression: 'leaseOwner = :owner',
          ExpressionAttributeValues: { ':token': token, ':expires': expiresAtMs, ':now': nowMs, ':owner': owner, ':ttl': epochSeconds(nowMs) + TOKEN_ROW_TTL_SECONDS },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  async releaseLease(accountId: string, owner: string): Promise<void> {
    try {
      await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: tokenKey(accountId),
          UpdateExpression: 'REMOVE leaseOwner, leaseUntilMs',
          // Never someone else's lease (ours ran out and was taken over), never creates a row.
          ConditionExpression: 'leaseOwner = :owner',
          ExpressionAttributeValues: { ':owner': owner },
        }),
      );
    } catch (err) {
      if (isConditionFailure(err)) return;
      throw err;
    }
  }
}
