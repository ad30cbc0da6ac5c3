import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
  type UpdateCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { epochSeconds } from '../domain/clock';
import type { MessageFrame } from '../domain/frames';
import { WriteDeadlineError, type ClientIdClaim, type InboxRow, type MessageStore, type StoreAttempt, type StoredMessageState } from '../domain/messaging-ports';
import { batchWriteAll, queryAll } from './dynamo-paging';
import { readInboxWithin } from './inbox-pages';

/**
 * The messages table (lib/gateway-declaration.ts `tables.messages`), four kinds of rows:
 *   msg#{msgId}                / "msg"       storing state and positions, frozen audience (no frame: the inbox rows carry it)
 *   msg#{msgId}                / chunk#{i}   chunk i of the audience is written, at `position`
 *   inbox#{userId}             / {position}  one per audience member; the frame as JSON text
 *   dedup#{userId}#{clientId}  / "dedup"     a client frame id seen within the window
 * Frames are stored as JSON text, not DynamoDB maps: any JSON body round-trips exactly
 * (DynamoDB numbers cannot hold every double, e.g. 1e308).
 */
const messageKey = (msgId: string) => ({ pk: `msg#${msgId}`, sk: 'msg' });
const CHUNK_PREFIX = 'chunk#';
const chunkKey = (msgId: string, index: number) => ({ pk: `msg#${msgId}`, sk: `${CHUNK_PREFIX}${index}` });
const inboxKey = (userId: string, position: string) => ({ pk: `inbox#${userId}`, sk: position });
const dedupKey = (userId: string, clientId: string) => ({ pk: `dedup#${userId}#${clientId}`, sk: 'dedup' });

