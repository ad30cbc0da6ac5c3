/**
 * The cost units of every operation (docs/cost.md), measured on the local runtime by its cost
 * meter (local/cost-meter.ts) with real WebSocket clients and signed HTTP requests, pinned in one
 * table: a change that costs more fails here, and one that costs less is a one-line change of
 * its row. `npm run cost` measures the same operations (bench/cost-operations.ts) and prints them.
 *
 * Also pins the meter itself: what DynamoDB Local reports and what the meter adds by DynamoDB's
 * rules, so the numbers above stay AWS's numbers.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BatchGetItemCommand, DynamoDBClient, PutItemCommand, TransactWriteItemsCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { parseWechatAccounts } from '../../lambdas/domain/wechat-accounts';
import { repoRoot } from '../../local/lambda-invoker';
import { registerAccounts, startFakeWechatApi, type FakeWechatApi } from '../../local/fake-wechat-api';
import { startLocalGateway, type LocalGateway } from '../../local/local-gateway';
import { measureOperations, type OperationUnits } from '../../bench/cost-operations';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../local/local-names';

/**
 * Units per operation. `read`/`write`: DynamoDB read and write request units (tables and
 * indexes, with what the meter computes where DynamoDB Local reports nothing); `fifo`/`standard`:
 * billable SQS requests (64 KiB chunks; the event source mapping's receives and deletes
 * included, idle polling not); `invocations`: per function; `in`/`out`: API Gateway WebSocket
 * messages (32 KiB increments) from clients and to clients; `http`: HTTP API requests;
 * `posts`: @connections POSTs.
 *
 * The broadcast rows are for 4 non-empty parallel-scan segments; see BROADCAST_SEGMENT below.
 */
const EXPECTED: Record<string, Expected> = {
  connect: /*            */ { read: 2.5, write: 8, fifo: 0, standard: 0, invocations: { wsAuthorizer: 1, wsConnect: 1, presenceCounter: 1 }, in: 0, out: 0, http: 0, posts: 0 },
  ping: /*               */ { read: 0, write: 0, fifo: 0, standard: 0, invocations: { wsPing: 1 }, in: 1, out: 1, http: 0, posts: 0 },
  disconnect: /*         */ { read: 2, write: 8, fifo: 0, standard: 0, invocations: { wsDisconnect: 1, presenceCounter: 1 }, in: 0, out: 0, http: 0, posts: 0 },
  'send.user': /*        */ { read: 3, write: 8, fifo: 3, standard: 0, invocations: { wsSend: 1, uplinkPersister: 1 }, in: 1, out: 3, http: 0, posts: 3 },
  'send.group10': /*     */ { read: 11.5, write: 16, fifo: 3, standard: 0, invocations: { wsSend: 1, uplinkPersister: 1 }, in: 1, out: 10, http: 0, posts: 10 },
  'send.group100': /*    */ { read: 102, write: 111, fifo: 3, standard: 0, invocations: { wsSend: 1, uplinkPersister: 1 }, in: 1, out: 100, http: 0, posts: 100 },
  'push.user': /*        */ { read: 2, write: 5, fifo: 3, standard: 0, invocations: { adminApi: 1, uplinkPersister: 1 }, in: 0, out: 2, http: 1, posts: 2 },
  'sync.20': /*          */ { read: 1.5, write: 0, fifo: 0, standard: 0, invocations: { wsSync: 1 }, in: 1, out: 1, http: 0, posts: 0 },
  'sync.500x32k': /*     */ { read: 16.5, write: 0, fifo: 0, standard: 0, invocations: { wsSync: 1 }, in: 1, out: 4, http: 0, posts: 0 },
  'wechat.callback': /*  */ { read: 2.5, write: 5, fifo: 3, standard: 0, invocations: { wechatCallback: 1, wechatInbound: 1 }, in: 0, out: 1, http: 1, posts: 1 },
  'wechat.reply': /*     */ { read: 6, write: 11, fifo: 3, standard: 3, invocations: { wsSend: 1, uplinkPersister: 1, wechatOutbound: 1 }, in: 1, out: 2, http: 0, posts: 2 },
  'broadcast.10': /*     */ { read: 18, write: 66, fifo: 0, standard: 21, invocations: { adminApi: 1, fanoutWorker: 8 }, in: 0, out: 10, http: 1, posts: 10 },
  'broadcast.100': /*    */ { read: 18, write: 66, fifo: 0, standard: 21, invocations: { adminApi: 1, fanoutWorker: 8 }, in: 0, out: 100, http: 1, posts: 100 },
};

