import { DynamoDBClient, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, DynamoDBDocumentClient, GetCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBRecord } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { connectionChangeOf, DynamoPresenceStore, PRESENCE_MARKER_TTL_SECONDS } from '../../../lambdas/adapters/dynamo-presence-store';
import type { PresencePlan } from '../../../lambdas/domain/presence';

const ddb = mockClient(DynamoDBDocumentClient);
const TABLE = 'admin-table';
const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const NOW_S = NOW / 1000;

const store = () => new DynamoPresenceStore(DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' })), TABLE, () => NOW);
const cancelled = (...codes: string[]) =>
  new TransactionCanceledException({ message: 'Transaction cancelled', $metadata: {}, CancellationReasons: codes.map((Code) => ({ Code })) });

beforeEach(() => ddb.reset());

const plan = (overrides: Partial<PresencePlan> = {}): PresencePlan => ({
  changeIds: ['ev1', 'ev2', 'ev3'],
  users: [
    { userId: 'new', from: 0, to: 2 },
    { userId: 'leaving', from: 1, to: 0 },
    { userId: 'flapping', from: 3, to: 3 },
  ],
  onlineDelta: 1,
  usersDelta: 0,
  clamped: [],
  ...overrides,
});

describe('DynamoPresenceStore.applyBatch', () => {
  it('writes markers, conditional user moves and the totals in one transaction', async () => {
    ddb.on(TransactWriteCommand).resolves({});
    await expect(store().applyBatch(plan())).resolves.toBe('applied');
    const items = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems!;
    expect(items.slice(0, 3)).toEqual(
      ['ev1', 'ev2', 'ev3'].map((id) => ({
        Put: {
          TableName: TABLE,
          Item: { pk: `presence#applied#${id}`, sk: 'applied', expiresAt: NOW_S + PRESENCE_MARKER_TTL_SECONDS },
          ConditionExpression: 'attribute_not_exists(pk)',
        },
      })),
    );
    expect(items[3]).toEqual({
      Update: {
        TableName: TABLE,
        Key: { pk: 'presence#user#new', sk: 'count' },
        ConditionExpression: 'attribute_not_exists(#n) OR #n = :from',
        ExpressionAttributeNames: { '#n': 'n' },
        UpdateExpression: 'ADD #n :delta',
        ExpressionAttributeValues: { ':from': 0, ':delta': 2 },
      },
    });
    expect(items[4]).toEqual({
      Delete: {
        TableName: TABLE,
        Key: { pk: 'presence#user#leaving', sk: 'count' },
        ConditionExpression: '#n = :from',
        ExpressionAttributeNames: { '#n': 'n' },
        ExpressionAttributeValues: { ':from': 1 },
      },
    });
    expect(items[5]).toEqual({
      ConditionCheck: {
        TableName: TABLE,
        Key: { pk: 'presence#user#flapping', sk: 'count' },
        ConditionExpression: '#n = :from',
        ExpressionAttributeNames: { '#n': 'n' },
        ExpressionAttributeValues: { ':from': 3 },
      },
    });
    expect(items[6]).toEqual({
      Update: {
        TableName: TABLE,
        Key: { pk: 'presence', sk: 'total' },
        UpdateExpression: 'ADD #online :online, #users :users',
        ExpressionAttributeNames: { '#online': 'online', '#users': 'users' },
        ExpressionAttributeValues: { ':online': 1, ':users': 0 },
      },
    });
    expect(items).toHaveLength(7);
  });

  it('leaves the totals out when they do not move', async () => {
    ddb.on(TransactWriteCommand).resolves({});
    await store().applyBatch(plan({ users: [{ userId: 'flapping', from: 1, to: 1 }], onlineDelta: 0, usersDelta: 0 }));
    expect(ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems).toHaveLength(4);
  });

  it('reports a failed condition or a conflicting transaction as a conflict', async () => {
    ddb.on(TransactWriteCommand).rejectsOnce(cancelled('None', 'ConditionalCheckFailed', 'None')).rejectsOnce(cancelled('TransactionConflict', 'None'));
    await expect(store().applyBatch(plan())).resolves.toBe('conflict');
    await expect(store().applyBatch(plan())).resolves.toBe('conflict');
  });

  it('throws anything else (throttling, validation), so the batch is retried by the stream', async () => {
    ddb.on(TransactWriteCommand).rejectsOnce(cancelled('ThrottlingError', 'None')).rejectsOnce(new Error('network down'));
    await expect(store().applyBatch(plan())).rejects.toThrow('Transaction cancelled');
    await expect(store().applyBatch(plan())).rejects.toThrow('network down');
  });
});

describe('DynamoPresenceStore reads', () => {
  it('readState reads markers and counts consistently and re-asks for unprocessed keys', async () => {
    ddb
      .on(BatchGetCommand)
      .resolvesOnce({
        Responses: { [TABLE]: [{ pk: 'presence#applied#ev1' }, { pk: 'presence#user#alice', n: 2 }] },
        UnprocessedKeys: { [TABLE]: { Keys: [{ pk: 'presence#user#bob', sk: 'count' }] } },
      })
      .resolvesOnce({ Responses: { [TABLE]: [{ pk: 'presence#user#bob', n: 1 }] } });
    const state = await store().readState(['ev1', 'ev2'], ['alice', 'bob', 'carol']);
    expect(state.applied).toEqual(new Set(['ev1']));
    expect(state.counts).toEqual(new Map([['alice', 2], ['bob', 1]]));
    const first = ddb.commandCalls(BatchGetCommand)[0]!.args[0].input.RequestItems![TABLE]!;
    expect(first.ConsistentRead).toBe(true);
    expect(first.Keys).toEqual([
      { pk: 'presence#applied#ev1', sk: 'applied' },
      { pk: 'presence#applied#ev2', sk: 'applied' },
      { pk: 'presence#user#alice', sk: 'count' },
      { pk: 'presence#user#bob', sk: 'count' },
      { pk: 'presence#user#carol', sk: 'count' },
    ]);
    expect(ddb.commandCalls(BatchGetCommand)[1]!.args[0].input.RequestItems![TABLE]!.Keys).toEqual([{ pk: 'presence#user#bob', sk: 'count' }]);
  });

  it('readStats reads the totals consistently, 0/0 when there are none', async () => {
    ddb.on(GetCommand).resolvesOnce({ Item: { pk: 'presence', sk: 'total', online: 5, users: 2 } }).resolvesOnce({});
    await expect(store().readStats()).resolves.toEqual({ online: 5, users: 2 });
    await expect(store().readStats()).resolves.toEqual({ online: 0, users: 0 });
    expect(ddb.commandCalls(GetCommand)[0]!.args[0].input).toEqual({ TableName: TABLE, Key: { pk: 'presence', sk: 'total' }, ConsistentRead: true });
  });
});

describe('connectionChangeOf (stream record -> change)', () => {
  const record = (eventName: DynamoDBRecord['eventName'], oldUser?: string, newUser?: string): DynamoDBRecord => ({
    eventID: `id-${eventName}`,
    eventName,
    eventSource: 'aws:dynamodb',
    dynamodb: {
      Keys: { connectionId: { S: 'c1' } },
      ...(oldUser ? { OldImage: { connectionId: { S: 'c1' }, userId: { S: oldUser } } } : {}),
      ...(newUser ? { NewImage: { connectionId: { S: 'c1' }, userId: { S: newUser } } } : {}),
      SequenceNumber: '100',
      StreamViewType: 'NEW_AND_OLD_IMAGES',
    },
  });

  it('reads the userId of the old and the new image', () => {
    expect(connectionChangeOf(record('INSERT', undefined, 'alice'))).toEqual({ id: 'id-INSERT', oldUserId: undefined, newUserId: 'alice' });
    expect(connectionChangeOf(record('REMOVE', 'alice'))).toEqual({ id: 'id-REMOVE', oldUserId: 'alice', newUserId: undefined });
    expect(connectionChangeOf(record('MODIFY', 'alice', 'alice'))).toEqual({ id: 'id-MODIFY', oldUserId: 'alice', newUserId: 'alice' });
  });

  it('refuses records without images (a KEYS_ONLY stream would silently count nothing) or without an eventID', () => {
    expect(() => connectionChangeOf(record('INSERT'))).toThrow('NEW_AND_OLD_IMAGES');
    expect(() => connectionChangeOf(record('REMOVE'))).toThrow('NEW_AND_OLD_IMAGES');
    expect(() => connectionChangeOf({ ...record('INSERT', undefined, 'a'), eventID: undefined })).toThrow('eventID');
  });
});
