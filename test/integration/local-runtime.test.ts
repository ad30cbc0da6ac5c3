/**
 * The local runtime (local/**) driven as a user drives it: real sockets, real SDK clients,
 * DynamoDB Local and the SQS emulator. The WebSocket functions and the queue consumer are
 * replaced by fixtures (`functionOverrides`), so this file tests the API Gateway / SQS / Lambda
 * emulation itself; the real handlers have their own integration tests.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ApiGatewayManagementApiClient, DeleteConnectionCommand, GetConnectionCommand, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { DescribeTableCommand, DescribeTimeToLiveCommand, DynamoDBClient, PutItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { SQSRecord } from 'aws-lambda';
import WebSocket from 'ws';
import { queues, tables, websocket, type TableDeclaration } from '../../lib/gateway-declaration';
import { startLocalGateway, type LocalGateway } from '../../local/local-gateway';

const WS_FIXTURE = 'test/integration/fixtures/ws-fixture-handler.ts';
const wsFunctions = [websocket.authorizer.function, ...websocket.routes.map((r) => r.function)];
const fixtureState = globalThis as unknown as {
  __wsFixture?: { events: Array<{ routeKey: string; event: any }>; selfPostStatus?: number };
  __consumerFixture?: { records: SQSRecord[]; invocations: number };
};
const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
const region = 'us-east-1';

let gateway: LocalGateway;
let ddb: DynamoDBClient;
let sqs: SQSClient;
const logLines: string[] = [];
const sockets: WebSocket[] = [];

beforeAll(async () => {
  gateway = await startLocalGateway({
    httpPort: 0,
    wsPort: 0,
    queueVisibilityTimeoutSeconds: 1,
    pollWaitMs: 100,
    sweepIntervalMs: 3_600_000,
    handlerEnv: { FIXTURE_FLAG: 'on' },
    logger: (line) => logLines.push(line),
    functionOverrides: {
      ...Object.fromEntries(wsFunctions.map((id) => [id, WS_FIXTURE])),
      [queues.uplink.consumer.function]: 'test/integration/fixtures/flaky-consumer.ts',
    },
  });
  ddb = new DynamoDBClient({ endpoint: gateway.dynamoEndpoint, region, credentials });
  sqs = new SQSClient({ endpoint: gateway.sqsEndpoint, region, credentials });
}, 60_000);

afterAll(async () => {
  for (const socket of sockets) socket.terminate();
  ddb?.destroy();
  sqs?.destroy();
  await gateway?.stop();
}, 30_000);

/** Opens a socket; resolves with it once open, or with the HTTP status the upgrade was refused with. */
function connect(query: string): Promise<{ socket?: WebSocket; status?: number; frames: string[] }> {
  const frames: string[] = [];
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${gateway.wsUrl}/${query}`);
    sockets.push(socket);
    socket.on('message', (data) => frames.push(data.toString()));
    socket.once('open', () => resolve({ socket, frames }));
    socket.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode, frames });
      res.resume();
      socket.terminate();
    });
    socket.once('error', (err) => reject(err));
  });
}

async function waitFor<T>(probe: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('waitFor: timed out');
    await new Promise((r) => setTimeout(r, 25));
  }
}

function closed(socket: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

const events = (routeKey: string) => (fixtureState.__wsFixture?.events ?? []).filter((e) => e.routeKey === routeKey);

describe('resources from the declaration', () => {
  it('creates every table with its keys, indexes and TTL attribute', async () => {
    for (const [id, table] of Object.entries(tables) as [string, TableDeclaration][]) {
      const { Table } = await ddb.send(new DescribeTableCommand({ TableName: gateway.tableNames[id as keyof typeof tables] }));
      const keys = (table.sortKey ? [table.partitionKey, table.sortKey] : [table.partitionKey]).map((k) => k.name);
      expect(Table?.KeySchema?.map((k) => k.AttributeName)).toEqual(keys);
      expect((Table?.GlobalSecondaryIndexes ?? []).map((i) => [i.IndexName, i.KeySchema?.map((k) => k.AttributeName)])).toEqual(
        table.indexes.map((i) => [i.indexName, [i.partitionKey.name, ...(i.sortKey ? [i.sortKey.name] : [])]]),
      );
      const ttl = await ddb.send(new DescribeTimeToLiveCommand({ TableName: Table?.TableName }));
      expect(ttl.TimeToLiveDescription?.AttributeName).toBe(table.ttlAttribute);
    }
  });

  it('creates every queue with its dead-letter queue and redrive policy', async () => {
    for (const [id, queue] of Object.entries(queues)) {
      const url = gateway.queueUrls[id as keyof typeof queues];
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//);
      const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['All'] }));
      const dlq = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: gateway.deadLetterQueueUrls[id as keyof typeof queues], AttributeNames: ['QueueArn'] }));
      expect(Attributes?.FifoQueue === 'true').toBe(queue.fifo);
      expect(Attributes?.VisibilityTimeout).toBe('1'); // the test's override
      expect(JSON.parse(Attributes?.RedrivePolicy ?? '{}')).toEqual({ deadLetterTargetArn: dlq.Attributes?.QueueArn, maxReceiveCount: queue.maxReceiveCount });
    }
  });
});

describe('WebSocket API emulation', () => {
  it('refuses an upgrade without a token with 401, without calling the authorizer', async () => {
    const before = events('authorizer').length;
    expect((await connect('')).status).toBe(401);
    expect((await connect('?token=')).status).toBe(401);
    expect(events('authorizer').length).toBe(before);
  });

  it('maps the authorizer outcome to the upgrade status', async () => {
    expect((await connect('?token=bad')).status).toBe(401);
    expect((await connect('?token=deny')).status).toBe(403);
    expect((await connect('?token=boom')).status).toBe(500);
    expect((await connect('?token=refuse')).status).toBe(403);
    const auth = events('authorizer').at(-1)!.event;
    expect(auth).toMatchObject({ type: 'REQUEST', methodArn: expect.stringMatching(/\/live\/\$connect$/), queryStringParameters: { token: 'refuse' } });
    expect(auth.requestContext).toMatchObject({ routeKey: '$connect', eventType: 'CONNECT', stage: 'live', apiId: 'local' });
  });

  it('connects, routes frames on action, answers each two-way route, and passes the authorizer context', async () => {
    const { socket, frames } = await connect('?token=good&x=1');
    const connectEvent = events('$connect').at(-1)!.event;
    expect(connectEvent.requestContext.authorizer).toMatchObject({ userId: 'u1', deviceId: 'd1', principalId: 'u1' });
    expect(connectEvent.requestContext.connectionId).toMatch(/^[A-Za-z0-9+/]{15}=$/);
    // Frames of one connection run concurrently (as in API Gateway): replies come in any order.
    socket!.send(JSON.stringify({ action: 'send', id: 'slow', delayMs: 300 }));
    socket!.send(JSON.stringify({ action: 'ping', id: 'fast' }));
    socket!.send('not json');
    socket!.send(JSON.stringify({ action: '$connect', id: 'sneaky' }));
    socket!.send(JSON.stringify({ action: 'send', id: 'silent' }));
    socket!.send(JSON.stringify({ action: 'send', id: 'throw' }));
    await waitFor(() => frames.length >= 5);
    const parsed = frames.map((f) => JSON.parse(f));
    expect(parsed).toHaveLength(5); // none for `silent`
    const slow = parsed.find((f) => f.id === 'slow');
    expect(slow).toMatchObject({ type: 'send', id: 'slow', eventType: 'MESSAGE', authorizer: { userId: 'u1', principalId: 'u1' } });
    expect(parsed.find((f) => f.id === 'fast')).toMatchObject({ type: 'ping', id: 'fast' });
    expect(parsed.filter((f) => f.routeKey === '$default' && f.id === undefined)).toEqual([expect.objectContaining({ type: 'error' })]);
    expect(parsed.find((f) => f.id === 'sneaky')).toMatchObject({ type: 'error', id: 'sneaky', routeKey: '$default' });
    expect(parsed.filter((f) => f.message === 'Internal server error')).toEqual([
      { message: 'Internal server error', connectionId: slow.connectionId, requestId: expect.any(String) },
    ]);
    socket!.close(1000, 'bye');
    await waitFor(() => events('$disconnect').find((e) => e.event.requestContext.connectionId === slow.connectionId));
    const disconnect = events('$disconnect').at(-1)!.event;
    expect(disconnect.requestContext).toMatchObject({ eventType: 'DISCONNECT', disconnectStatusCode: 1000, disconnectReason: 'bye', authorizer: { userId: 'u1' } });
  });

  it('closes the socket with 1009 for a frame over 128 KiB', async () => {
    const { socket } = await connect('?token=good');
    const done = closed(socket!);
    socket!.send('x'.repeat(128 * 1024 + 1));
    expect((await done).code).toBe(1009);
  });

  it('gives handlers the local endpoints through the environment only', async () => {
    const { socket, frames } = await connect('?token=good');
    socket!.send(JSON.stringify({ action: 'ping', id: 'probe-env' }));
    const frame = JSON.parse(await waitFor(() => frames[0]));
    expect(frame.tables).toEqual(expect.arrayContaining(Object.values(gateway.tableNames)));
    expect(frame.sentMessageId).toEqual(expect.any(String));
    expect(frame.flag).toBe('on');
    socket!.close();
  });
});

describe('Management API emulation', () => {
  const client = () => new ApiGatewayManagementApiClient({ endpoint: gateway.managementEndpoint, region, credentials, maxAttempts: 1 });

  it('answers GoneException (410) for an unknown connection, with and without the stage in the path', async () => {
    for (const endpoint of [gateway.managementEndpoint, `${gateway.managementEndpoint}/live`]) {
      const api = new ApiGatewayManagementApiClient({ endpoint, region, credentials, maxAttempts: 1 });
      const err = await api.send(new PostToConnectionCommand({ ConnectionId: 'AAAAAAAAAAAAAAAA=', Data: 'hi' })).catch((e: any) => e);
      expect(err.name).toBe('GoneException');
      expect(err.$metadata.httpStatusCode).toBe(410);
      api.destroy();
    }
  });

  it('answers 404 for other paths on the WebSocket port, and a connection does not exist during $connect', async () => {
    expect((await fetch(`${gateway.managementEndpoint}/nothing-here`)).status).toBe(404);
    const { socket } = await connect('?token=selfpost');
    expect(fixtureState.__wsFixture?.selfPostStatus).toBe(410);
    socket!.close();
  });

  it('posts, describes and deletes a live connection', async () => {
    const { socket, frames } = await connect('?token=good');
    socket!.send(JSON.stringify({ action: 'ping', id: 'who' }));
    const { connectionId } = JSON.parse(await waitFor(() => frames[0]));
    const api = client();
    await api.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: '{"type":"message","body":"hi"}' }));
    expect(await waitFor(() => frames[1])).toBe('{"type":"message","body":"hi"}');

    const info = await api.send(new GetConnectionCommand({ ConnectionId: connectionId }));
    expect(info.Identity?.SourceIp).toBe('127.0.0.1');
    expect(info.ConnectedAt).toBeInstanceOf(Date);

    const tooLarge = await api.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: 'x'.repeat(128 * 1024 + 1) })).catch((e: any) => e);
    expect(tooLarge.$metadata.httpStatusCode).toBe(413);
    expect(tooLarge.name).toBe('PayloadTooLargeException');

    const done = closed(socket!);
    await api.send(new DeleteConnectionCommand({ ConnectionId: connectionId }));
    await done;
    await waitFor(() => events('$disconnect').find((e) => e.event.requestContext.connectionId === connectionId));
    const gone = await api.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: 'late' })).catch((e: any) => e);
    expect(gone.name).toBe('GoneException');
    api.destroy();
  });
});

describe('HTTP API emulation', () => {
  it('answers 404 JSON for a route that is not declared', async () => {
    const res = await fetch(`${gateway.httpUrl}/v1/nowhere?x=1`, { method: 'POST', body: '{}' });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: 'not_found', message: 'no route for POST /v1/nowhere' } });
  });
});

describe('queue poller (event source mapping)', () => {
  const seen = (tag: string) => (fixtureState.__consumerFixture?.records ?? []).filter((r) => JSON.parse(r.body).tag === tag);
  const send = (tag: string, fail?: string) =>
    sqs.send(
      new SendMessageCommand({
        QueueUrl: gateway.queueUrls.uplink,
        MessageBody: JSON.stringify({ tag, fail }),
        MessageGroupId: tag,
        MessageDeduplicationId: `${tag}-${Date.now()}`,
        MessageAttributes: { kind: { DataType: 'String', StringValue: 'test' } },
      }),
    );

  it('deletes succeeded records, retries reported failures, and redrives to the DLQ after maxReceiveCount', async () => {
    await send('ok');
    await send('once', 'once');
    await send('always', 'always');
    await gateway.drainQueues(30_000);

    expect(seen('ok')).toHaveLength(1);
    expect(seen('once').map((r) => r.attributes.ApproximateReceiveCount)).toEqual(['1', '2']);
    expect(seen('always')).toHaveLength(queues.uplink.maxReceiveCount);

    const record = seen('ok')[0]!;
    expect(record).toMatchObject({
      eventSource: 'aws:sqs',
      eventSourceARN: expect.stringMatching(/^arn:aws:sqs:us-east-1:000000000000:.+\.fifo$/),
      awsRegion: 'us-east-1',
      md5OfBody: expect.any(String),
      attributes: { MessageGroupId: 'ok', ApproximateReceiveCount: '1', SentTimestamp: expect.any(String) },
      messageAttributes: { kind: { stringValue: 'test', dataType: 'String', stringListValues: [], binaryListValues: [] } },
    });

    const dlq = await sqs.send(new ReceiveMessageCommand({ QueueUrl: gateway.deadLetterQueueUrls.uplink, MaxNumberOfMessages: 10 }));
    expect((dlq.Messages ?? []).map((m) => JSON.parse(m.Body!).tag)).toEqual(['always']);
  }, 45_000);

  it('retries the whole batch when the consumer throws', async () => {
    await send('thrower', 'throw-once');
    await gateway.drainQueues(20_000);
    expect(seen('thrower').map((r) => r.attributes.ApproximateReceiveCount)).toEqual(['1', '2']);
  }, 30_000);
});

describe('TTL sweeper', () => {
  it('deletes expired items across scan pages and keeps the rest', async () => {
    const table = gateway.tableNames.messages;
    const now = Math.floor(Date.now() / 1000);
    const padding = 'p'.repeat(300 * 1024); // 6 x 300 KiB > one 1 MB scan page
    for (let i = 0; i < 6; i++) {
      await ddb.send(new PutItemCommand({ TableName: table, Item: { pk: { S: `sweep#${i}` }, sk: { S: 'x' }, expiresAt: { N: String(now - 10) }, padding: { S: padding } } }));
    }
    await ddb.send(new PutItemCommand({ TableName: table, Item: { pk: { S: 'sweep#live' }, sk: { S: 'x' }, expiresAt: { N: String(now + 3600) } } }));
    await ddb.send(new PutItemCommand({ TableName: table, Item: { pk: { S: 'sweep#no-ttl' }, sk: { S: 'x' } } }));

    expect(await gateway.sweepExpired()).toBe(6);
    const left = await ddb.send(new ScanCommand({ TableName: table, ProjectionExpression: 'pk' }));
    expect((left.Items ?? []).map((i) => i.pk!.S).sort()).toEqual(['sweep#live', 'sweep#no-ttl']);
  }, 30_000);
});