/**
 * Broadcast bounds, the two places where a run legitimately varies:
 * - A broadcast scans the connections table in 4 parallel segments, and which segment holds a
 *   connection depends on the hash of its (random) connection id. A segment with no rows queues
 *   no post task: one fan-out invocation, its completion transaction and the conditional writes
 *   around it, and its queue message fewer. With 10 connections some segment is empty in about
 *   a fifth of the runs (4 x (3/4)^10); with 100, practically never. So a broadcast row is
 *   checked as "its figures minus `emptySegments` x these", emptySegments = 0..3, read off the
 *   fan-out invocations.
 * - A scan page costs half a read unit per 4 KB of the rows it reads; a segment that happens to
 *   hold more than ~4 KB of rows (about 35 of these connection rows) reads one more half unit. So
 *   broadcast reads may be up to 1 unit above the row (two such segments).
 */
const BROADCAST_SEGMENT = { read: 2, write: 10, standard: 3, fanoutWorker: 1 };
const BROADCAST_SCAN_READ_SLACK = 1;

interface Expected {
  read: number;
  write: number;
  fifo: number;
  standard: number;
  invocations: Record<string, number>;
  in: number;
  out: number;
  http: number;
  posts: number;
}

const WECHAT_ACCOUNTS_FILE = join(repoRoot, 'examples', 'wechat', 'accounts.json');
const JWT_SECRET_FOR_TESTS = 'cost-units-jwt-secret';
/** Key ids are in every admin frame (`from: "admin/{keyId}"`): a fixed length keeps item sizes fixed. */
const ADMIN_KEY_FOR_TESTS = { keyId: 'bench', secret: 'cost-units-admin-secret' };
const WECHAT_ACCOUNT_ID = 'wxlocaldemo0000001';

let gateway: LocalGateway;
let fake: FakeWechatApi;
let measured: Map<string, OperationUnits>;

beforeAll(async () => {
  fake = await startFakeWechatApi({ recipients: 'open' });
  registerAccounts(fake, parseWechatAccounts(readFileSync(WECHAT_ACCOUNTS_FILE, 'utf8'), WECHAT_ACCOUNTS_FILE));
  gateway = await startLocalGateway({
    httpPort: 0,
    wsPort: 0,
    jwtSecret: JWT_SECRET_FOR_TESTS,
    adminKeys: `${ADMIN_KEY_FOR_TESTS.keyId}:${ADMIN_KEY_FOR_TESTS.secret}`,
    costMeter: true,
    sweepIntervalMs: 24 * 3600_000,
    logger: () => undefined,
    handlerEnv: { WXGATE_WECHAT_ACCOUNTS: WECHAT_ACCOUNTS_FILE, WXGATE_WECHAT_API_BASE: fake.url, WXGATE_WECOM_API_BASE: fake.url },
  });
  const operations = await measureOperations({
    gateway,
    jwtSecret: JWT_SECRET_FOR_TESTS,
    adminKey: ADMIN_KEY_FOR_TESTS,
    wechat: { accountsFile: WECHAT_ACCOUNTS_FILE, accountId: WECHAT_ACCOUNT_ID },
    wechatReply: true,
    groupSizes: [10, 100],
    broadcastSizes: [10, 100],
    bigInboxMessages: 500,
    // Two runs of each: measureOperations fails if their units differ (the table assumes they cannot).
    repeats: 2,
  });
  measured = new Map(operations.map((o) => [o.operation, o]));
}, 600_000);

afterAll(async () => {
  await gateway?.stop();
  await fake?.close();
});

function actual(o: OperationUnits): Expected {
  return {
    read: o.dynamo.readUnits,
    write: o.dynamo.writeUnits,
    fifo: o.sqs.fifoRequests,
    standard: o.sqs.standardRequests,
    invocations: o.lambda.byFunction,
    in: o.apiGateway.messagesIn,
    out: o.apiGateway.messagesOut,
    http: o.apiGateway.httpRequests,
    posts: o.apiGateway.posts,
  };
}