export class DynamoMessageStore implements MessageStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async claimClientId(userId: string, clientId: string, candidate: ClientIdClaim, expiresAt: number, nowMs: number): Promise<ClientIdClaim | undefined> {
    try {
      await this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...dedupKey(userId, clientId), ...candidate, expiresAt },
          // An expired claim (TTL not yet applied) is free to take again.
          ConditionExpression: 'attribute_not_exists(pk) OR expiresAt <= :now',
          ExpressionAttributeValues: { ':now': epochSeconds(nowMs) },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return undefined;
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      // The raw Item names the earlier claim; read it back if it is missing or unexpected.
      const earlier = (err.Item && claimOf(plainOf(err.Item))) || (await this.getClientIdClaim(userId, clientId, nowMs));
      if (!earlier) throw err;
      return earlier;
    }
  }

  async getClientIdClaim(userId: string, clientId: string, nowMs: number): Promise<ClientIdClaim | undefined> {
    const { Item } = await this.client.send(new GetCommand({ TableName: this.tableName, Key: dedupKey(userId, clientId), ConsistentRead: true }));
    return Item && (Item.expiresAt as number) > epochSeconds(nowMs) ? claimOf(Item) : undefined;
  }

  async takeOverClientId(userId: string, clientId: string, fromOwner: string, toOwner: string, leaseUntil: number): Promise<boolean> {
    return this.conditionalUpdate({
      Key: dedupKey(userId, clientId),
      UpdateExpression: 'SET #o = :to, leaseUntil = :l',
      ConditionExpression: '#o = :from AND #s = :pending',
      ExpressionAttributeNames: { '#o': 'owner', '#s': 'state' },
      ExpressionAttributeValues: { ':to': toOwner, ':from': fromOwner, ':l': leaseUntil, ':pending': 'pending' },
    });
  }

  async releaseClientId(userId: string, clientId: string, owner: string): Promise<boolean> {
    return this.conditionalUpdate({
      Key: dedupKey(userId, clientId),
      UpdateExpression: 'SET leaseUntil = :zero',
      ConditionExpression: '#o = :me AND #s = :pending',
      ExpressionAttributeNames: { '#o': 'owner', '#s': 'state' },
      ExpressionAttributeValues: { ':me': owner, ':zero': 0, ':pending': 'pending' },
    });
  }

  async markClientIdQueued(userId: string, clientId: string, owner: string): Promise<boolean> {
    // Conditional on the owner: an update alone would create a row (with no msgId and no TTL)
    // once the claim had expired and been deleted, and poison the id.
    return this.conditionalUpdate({
      Key: dedupKey(userId, clientId),
      UpdateExpression: 'SET #s = :queued',
      ConditionExpression: '#o = :me',
      ExpressionAttributeNames: { '#o': 'owner', '#s': 'state' },
      ExpressionAttributeValues: { ':me': owner, ':queued': 'queued' },
    });
  }

  private async conditionalUpdate(input: Omit<UpdateCommandInput, 'TableName'>): Promise<boolean> {
    try {
      await this.client.send(new UpdateCommand({ TableName: this.tableName, ...input }));
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  async getMessageState(msgId: string): Promise<StoredMessageState | undefined> {
    // One query for the row and its chunk records (a message never stored: one read unit).
    const items = await queryAll<Record<string, unknown>>(this.client, {
      TableName: this.tableName,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': messageKey(msgId).pk },
      ConsistentRead: true,
    });
    const row = items.find((item) => item.sk === 'msg');
    if (!row) return undefined;
    const chunksDone: Record<number, string> = {};
    for (const item of items) {
      const sk = item.sk as string;
      if (sk.startsWith(CHUNK_PREFIX)) chunksDone[Number(sk.slice(CHUNK_PREFIX.length))] = item.position as string;
    }
    return { msgId, state: row.state === 'stored' ? 'stored' : 'storing', ...attemptOf(row), chunksDone };
  }

  async beginStore(msgId: string, audience: readonly string[], position: string, expiresAt: number): Promise<StoreAttempt> {
    // ADD to a string set: the positions of every attempt stay known until the last succeeds.
    const { Attributes } = await this.client.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: messageKey(msgId),
        UpdateExpression: 'SET #s = :storing, expiresAt = :e, audience = if_not_exists(audience, :a) ADD positions :p',
        ExpressionAttributeNames: { '#s': 'state' },
        ExpressionAttributeValues: { ':storing': 'storing', ':e': expiresAt, ':a': [...audience], ':p': new Set([position]) },
        ReturnValues: 'ALL_NEW',
      }),
    );
    return attemptOf(Attributes ?? {});
  }

  async putInboxRows(userIds: readonly string[], position: string, frame: MessageFrame, expiresAt: number, notAfterMs: number): Promise<void> {
    const json = JSON.stringify(frame);
    await batchWriteAll(
      this.client,
      this.tableName,
      userIds.map((userId) => ({ PutRequest: { Item: { ...inboxKey(userId, position), msgId: frame.msgId, frame: json, expiresAt } } })),
      () => {
        if (Date.now() > notAfterMs) throw new WriteDeadlineError(`inbox rows of ${frame.msgId} at ${position}`);
      },
    );
  }

  async deleteInboxRows(userIds: readonly string[], position: string): Promise<void> {
    await batchWriteAll(
      this.client,
      this.tableName,
      userIds.map((userId) => ({ DeleteRequest: { Key: inboxKey(userId, position) } })),
    );
  }

  async markChunkStored(msgId: string, index: number, position: string, expiresAt: number): Promise<boolean> {
    // Its own small row: an update of the message row would be billed for the whole audience it holds.
    try {
      await this.client.send(
        new PutCommand({ TableName: this.tableName, Item: { ...chunkKey(msgId, index), position, expiresAt }, ConditionExpression: 'attribute_not_exists(pk)' }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  async markStored(msgId: string): Promise<void> {
    await this.client.send(
      new UpdateCommand({ TableName: this.tableName, Key: messageKey(msgId), UpdateExpression: 'SET #s = :s', ExpressionAttributeNames: { '#s': 'state' }, ExpressionAttributeValues: { ':s': 'stored' } }),
    );
  }

  async readInbox(userId: string, afterPosition: string | undefined, max: number, maxBytes: number, nowMs: number): Promise<{ rows: InboxRow[]; more: boolean }> {
    return readInboxWithin(
      async (after, limit) => {
        const page = await this.client.send(
          new QueryCommand({
            TableName: this.tableName,
            KeyConditionExpression: 'pk = :pk',
            ExpressionAttributeValues: { ':pk': `inbox#${userId}` },
            ExclusiveStartKey: after === undefined ? undefined : inboxKey(userId, after),
            Limit: limit,
            // Eventually consistent (half the read units): a row a lagging replica does not show
            // yet sorts after the reply's resume floor (RESUME_OVERLAP_MS in domain/inbox-position.ts).
            ConsistentRead: false,
          }),
        );
        const rows = (page.Items ?? []).map((item) => ({ position: item.sk as string, frameJson: item.frame as string, expiresAt: item.expiresAt as number }));
        return { rows, next: page.LastEvaluatedKey?.sk as string | undefined };
      },
      afterPosition,
      max,
      maxBytes,
      nowMs,
    );
  }
}

/** ReturnValuesOnConditionCheckFailure hands back raw attribute values ({S:..}, {N:..}); a claim has only S and N. */
function plainOf(item: Record<string, unknown>): Record<string, unknown> {
  const attr = item as Record<string, { S?: string; N?: string }>;
  return Object.fromEntries(Object.entries(attr).map(([name, value]) => [name, value?.S ?? (value?.N !== undefined ? Number(value.N) : undefined)]));
}

function claimOf(item: Record<string, unknown>): ClientIdClaim | undefined {
  if (typeof item.msgId !== 'string' || typeof item.ts !== 'number' || typeof item.owner !== 'string') return undefined;
  return {
    msgId: item.msgId,
    ts: item.ts,
    state: item.state === 'queued' ? 'queued' : 'pending',
    owner: item.owner,
    leaseUntil: typeof item.leaseUntil === 'number' ? item.leaseUntil : 0,
  };
}

function attemptOf(item: Record<string, unknown>): StoreAttempt {
  return {
    positions: [...((item.positions as Set<string> | undefined) ?? [])].sort(),
    audience: (item.audience as string[] | undefined) ?? [],
  };
}
