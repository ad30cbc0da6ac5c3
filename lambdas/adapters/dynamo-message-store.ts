import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import { epochSeconds } from '../domain/clock';
import type { MessageFrame } from '../domain/frames';
import type { ClientIdClaim, InboxRow, MessageStore, StoredMessageState } from '../domain/messaging-ports';
import { batchWriteAll } from './dynamo-paging';

/**
 * The messages table (lib/gateway-declaration.ts `tables.messages`), three kinds of rows:
 *   msg#{msgId}                / "msg"       storing state and the inbox positions of a message
 *   inbox#{userId}             / {position}  one per audience member; the frame as JSON text
 *   dedup#{userId}#{clientId}  / "dedup"     a client frame id seen within the window
 * Frames are stored as JSON text, not DynamoDB maps: any JSON body round-trips exactly
 * (DynamoDB numbers cannot hold every double, e.g. 1e308).
 */
const messageKey = (msgId: string) => ({ pk: `msg#${msgId}`, sk: 'msg' });
const inboxKey = (userId: string, position: string) => ({ pk: `inbox#${userId}`, sk: position });
const dedupKey = (userId: string, clientId: string) => ({ pk: `dedup#${userId}#${clientId}`, sk: 'dedup' });

export class DynamoMessageStore implements MessageStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async claimClientId(userId: string, clientId: string, candidate: { msgId: string; ts: number }, expiresAt: number): Promise<ClientIdClaim | undefined> {
    try {
      await this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...dedupKey(userId, clientId), msgId: candidate.msgId, ts: candidate.ts, queued: false, expiresAt },
          // An expired claim (TTL not yet applied) is free to take again.
          ConditionExpression: 'attribute_not_exists(pk) OR expiresAt <= :now',
          ExpressionAttributeValues: { ':now': epochSeconds(candidate.ts) },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return undefined;
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      // The raw Item names the earlier claim; read it back if it is missing or unexpected.
      const earlier = (err.Item && unmarshallClaim(err.Item)) || (await this.readClaim(userId, clientId));
      if (!earlier) throw err;
      return earlier;
    }
  }

  private async readClaim(userId: string, clientId: string): Promise<ClientIdClaim | undefined> {
    const { Item } = await this.client.send(new GetCommand({ TableName: this.tableName, Key: dedupKey(userId, clientId), ConsistentRead: true }));
    return Item ? { msgId: Item.msgId as string, ts: Item.ts as number, queued: Item.queued === true } : undefined;
  }

  async markClientIdQueued(userId: string, clientId: string): Promise<void> {
    await this.client.send(
      new UpdateCommand({ TableName: this.tableName, Key: dedupKey(userId, clientId), UpdateExpression: 'SET queued = :t', ExpressionAttributeValues: { ':t': true } }),
    );
  }

  async getMessageState(msgId: string): Promise<StoredMessageState | undefined> {
    const { Item } = await this.client.send(new GetCommand({ TableName: this.tableName, Key: messageKey(msgId), ConsistentRead: true }));
    if (!Item) return undefined;
    const positions = [...((Item.positions as Set<string> | undefined) ?? [])].sort();
    return { msgId, positions, state: Item.state as StoredMessageState['state'] };
  }

  async beginStore(frame: MessageFrame, position: string, expiresAt: number): Promise<void> {
    // ADD to a string set: the positions of every attempt stay known until the last succeeds.
    await this.client.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: messageKey(frame.msgId),
        UpdateExpression: 'SET #s = :storing, frame = :f, expiresAt = :e ADD positions :p',
        ExpressionAttributeNames: { '#s': 'state' },
        ExpressionAttributeValues: { ':storing': 'storing', ':f': JSON.stringify(frame), ':e': expiresAt, ':p': new Set([position]) },
      }),
    );
  }

  async putInboxRows(userIds: readonly string[], position: string, frame: MessageFrame, expiresAt: number): Promise<void> {
    const json = JSON.stringify(frame);
    await batchWriteAll(
      this.client,
      this.tableName,
      userIds.map((userId) => ({ PutRequest: { Item: { ...inboxKey(userId, position), msgId: frame.msgId, frame: json, expiresAt } } })),
    );
  }

  async deleteInboxRows(userIds: readonly string[], position: string): Promise<void> {
    await batchWriteAll(
      this.client,
      this.tableName,
      userIds.map((userId) => ({ DeleteRequest: { Key: inboxKey(userId, position) } })),
    );
  }

  async markStored(msgId: string): Promise<void> {
    await this.client.send(
      new UpdateCommand({ TableName: this.tableName, Key: messageKey(msgId), UpdateExpression: 'SET #s = :s', ExpressionAttributeNames: { '#s': 'state' }, ExpressionAttributeValues: { ':s': 'stored' } }),
    );
  }

  async readInbox(userId: string, afterPosition: string | undefined, max: number, nowMs: number): Promise<{ rows: InboxRow[]; more: boolean }> {
    const rows: InboxRow[] = [];
    const now = epochSeconds(nowMs);
    let startKey: Record<string, unknown> | undefined = afterPosition === undefined ? undefined : inboxKey(userId, afterPosition);
    // Read one row beyond `max` to know whether more exist; expired rows are skipped (TTL lags).
    while (rows.length <= max) {
      const page = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': `inbox#${userId}` },
          ExclusiveStartKey: startKey,
          Limit: max + 1 - rows.length,
          ConsistentRead: true,
        }),
      );
      for (const item of page.Items ?? []) {
        if ((item.expiresAt as number) > now) rows.push({ position: item.sk as string, frame: JSON.parse(item.frame as string) as MessageFrame });
      }
      startKey = page.LastEvaluatedKey;
      if (!startKey) break;
    }
    return { rows: rows.slice(0, max), more: rows.length > max };
  }
}

function unmarshallClaim(item: Record<string, unknown>): ClientIdClaim | undefined {
  // ReturnValuesOnConditionCheckFailure hands back raw attribute values ({S:..}, {N:..}, {BOOL:..}).
  const attr = item as Record<string, { S?: string; N?: string; BOOL?: boolean }>;
  if (!attr.msgId?.S || !attr.ts?.N) return undefined;
  return { msgId: attr.msgId.S, ts: Number(attr.ts.N), queued: attr.queued?.BOOL === true };
}