describe('cost units per operation', () => {
  it('measures every operation of the table, and only those', () => {
    expect([...measured.keys()].sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const [operation, expected] of Object.entries(EXPECTED)) {
    it(`${operation}: ${expected.read} read and ${expected.write} write units, ${expected.fifo + expected.standard} SQS requests, ${Object.values(expected.invocations).reduce((a, b) => a + b, 0)} invocations, ${expected.in}+${expected.out} WebSocket messages`, () => {
      const units = measured.get(operation);
      expect(units).toBeDefined();
      const got = actual(units!);
      if (!operation.startsWith('broadcast.')) {
        expect({ operation, ...got }).toEqual({ operation, ...expected });
        return;
      }
      const emptySegments = expected.invocations.fanoutWorker! - (got.invocations.fanoutWorker ?? 0);
      expect(emptySegments).toBeGreaterThanOrEqual(0);
      expect(emptySegments).toBeLessThanOrEqual(3);
      const scaled = (n: number, perSegment: number) => n - emptySegments * perSegment;
      expect(got.read).toBeGreaterThanOrEqual(scaled(expected.read, BROADCAST_SEGMENT.read));
      expect(got.read).toBeLessThanOrEqual(scaled(expected.read, BROADCAST_SEGMENT.read) + BROADCAST_SCAN_READ_SLACK);
      expect({ operation, ...got, read: 'bounded above' }).toEqual({
        operation,
        ...expected,
        read: 'bounded above',
        write: scaled(expected.write, BROADCAST_SEGMENT.write),
        standard: scaled(expected.standard, BROADCAST_SEGMENT.standard),
        invocations: { ...expected.invocations, fanoutWorker: scaled(expected.invocations.fanoutWorker!, BROADCAST_SEGMENT.fanoutWorker) },
      });
    });
  }
});

describe('the meter, against what DynamoDB charges', () => {
  let ddb: DynamoDBClient;
  beforeAll(() => {
    ddb = new DynamoDBClient({ endpoint: gateway.costMeter!.endpoints.dynamodb, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS, maxAttempts: 1 });
  });
  afterAll(() => ddb.destroy());
  const table = () => gateway.tableNames.messages;
  const item = (pk: string, bytes = 0) => ({ pk: { S: pk }, sk: { S: 'probe' }, ...(bytes ? { v: { S: 'x'.repeat(bytes) } } : {}) });
  const measure = async (fn: () => Promise<unknown>) => (await gateway.costMeter!.measure(async () => void (await fn()))).usage.dynamodb.messages!;

  it('takes ConsumedCapacity from DynamoDB Local and hands the caller only what it asked for', async () => {
    let answer: { ConsumedCapacity?: unknown } = {};
    const usage = await measure(async () => (answer = await ddb.send(new PutItemCommand({ TableName: table(), Item: item('probe#1', 1500) }))));
    expect(answer.ConsumedCapacity).toBeUndefined();
    expect(usage).toMatchObject({ requests: 1, writeUnits: 2, readUnits: 0 });
    answer = await ddb.send(new PutItemCommand({ TableName: table(), Item: item('probe#1', 1500), ReturnConsumedCapacity: 'TOTAL' }));
    expect(answer.ConsumedCapacity).toEqual({ TableName: table(), CapacityUnits: 2 });
  });

  it('charges a failed conditional write the larger of the stored and the new item (Local reports nothing)', async () => {
    await ddb.send(new PutItemCommand({ TableName: table(), Item: item('probe#2', 2500) }));
    const usage = await measure(() =>
      ddb.send(new UpdateItemCommand({ TableName: table(), Key: { pk: { S: 'probe#2' }, sk: { S: 'probe' } }, UpdateExpression: 'SET w = :w', ConditionExpression: 'attribute_not_exists(pk)', ExpressionAttributeValues: { ':w': { S: 'y' } } })).catch((err: Error) => err.name),
    );
    expect(usage.writeUnits).toBe(3);
    expect(usage.computed).toMatchObject({ failedConditionalWrites: 1, writeUnits: 3 });
  });

  it('charges a transaction 2 write units per action and KB (Local answers 2 for three small items)', async () => {
    await ddb.send(new PutItemCommand({ TableName: table(), Item: item('probe#3', 1500) }));
    const usage = await measure(() =>
      ddb.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            { Put: { TableName: table(), Item: item('probe#4') } },
            { Update: { TableName: table(), Key: { pk: { S: 'probe#3' }, sk: { S: 'probe' } }, UpdateExpression: 'SET n = :n', ExpressionAttributeValues: { ':n': { N: '1' } } } },
            { ConditionCheck: { TableName: table(), Key: { pk: { S: 'probe#5' }, sk: { S: 'probe' } }, ConditionExpression: 'attribute_not_exists(pk)' } },
          ],
        }),
      ),
    );
    // 2 x (1 KB new item) + 2 x (2 KB item updated) + 2 x (1, the minimum, for the check).
    expect(usage.writeUnits).toBe(8);
  });

  it('charges BatchGetItem keys that find nothing as GetItem does (Local charges 0)', async () => {
    const usage = await measure(() =>
      ddb.send(new BatchGetItemCommand({ RequestItems: { [table()]: { Keys: [{ pk: { S: 'probe#1' }, sk: { S: 'probe' } }, { pk: { S: 'probe#none' }, sk: { S: 'probe' } }], ConsistentRead: true } } })),
    );
    expect(usage.readUnits).toBe(2);
    expect(usage.computed).toMatchObject({ missingBatchReads: 1, readUnits: 1 });
  });
});
