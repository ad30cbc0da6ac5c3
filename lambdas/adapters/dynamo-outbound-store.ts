import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { OutboundRecord, OutboundStore } from '../domain/wechat-outbound';

/**
 * Outbound WeChat messages in the wechat table (lib/gateway-declaration.ts `tables.wechat`):
 *   out#{id} / out    the record and its delivery state (TTL: 7 days); the message as JSON text
 * Every transition is one conditional write on (state, attempt), so two workers holding copies
 * of one queue message cannot both send, and a late worker cannot overwrite a settled state.
 */
const key = (id: string) => ({ pk: `out#${id}`, sk: 'out' });
const isConditionFailure = (err: unknown) => err instanceof ConditionalCheckFailedException;

function recordOf(item: Record<string, unknown>): OutboundRecord {
  const { pk: _pk, sk: _sk, expiresAt: _ttl, message, ...record } = item;
  // JSON text since the review of issue 9; a record written before holds a map.
  return { ...record, message: typeof message === 'string' ? (JSON.parse(message) as Record<string, unknown>) : message } as unknown as OutboundRecord;
}

/**
 * The message is kept as JSON text, as inbox rows keep frames: it is whatever JSON a client or
 * backend sent, and DynamoDB refuses much of that as a map (numbers beyond 1e125 or below 1e-130,
 * integers past 2^53 in the SDK, more than 32 levels of nesting, an empty member name), which
 * would fail the persister on an acked reply forever.
 */
const itemOf = (record: OutboundRecord) => ({ ...record, message: JSON.stringify(record.message) });

export class DynamoOutboundStore implements OutboundStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async create(record: OutboundRecord, expiresAt: number): Promise<OutboundRecord> {
    try {
      await this.client.send(
        new PutCommand({ TableName: this.tableName, Item: { ...key(record.id), ...itemOf(record), expiresAt }, ConditionExpression: 'attribute_not_exists(pk)' }),
      );
      return record;
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      const stored = await this.get(record.id);
      if (!stored) throw new Error(`outbound record ${record.id} exists and vanished (TTL) while being read; retry`);
      return stored;
    }
  }

  async get(id: string): Promise<OutboundRecord | undefined> {
    const out = await this.client.send(new GetCommand({ TableName: this.tableName, Key: key(id), ConsistentRead: true }));
    return out.Item ? recordOf(out.Item) : undefined;
  }

  async claim(id: string, attempt: number, nowMs: number, leaseUntilMs: number): Promise<OutboundRecord | undefined> {
    try {
      const out = await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: key(id),
          UpdateExpression: 'SET #state = :sending, untilMs = :lease, updatedAt = :now',
          ConditionExpression: 'attempt = :attempt AND (#state IN (:queued, :retrying) OR (#state = :sending AND untilMs < :now))',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: { ':sending': 'sending', ':queued': 'queued', ':retrying': 'retrying', ':lease': leaseUntilMs, ':now': nowMs, ':attempt': attempt },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return recordOf(out.Attributes!);
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }

  async settle(
    id: string,
    attempt: number,
    update: Pick<OutboundRecord, 'state' | 'untilMs'> & Partial<Pick<OutboundRecord, 'errcode' | 'errmsg' | 'sentAt'>>,
    nowMs: number,
  ): Promise<boolean> {
    const sets = ['#state = :state', 'untilMs = :until', 'updatedAt = :now'];
    const values: Record<string, unknown> = { ':state': update.state, ':until': update.untilMs, ':now': nowMs, ':attempt': attempt, ':sending': 'sending' };
    if (update.state === 'retrying') {
      sets.push('attempt = :next');
      values[':next'] = attempt + 1;
    }
    // The record's error is the settled attempt's: a field this attempt has none of is removed, so
    // a sent message shows no error left over from an earlier attempt and a network failure after
    // a WeChat error code does not show that code with the network failure's message.
    const removes: string[] = [];
    for (const field of ['errcode', 'errmsg', 'sentAt'] as const) {
      if (update[field] === undefined) {
        if (field !== 'sentAt') removes.push(field);
        continue;
      }
      sets.push(`${field} = :${field}`);
      values[`:${field}`] = update[field];
    }
    try {
      await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: key(id),
          UpdateExpression: `SET ${sets.join(', ')}${removes.length > 0 ? ` REMOVE ${removes.join(', ')}` : ''}`,
          ConditionExpression: '#state = :sending AND attempt = :attempt',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: values,
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }
}
