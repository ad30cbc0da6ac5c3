import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoMessageStore } from '../../../lambdas/adapters/dynamo-message-store';
import type { MessageFrame } from '../../../lambdas/domain/frames';
import { WriteDeadlineError } from '../../../lambdas/domain/messaging-ports';

const ddb = mockClient(DynamoDBDocumentClient);
const TABLE = 'messages-table';
const NOW = Date.UTC(2026, 0, 1, 12);
const NOW_S = NOW / 1000;
const MSG_ID = '01JD0000000000000000000001';

const store = () => new DynamoMessageStore(DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' })), TABLE);
const frame = (msgId: string, body: unknown = { big: 1e308 }): MessageFrame => ({ type: 'message', msgId, from: 'u1', to: { user: 'u2' }, body, ts: NOW });
const inboxItem = (position: string, expiresAt: number) => ({ pk: 'inbox#u2', sk: position, msgId: position, frame: JSON.stringify(frame(position)), expiresAt });

beforeEach(() => ddb.reset());

const CLAIM = { msgId: MSG_ID, ts: NOW, state: 'pending' as const, owner: 'a1', leaseUntil: NOW + 35_000 };

describe('DynamoMessageStore.claimClientId', () => {
  it('returns undefined when the conditional put wins', async () => {
    ddb.on(PutCommand).resolves({});
    await expect(store().claimClientId('u1', 'c-1', CLAIM, NOW_S + 300, NOW)).resolves.toBeUndefined();
    expect(ddb.commandCalls(PutCommand)[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Item: { pk: 'dedup#u1#c-1', sk: 'dedup', ...CLAIM, expiresAt: NOW_S + 300 },
      ConditionExpression: 'attribute_not_exists(pk) OR expiresAt <= :now',
      ExpressionAttributeValues: { ':now': NOW_S },
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    });
  });

  it('returns the earlier claim from the raw Item of ConditionalCheckFailedException', async () => {
    ddb.on(PutCommand).rejects(
      new ConditionalCheckFailedException({
        message: 'The conditional request failed',
        $metadata: {},
        Item: {
          pk: { S: 'dedup#u1#c-1' },
          sk: { S: 'dedup' },
          msgId: { S: 'OLD' },
          ts: { N: String(NOW - 5000) },
          state: { S: 'queued' },
          owner: { S: 'a0' },
          leaseUntil: { N: String(NOW + 1) },
          expiresAt: { N: '1' },
        },
      }),
    );
    await expect(store().claimClientId('u1', 'c-1', CLAIM, NOW_S + 300, NOW)).resolves.toEqual({
      msgId: 'OLD',
      ts: NOW - 5000,
      state: 'queued',
      owner: 'a0',
      leaseUntil: NOW + 1,
    });
    expect(ddb.commandCalls(GetCommand)).toHaveLength(0);
  });

  it('reads the claim back when the exception carries no Item', async () => {
    ddb.on(PutCommand).rejects(new ConditionalCheckFailedException({ message: 'failed', $metadata: {} }));
    ddb.on(GetCommand).resolves({ Item: { msgId: 'OLD', ts: NOW - 1, state: 'pending', owner: 'a0', leaseUntil: NOW + 9, expiresAt: NOW_S + 10 } });
    await expect(store().claimClientId('u1', 'c-1', CLAIM, NOW_S + 300, NOW)).resolves.toEqual({ msgId: 'OLD', ts: NOW - 1, state: 'pending', owner: 'a0', leaseUntil: NOW + 9 });
    expect(ddb.commandCalls(GetCommand)[0]!.args[0].input).toMatchObject({ Key: { pk: 'dedup#u1#c-1', sk: 'dedup' }, ConsistentRead: true });
  });

  it('rethrows other errors', async () => {
    ddb.on(PutCommand).rejects(new Error('ProvisionedThroughputExceeded'));
    await expect(store().claimClientId('u1', 'c-1', CLAIM, NOW_S + 300, NOW)).rejects.toThrow('ProvisionedThroughputExceeded');
  });
});

describe('DynamoMessageStore claim updates are conditional', () => {
  it('markClientIdQueued conditions on the owner (so it can never create a row) and answers false when it fails', async () => {
    ddb.on(UpdateCommand).rejects(new ConditionalCheckFailedException({ message: 'failed', $metadata: {} }));
    await expect(store().markClientIdQueued('u1', 'c-1', 'a1')).resolves.toBe(false);
    const input = ddb.commandCalls(UpdateCommand)[0]!.args[0].input;
    expect(input.ConditionExpression).toBe('#o = :me');
    expect(input.ExpressionAttributeValues).toMatchObject({ ':me': 'a1' });
  });

  it('takeOverClientId conditions on the old owner and the pending state', async () => {
    ddb.on(UpdateCommand).resolves({});
    await expect(store().takeOverClientId('u1', 'c-1', 'a0', 'a1', NOW + 5)).resolves.toBe(true);
    const input = ddb.commandCalls(UpdateCommand)[0]!.args[0].input;
    expect(input.ConditionExpression).toBe('#o = :from AND #s = :pending');
    expect(input.ExpressionAttributeValues).toMatchObject({ ':from': 'a0', ':to': 'a1', ':l': NOW + 5 });
  });

  it('rethrows errors other than a failed condition', async () => {
    ddb.on(UpdateCommand).rejects(new Error('throttled'));
    await expect(store().releaseClientId('u1', 'c-1', 'a1')).rejects.toThrow('throttled');
  });
});

describe('DynamoMessageStore.readInbox', () => {
  const BUDGET = 120 * 1024;
  const rowBytes = Buffer.byteLength(JSON.stringify(frame('P1')));

  it('skips expired rows, stops at max and reports more, with an eventually consistent Query', async () => {
    ddb.on(QueryCommand).resolves({ Items: [inboxItem('P1', NOW_S), inboxItem('P2', NOW_S + 1), inboxItem('P3', NOW_S + 1), inboxItem('P4', NOW_S + 1)] });
    const { rows, more } = await store().readInbox('u2', undefined, 2, BUDGET, NOW);
    expect(rows).toEqual([
      { position: 'P2', frame: frame('P2') },
      { position: 'P3', frame: frame('P3') },
    ]);
    expect(more).toBe(true);
    expect(ddb.commandCalls(QueryCommand)).toHaveLength(1);
    expect(ddb.commandCalls(QueryCommand)[0]!.args[0].input).toMatchObject({
      TableName: TABLE,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': 'inbox#u2' },
      ExclusiveStartKey: undefined,
      Limit: 3,
      ConsistentRead: false,
    });
  });

  it('follows pages from the after position until max + 1 rows or the end, and reports no more at the end', async () => {
    ddb
      .on(QueryCommand)
      .resolvesOnce({ Items: [inboxItem('P1', NOW_S - 10), inboxItem('P2', NOW_S + 10)], LastEvaluatedKey: { pk: 'inbox#u2', sk: 'P2' } })
      .resolvesOnce({ Items: [inboxItem('P3', NOW_S + 10)] });

    const { rows, more } = await store().readInbox('u2', 'P0', 5, BUDGET, NOW);

    expect(rows.map((r) => r.position)).toEqual(['P2', 'P3']);
    expect(more).toBe(false);
    const inputs = ddb.commandCalls(QueryCommand).map((c) => c.args[0].input);
    expect(inputs.map((i) => [i.ExclusiveStartKey, i.Limit])).toEqual([
      [{ pk: 'inbox#u2', sk: 'P0' }, 4],
      [{ pk: 'inbox#u2', sk: 'P2' }, 5],
    ]);
  });

  it('reads first as many rows as cross the budget at the largest bodies, then pages sized from the average row', async () => {
    const item = (position: string) => ({ ...inboxItem(position, NOW_S + 10), frame: JSON.stringify(frame(position, 'x'.repeat(8000))) });
    const size = Buffer.byteLength(item('P1').frame);
    ddb
      .on(QueryCommand)
      .resolvesOnce({ Items: ['P1', 'P2', 'P3', 'P4'].map(item), LastEvaluatedKey: { pk: 'inbox#u2', sk: 'P4' } })
      .resolvesOnce({ Items: [item('P5')] });

    await store().readInbox('u2', undefined, 500, BUDGET, NOW);

    // 120 KiB holds three 32 KiB bodies, so four rows; then what fills the rest at the average size, plus one.
    expect(ddb.commandCalls(QueryCommand).map((c) => c.args[0].input.Limit)).toEqual([4, Math.floor((BUDGET - 4 * size) / size) + 1]);
  });

  it('stops at the first row that does not fit the budget, which proves more, without another Query', async () => {
    ddb.on(QueryCommand).resolves({ Items: ['P1', 'P2', 'P3', 'P4'].map((p) => inboxItem(p, NOW_S + 10)), LastEvaluatedKey: { pk: 'inbox#u2', sk: 'P4' } });
    const { rows, more } = await store().readInbox('u2', undefined, 500, 2 * rowBytes + 1, NOW);
    expect(rows.map((r) => r.position)).toEqual(['P1', 'P2']);
    expect(more).toBe(true);
    expect(ddb.commandCalls(QueryCommand)).toHaveLength(1);
  });

  it('round-trips a body DynamoDB numbers could not hold (frames are stored as JSON text)', async () => {
    ddb.on(QueryCommand).resolves({ Items: [inboxItem('P1', NOW_S + 10)] });
    const { rows } = await store().readInbox('u2', undefined, 10, BUDGET, NOW);
    expect((rows[0]!.frame.body as { big: number }).big).toBe(1e308);
  });
});

describe('DynamoMessageStore.putInboxRows', () => {
  it('writes 60 rows in 3 BatchWrite calls of at most 25', async () => {
    ddb.on(BatchWriteCommand).resolves({});
    const users = Array.from({ length: 60 }, (_, i) => `u${i}`);
    await store().putInboxRows(users, 'POS', frame(MSG_ID), NOW_S + 100, Date.now() + 60_000);

    const batches = ddb.commandCalls(BatchWriteCommand).map((c) => c.args[0].input.RequestItems![TABLE]!);
    expect(batches.map((b) => b.length)).toEqual([25, 25, 10]);
    const items = batches.flat().map((r) => r.PutRequest!.Item!);
    expect(items.map((i) => i.pk)).toEqual(users.map((u) => `inbox#${u}`));
    expect(items[0]).toEqual({ pk: 'inbox#u0', sk: 'POS', msgId: MSG_ID, frame: JSON.stringify(frame(MSG_ID)), expiresAt: NOW_S + 100 });
  });

  it('re-sends UnprocessedItems until they are written', async () => {
    const users = ['a', 'b', 'c'];
    const leftOver = { PutRequest: { Item: { pk: 'inbox#b', sk: 'POS', msgId: MSG_ID, frame: JSON.stringify(frame(MSG_ID)), expiresAt: NOW_S + 100 } } };
    ddb
      .on(BatchWriteCommand)
      .resolvesOnce({ UnprocessedItems: { [TABLE]: [leftOver] } })
      .resolvesOnce({});

    await store().putInboxRows(users, 'POS', frame(MSG_ID), NOW_S + 100, Date.now() + 60_000);

    const batches = ddb.commandCalls(BatchWriteCommand).map((c) => c.args[0].input.RequestItems![TABLE]!);
    expect(batches.map((b) => b.length)).toEqual([3, 1]);
    expect(batches[1]).toEqual([leftOver]);
  });

  it('sends nothing once the deadline has passed (WriteDeadlineError)', async () => {
    ddb.on(BatchWriteCommand).resolves({});
    await expect(store().putInboxRows(['a'], 'POS', frame(MSG_ID), NOW_S + 100, Date.now() - 1)).rejects.toThrow(WriteDeadlineError);
    expect(ddb.commandCalls(BatchWriteCommand)).toHaveLength(0);
  });
});

describe('DynamoMessageStore storing state', () => {
  it('beginStore adds the position to the row’s position set rather than replacing earlier ones, and writes no frame', async () => {
    ddb.on(UpdateCommand).resolves({ Attributes: { state: 'storing', positions: new Set(['P1', 'P2']), audience: ['u2', 'u1'] } });
    await expect(store().beginStore(MSG_ID, ['u2', 'u1'], 'P2', NOW_S + 100)).resolves.toEqual({ positions: ['P1', 'P2'], audience: ['u2', 'u1'] });
    const input = ddb.commandCalls(UpdateCommand)[0]!.args[0].input;
    expect(input.Key).toEqual({ pk: `msg#${MSG_ID}`, sk: 'msg' });
    expect(input.UpdateExpression).toMatch(/ADD positions :p/);
    expect(input.ExpressionAttributeValues?.[':p']).toEqual(new Set(['P2']));
    expect(input.ExpressionAttributeValues?.[':storing']).toBe('storing');
    // The audience is frozen by the first attempt.
    expect(input.UpdateExpression).toMatch(/audience = if_not_exists\(audience, :a\)/);
    expect(Object.keys(input.ExpressionAttributeValues ?? {}).sort()).toEqual([':a', ':e', ':p', ':storing']);
  });

  it('markChunkStored puts a small row of its own, conditionally, instead of rewriting the message row', async () => {
    ddb.on(PutCommand).resolvesOnce({}).rejectsOnce(new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }));
    await expect(store().markChunkStored(MSG_ID, 3, 'P1', NOW_S + 100)).resolves.toBe(true);
    await expect(store().markChunkStored(MSG_ID, 3, 'P2', NOW_S + 100)).resolves.toBe(false);
    expect(ddb.commandCalls(PutCommand)[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Item: { pk: `msg#${MSG_ID}`, sk: 'chunk#3', position: 'P1', expiresAt: NOW_S + 100 },
      ConditionExpression: 'attribute_not_exists(pk)',
    });
    expect(ddb.commandCalls(UpdateCommand)).toHaveLength(0);
  });

  it('markStored sets the state and nothing else', async () => {
    ddb.on(UpdateCommand).resolves({});
    await store().markStored(MSG_ID);
    const input = ddb.commandCalls(UpdateCommand)[0]!.args[0].input;
    expect([input.Key, input.UpdateExpression, input.ExpressionAttributeValues]).toEqual([{ pk: `msg#${MSG_ID}`, sk: 'msg' }, 'SET #s = :s', { ':s': 'stored' }]);
  });

  it('getMessageState reads the row and its chunk rows in one consistent query: every position, oldest first, and the chunks done', async () => {
    ddb.on(QueryCommand).resolves({
      Items: [
        { pk: `msg#${MSG_ID}`, sk: 'chunk#0', position: 'P1' },
        { pk: `msg#${MSG_ID}`, sk: 'chunk#12', position: 'P3' },
        { pk: `msg#${MSG_ID}`, sk: 'msg', state: 'storing', positions: new Set(['P3', 'P1', 'P2']), audience: ['u1'] },
      ],
    });
    await expect(store().getMessageState(MSG_ID)).resolves.toEqual({ msgId: MSG_ID, positions: ['P1', 'P2', 'P3'], state: 'storing', audience: ['u1'], chunksDone: { 0: 'P1', 12: 'P3' } });
    const input = ddb.commandCalls(QueryCommand)[0]!.args[0].input;
    expect([input.KeyConditionExpression, input.ExpressionAttributeValues, input.ConsistentRead]).toEqual(['pk = :pk', { ':pk': `msg#${MSG_ID}` }, true]);
  });

  it('getMessageState is undefined for a message never stored', async () => {
    ddb.on(QueryCommand).resolves({ Items: [] });
    await expect(store().getMessageState(MSG_ID)).resolves.toBeUndefined();
  });
});
