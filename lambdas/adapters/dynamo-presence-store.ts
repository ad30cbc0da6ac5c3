import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, GetCommand, TransactWriteCommand, type DynamoDBDocumentClient, type TransactWriteCommandInput } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBRecord } from 'aws-lambda';
import { epochSeconds } from '../domain/clock';
import type { ApplyOutcome, ConnectionChange, PresencePlan, PresenceState, PresenceStats, PresenceStore, UserMove } from '../domain/presence';

/**
 * Presence counters in the admin table (lib/gateway-declaration.ts `tables.admin`):
 *   presence                    / total    `online`, `users`: what GET /v1/stats reads
 *   presence#user#{userId}      / count    `n`: that user's connections; no row = 0
 *   presence#applied#{changeId} / applied  a stream record already counted; TTL 2 days
 * Markers get a partition each (not one shared partition): every connect and disconnect writes
 * one, and a single partition takes at most 1,000 writes a second.
 * The stream keeps a record 24 hours, so a marker that lives 2 days outlives every redelivery of
 * its record (TTL deletes late, never early).
 */
export const PRESENCE_TOTAL_KEY = { pk: 'presence', sk: 'total' } as const;
export const presenceUserKey = (userId: string) => ({ pk: `presence#user#${userId}`, sk: 'count' });
export const presenceMarkerKey = (changeId: string) => ({ pk: `presence#applied#${changeId}`, sk: 'applied' });
export const PRESENCE_MARKER_TTL_SECONDS = 2 * 86_400;

type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

/** Reasons for which a cancelled transaction is worth re-reading and planning again. */
const CONFLICT_REASONS = new Set(['ConditionalCheckFailed', 'TransactionConflict']);

export class DynamoPresenceStore implements PresenceStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly now: () => number = Date.now,
  ) {}

  async readState(changeIds: readonly string[], userIds: readonly string[]): Promise<PresenceState> {
    const keys = [...new Set(changeIds)].map(presenceMarkerKey).concat([...new Set(userIds)].map(presenceUserKey));
    const applied = new Set<string>();
    const counts = new Map<string, number>();
    const markerPrefix = presenceMarkerKey('').pk;
    const userPrefix = presenceUserKey('').pk;
    for (const item of await this.batchGet(keys)) {
      const pk = item.pk as string;
      if (pk.startsWith(markerPrefix)) applied.add(pk.slice(markerPrefix.length));
      else if (pk.startsWith(userPrefix)) counts.set(pk.slice(userPrefix.length), Number(item.n ?? 0));
    }
    return { applied, counts };
  }

  /** BatchGetItem (consistent) in requests of 100 keys, re-asking for unprocessed keys with backoff. */
  private async batchGet(keys: Array<Record<string, string>>): Promise<Array<Record<string, unknown>>> {
    const items: Array<Record<string, unknown>> = [];
    for (let i = 0; i < keys.length; i += 100) {
      let pending: Array<Record<string, unknown>> = keys.slice(i, i + 100);
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt >= 8) throw new Error(`BatchGetItem left ${pending.length} keys unprocessed after ${attempt} attempts`);
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, Math.random() * 50 * 2 ** attempt));
        const result = await this.client.send(
          new BatchGetCommand({
            RequestItems: {
              [this.tableName]: { Keys: pending, ConsistentRead: true, ProjectionExpression: '#pk, #n', ExpressionAttributeNames: { '#pk': 'pk', '#n': 'n' } },
            },
          }),
        );
        items.push(...((result.Responses?.[this.tableName] ?? []) as Array<Record<string, unknown>>));
        pending = (result.UnprocessedKeys?.[this.tableName]?.Keys ?? []) as Array<Record<string, unknown>>;
      }
    }
    return items;
  }

  async applyBatch(plan: PresencePlan): Promise<ApplyOutcome> {
    const expiresAt = epochSeconds(this.now()) + PRESENCE_MARKER_TTL_SECONDS;
    const items: TransactItem[] = plan.changeIds.map((changeId) => ({
      Put: {
        TableName: this.tableName,
        Item: { ...presenceMarkerKey(changeId), expiresAt },
        ConditionExpression: 'attribute_not_exists(pk)',
      },
    }));
    for (const move of plan.users) items.push(this.userItem(move));
    if (plan.onlineDelta !== 0 || plan.usersDelta !== 0) {
      items.push({
        Update: {
          TableName: this.tableName,
          Key: { ...PRESENCE_TOTAL_KEY },
          UpdateExpression: 'ADD #online :online, #users :users',
          ExpressionAttributeNames: { '#online': 'online', '#users': 'users' },
          ExpressionAttributeValues: { ':online': plan.onlineDelta, ':users': plan.usersDelta },
        },
      });
    }
    if (items.length === 0) return 'applied';
    try {
      await this.client.send(new TransactWriteCommand({ TransactItems: items }));
      return 'applied';
    } catch (err) {
      if (err instanceof TransactionCanceledException || (err as Error).name === 'TransactionCanceledException') {
        const codes = ((err as TransactionCanceledException).CancellationReasons ?? []).map((r) => r.Code ?? 'None').filter((code) => code !== 'None');
        if (codes.length > 0 && codes.every((code) => CONFLICT_REASONS.has(code))) return 'conflict';
      }
      throw err;
    }
  }

  /** The write (or check) of one user's count, conditional on the count it was planned from. */
  private userItem(move: UserMove): TransactItem {
    // A missing row is a count of 0, so "still 0" accepts both a missing row and n = 0.
    const condition = move.from === 0 ? 'attribute_not_exists(#n) OR #n = :from' : '#n = :from';
    const base = { TableName: this.tableName, Key: presenceUserKey(move.userId), ConditionExpression: condition, ExpressionAttributeNames: { '#n': 'n' } };
    if (move.to === move.from) return { ConditionCheck: { ...base, ExpressionAttributeValues: { ':from': move.from } } };
    // Back to 0: the row goes, so users who left leave nothing behind.
    if (move.to === 0) return { Delete: { ...base, ExpressionAttributeValues: { ':from': move.from } } };
    return { Update: { ...base, UpdateExpression: 'ADD #n :delta', ExpressionAttributeValues: { ':from': move.from, ':delta': move.to - move.from } } };
  }

  async readStats(): Promise<PresenceStats> {
    const { Item } = await this.client.send(new GetCommand({ TableName: this.tableName, Key: { ...PRESENCE_TOTAL_KEY }, ConsistentRead: true }));
    return { online: Number(Item?.online ?? 0), users: Number(Item?.users ?? 0) };
  }
}

/**
 * A connections-table stream record as a presence change: the userId of the old and the new
 * image (NEW_AND_OLD_IMAGES; an insert has no old image, a removal, TTL's included, no new one).
 */
export function connectionChangeOf(record: DynamoDBRecord): ConnectionChange {
  if (!record.eventID) throw new Error('stream record without an eventID');
  // A stream without images (KEYS_ONLY) would silently count nothing: refuse it loudly.
  if ((record.eventName === 'INSERT' && !record.dynamodb?.NewImage) || (record.eventName === 'REMOVE' && !record.dynamodb?.OldImage)) {
    throw new Error(`stream record ${record.eventID} (${record.eventName}) carries no image: the stream must be NEW_AND_OLD_IMAGES`);
  }
  const userIdOf = (image: NonNullable<DynamoDBRecord['dynamodb']>['NewImage']) => image?.userId?.S;
  return {
    id: record.eventID,
    oldUserId: userIdOf(record.dynamodb?.OldImage),
    newUserId: userIdOf(record.dynamodb?.NewImage),
  };
}
