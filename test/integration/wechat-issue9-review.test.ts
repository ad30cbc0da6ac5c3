/**
 * A hostile review of issue 9 against DynamoDB Local: what a client or backend may put in an
 * outbound message must be storable as it was accepted, or the persister (which stores the reply
 * after the sender was acked) fails on it forever.
 */
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoOutboundStore } from '../../lambdas/adapters/dynamo-outbound-store';
import { adminOutboundOf, serviceMessageOf, type OutboundRecord } from '../../lambdas/domain/wechat-outbound';
import { parseJsonFrame, assertBodySize } from '../../lambdas/domain/frames';
import { startDynamoEngine, type DynamoEngine } from '../../local/dynamodb-engine';

let engine: DynamoEngine;
let ddb: DynamoDBDocumentClient;

beforeAll(async () => {
  engine = await startDynamoEngine({ logger: () => undefined });
  ddb = DynamoDBDocumentClient.from(engine.client, { marshallOptions: { removeUndefinedValues: true } });
}, 60_000);

afterAll(async () => {
  await engine?.stop();
});

const NOW = Date.UTC(2026, 0, 1, 12);
const TTL = Math.floor(Date.now() / 1000) + 7 * 86_400;
let unique = 0;

const recordOf = (message: Record<string, unknown>): OutboundRecord => ({
  id: `review-${++unique}`,
  accountId: 'acct',
  openId: 'oUser1',
  kind: 'service',
  message,
  requester: 'agent-1',
  state: 'queued',
  attempt: 1,
  untilMs: 0,
  createdAt: NOW,
  updatedAt: NOW,
});

/** Nested `depth` objects deep inside the text object. */
const deep = (depth: number): unknown => (depth === 0 ? 'x' : { d: deep(depth - 1) });

describe('a reply body the WebSocket route accepts is one the outbound store can keep', () => {
  // Each is a frame the send route takes (JSON, under 64 levels and 32 KiB) and serviceMessageOf passes.
  it.each<[string, string]>([
    ['a number beyond DynamoDB range (1e200)', '{"msgtype":"text","text":{"content":"x","n":1e200}}'],
    ['a number below DynamoDB range (1e-200)', '{"msgtype":"text","text":{"content":"x","n":1e-200}}'],
    ['40 levels of nesting (DynamoDB stops at 32)', JSON.stringify({ msgtype: 'text', text: { content: 'x', deep: deep(40) } })],
    ['an empty member name', '{"msgtype":"text","text":{"content":"x","":1}}'],
  ])('%s: stored and read back as WeChat will be sent it', async (_name, json) => {
    const frame = parseJsonFrame(`{"action":"send","to":{"wechat":{"accountId":"acct","openId":"oUser1"}},"body":${json}}`);
    assertBodySize(frame.body);
    const message = serviceMessageOf(frame.body);
    expect(adminOutboundOf({ openId: 'oUser1', ...message }).message).toEqual(message);

    const store = new DynamoOutboundStore(ddb, engine.tableNames.wechat);
    const record = recordOf(message);
    await store.create(record, TTL);
    const stored = await store.get(record.id);
    expect(stored?.message).toEqual(JSON.parse(JSON.stringify(message)));
  });

  it('an ordinary message still reads back with its fields as they were', async () => {
    const store = new DynamoOutboundStore(ddb, engine.tableNames.wechat);
    const message = { msgtype: 'news', news: { articles: [{ title: '你好 😀', url: 'https://e.com', n: 1.5, b: true, z: null }] } };
    const record = recordOf(message);
    await store.create(record, TTL);
    expect((await store.get(record.id))?.message).toEqual(message);
    // Claim and settle return and keep it too.
    const claimed = await store.claim(record.id, 1, NOW, NOW + 60_000);
    expect(claimed?.message).toEqual(message);
  });

  it('a record written before (the message as a map) still reads back', async () => {
    const store = new DynamoOutboundStore(ddb, engine.tableNames.wechat);
    const record = recordOf({ msgtype: 'text', text: { content: 'old' } });
    await ddb.send(new PutCommand({ TableName: engine.tableNames.wechat, Item: { pk: `out#${record.id}`, sk: 'out', ...record, expiresAt: TTL } }));
    expect((await store.get(record.id))?.message).toEqual({ msgtype: 'text', text: { content: 'old' } });
  });
});
