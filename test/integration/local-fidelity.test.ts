/**
 * Issue 6: local mode must be no kinder than API Gateway. Each test here drives the real local
 * runtime with real sockets and checks one way API Gateway behaves that tests could otherwise
 * never see locally: frames of one connection running concurrently, `$disconnect` for every
 * connection whose `$connect` succeeded, handshake checks before the authorizer, one rule for a
 * repeated `token`, binary frames refused with 1003, the 128 KiB message limit, and a
 * Management API that throttles and fails.
 *
 * `$connect`, `$disconnect` and `$default` run test/integration/fixtures/fidelity-handler.ts:
 * the real connect/disconnect handlers plus a record of every invocation, and a `$default` that
 * can hold frames or wait on a barrier. The authorizer and the other routes are the real ones.
 */
import { ApiGatewayManagementApiClient, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { connect as netConnect } from 'node:net';
import WebSocket from 'ws';
import { outcomeOfError } from '../../lambdas/adapters/management-api-sender';
import { websocket } from '../../lib/gateway-declaration';
import type { FidelityFixtureState } from './fixtures/fidelity-handler';
import { startTestGateway, type TestGateway } from '../support/test-gateway';
import { TestClient, eventually, rawHandshake, tokenFor } from '../support/ws-test-client';

const FIXTURE = 'test/integration/fixtures/fidelity-handler.ts';
const routeFunction = (routeKey: string) => websocket.routes.find((r) => r.routeKey === routeKey)!.function;

let t: TestGateway;
let wsUrl: string;
const clients: TestClient[] = [];
const fixture = () => (globalThis as unknown as { __fidelityFixture?: FidelityFixtureState }).__fidelityFixture!;
const connectsOf = (userId: string) => (fixture()?.connects ?? []).filter((c) => c.userId === userId);
const disconnectsOf = (connectionId: string) => (fixture()?.disconnects ?? []).filter((d) => d.connectionId === connectionId);

beforeAll(async () => {
  t = await startTestGateway({
    functionOverrides: { [routeFunction('$connect')]: FIXTURE, [routeFunction('$disconnect')]: FIXTURE, [routeFunction('$default')]: FIXTURE },
  });
  wsUrl = t.gateway.wsUrl;
}, 90_000);

afterAll(async () => {
  for (const client of clients) client.socket.terminate();
  await t?.stop();
}, 30_000);

async function connectAs(userId: string): Promise<{ client: TestClient; connectionId: string }> {
  const client = await TestClient.as(wsUrl, userId, 'd1');
  clients.push(client);
  const [connect] = await eventually(async () => connectsOf(userId), (c) => c.length === 1, 5_000, `$connect of ${userId}`);
  return { client, connectionId: connect!.connectionId };
}

/** Opens a socket with a raw query; resolves once open, or with the status the upgrade was refused with. */
function open(query: string): Promise<{ socket?: WebSocket; status?: number }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${wsUrl}/${query}`);
    socket.once('open', () => resolve({ socket }));
    socket.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode });
      res.resume();
      socket.terminate();
    });
    socket.once('error', reject);
  });
}

/** The close code of a client's socket, or a clear failure if it stays open. */
function closeCode(client: TestClient, timeoutMs = 5_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket still open after ${timeoutMs} ms; frames ${JSON.stringify(client.frames)}`)), timeoutMs);
    void client.whenClosed().then(({ code }) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/** Every recorded successful `$connect` of these users has exactly one `$disconnect`, and no row is left. */
async function expectEveryConnectDisconnectedOnce(userIds: string[], what: string): Promise<number> {
  const connected = () => (fixture()?.connects ?? []).filter((c) => userIds.includes(c.userId!) && c.statusCode === 200);
  await eventually(
    async () => connected().filter((c) => disconnectsOf(c.connectionId).length === 0).map((c) => c.connectionId),
    (missing) => missing.length === 0,
    15_000,
    `$disconnect for every connection of ${what}`,
  );
  // Nothing arrives late and nothing runs twice.
  await t.gateway.drainQueues();
  for (const c of connected()) expect([c.connectionId, disconnectsOf(c.connectionId).length]).toEqual([c.connectionId, 1]);
  for (const userId of userIds) expect([userId, await t.registry.listByUser(userId, Date.now())]).toEqual([userId, []]);
  return connected().length;
}

describe('frames of one connection run concurrently, as API Gateway invokes them', () => {
  test("a second frame's route starts while the first is still running", async () => {
    const { client } = await connectAs('conc-1');
    client.sendRaw(JSON.stringify({ barrier: 'b1', parties: 2, id: 'first' }));
    client.sendRaw(JSON.stringify({ barrier: 'b1', parties: 2, id: 'second' }));
    const first = await client.waitFor((f) => f.id === 'first');
    const second = await client.waitFor((f) => f.id === 'second');
    expect([first, second]).toEqual([
      { type: 'barrier', id: 'first', met: true },
      { type: 'barrier', id: 'second', met: true },
    ]);
  });

  test('$disconnect runs while a frame of the connection is still in flight', async () => {
    const { client, connectionId } = await connectAs('conc-2');
    client.sendRaw(JSON.stringify({ hold: 'h1', id: 'held' }));
    await eventually(async () => fixture().holds.get('h1')?.running, (running) => running === true, 5_000, 'the held frame to start');
    await client.close();
    await eventually(async () => disconnectsOf(connectionId).length, (n) => n === 1, 5_000, '$disconnect while the frame is held');
    expect(await t.connectionRow(connectionId)).toBeUndefined();
    expect(fixture().holds.get('h1')?.running).toBe(true);
    fixture().release('h1');
    await eventually(async () => fixture().holds.get('h1')?.running, (running) => running === false, 5_000, 'the held frame to finish');
  }, 30_000);
});

describe('every connection whose $connect succeeded gets exactly one $disconnect', () => {
  test('30 clients that leave within a few ms of the upgrade leave no connection row', async () => {
    const userIds = Array.from({ length: 30 }, (_, i) => `orphan-${i}`);
    const port = Number(new URL(wsUrl).port);
    const left = await Promise.all(
      userIds.map(async (userId, i) => {
        const token = await tokenFor(userId, 'd1');
        return new Promise<void>((resolve) => {
          if (i % 3 === 2) {
            // A raw client that sends a valid handshake and half-closes (FIN) a few ms later.
            const socket = netConnect({ host: '127.0.0.1', port }, () => {
              socket.write(
                `GET /?token=${token} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
                  `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${Buffer.alloc(16, i).toString('base64')}\r\n\r\n`,
              );
              setTimeout(() => socket.end(), i % 5);
            });
            socket.on('error', () => undefined);
            socket.on('close', () => resolve());
            socket.resume();
            setTimeout(() => socket.destroy(), 3_000);
            return;
          }
          const socket = new WebSocket(`${wsUrl}/?token=${token}`);
          socket.on('error', () => undefined);
          socket.on('close', () => resolve());
          if (i % 3 === 0) setTimeout(() => socket.terminate(), i % 6);
          else socket.once('upgrade', () => socket.terminate()); // right after the 101 arrives
        });
      }),
    );
    expect(left).toHaveLength(30);
    const connected = await expectEveryConnectDisconnectedOnce(userIds, 'clients that left early');
    // Most of them reached $connect (a client that leaves before its request is sent never does).
    expect(connected).toBeGreaterThanOrEqual(10);
  }, 60_000);

  test('a client that completes the handshake over a raw socket and drops gets its $disconnect', async () => {
    const token = await tokenFor('raw-ok', 'd1');
    const answer = await rawHandshake(wsUrl, {
      path: `/?token=${token}`,
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' },
    });
    expect(answer.status).toBe(101);
    await expectEveryConnectDisconnectedOnce(['raw-ok'], 'a raw client');
    expect(connectsOf('raw-ok')).toHaveLength(1);
  });
});

describe('the WebSocket handshake is checked before the authorizer runs', () => {
  const good = { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' };
  const cases: Array<[string, { method?: string; headers: Record<string, string> }]> = [
    ['an unsupported Sec-WebSocket-Version', { headers: { ...good, 'Sec-WebSocket-Version': '12' } }],
    ['no Sec-WebSocket-Version', { headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Key': good['Sec-WebSocket-Key'] } }],
    ['no Sec-WebSocket-Key', { headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13' } }],
    ['a Sec-WebSocket-Key that is not 16 bytes in base64', { headers: { ...good, 'Sec-WebSocket-Key': 'not-a-key' } }],
    ['an Upgrade other than websocket', { headers: { ...good, Upgrade: 'h2c' } }],
    ['a method other than GET', { method: 'POST', headers: { ...good, 'Content-Length': '0' } }],
    ['an unparsable Sec-WebSocket-Protocol', { headers: { ...good, 'Sec-WebSocket-Protocol': 'chat,,chat' } }],
  ];

  test.each(cases.map(([name, request], i) => [name, request, i] as const))('%s is refused with 400 and runs no $connect', async (_name, request, i) => {
    const userId = `badshake-${i}`;
    const answer = await rawHandshake(wsUrl, { ...request, path: `/?token=${await tokenFor(userId, 'd1')}` });
    expect(answer.status).toBe(400);
    if (request.headers['Sec-WebSocket-Version'] === '12') expect(answer.headers['sec-websocket-version']).toBe('13');
    await t.gateway.drainQueues();
    expect(connectsOf(userId)).toEqual([]);
    expect(await t.registry.listByUser(userId, Date.now())).toEqual([]);
  });
});

describe('a repeated token parameter: the last value, for the presence check and the authorizer alike', () => {
  test.each([
    ['tw-a1', 'tw-b1'],
    ['tw-b2', 'tw-a2'],
  ])('token=<%s>&token=<%s> connects as the second', async (first, second) => {
    const { socket } = await open(`?token=${await tokenFor(first, 'd1')}&token=${await tokenFor(second, 'd1')}`);
    expect(socket).toBeDefined();
    await eventually(async () => connectsOf(second), (c) => c.length === 1, 5_000, `$connect of ${second}`);
    expect(connectsOf(first)).toEqual([]);
    expect((await t.registry.listByUser(second, Date.now())).map((r) => r.userId)).toEqual([second]);
    socket!.close();
  });

  test('an empty first value does not hide a valid last one', async () => {
    const { socket } = await open(`?token=&token=${await tokenFor('tw-c', 'd1')}`);
    expect(socket).toBeDefined();
    await eventually(async () => connectsOf('tw-c'), (c) => c.length === 1, 5_000, '$connect of tw-c');
    socket!.close();
  });

  test('an empty last value is a missing token: 401 whatever came before', async () => {
    expect((await open(`?token=${await tokenFor('tw-d', 'd1')}&token=`)).status).toBe(401);
    expect((await open(`?token=${await tokenFor('tw-d', 'd1')}&token=garbage`)).status).toBe(401);
    await t.gateway.drainQueues();
    expect(connectsOf('tw-d')).toEqual([]);
  });
});

describe('binary frames', () => {
  test('a binary frame closes the connection with 1003 and reaches no route; $disconnect runs', async () => {
    const { client, connectionId } = await connectAs('bin-1');
    client.socket.send(Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x7b, 0x7d]), { binary: true });
    expect(await closeCode(client)).toBe(1003);
    await eventually(async () => disconnectsOf(connectionId).length, (n) => n === 1, 5_000, '$disconnect after the binary frame');
    expect(fixture().defaults.filter((d) => d.connectionId === connectionId)).toEqual([]);
    expect(client.frames).toEqual([]);
    expect(await t.connectionRow(connectionId)).toBeUndefined();
  });

  test('a text frame reaches $default as text, isBase64Encoded false', async () => {
    const { client, connectionId } = await connectAs('bin-2');
    const text = JSON.stringify({ id: 'txt', note: 'héllo ✓' });
    client.sendRaw(text);
    expect(await client.waitFor((f) => f.id === 'txt')).toEqual({ type: 'default', id: 'txt', bytes: Buffer.byteLength(text) });
    expect(fixture().defaults.filter((d) => d.connectionId === connectionId)).toEqual([{ connectionId, body: text, isBase64Encoded: false }]);
  });
});

describe('message size', () => {
  /** A JSON text frame of exactly `bytes` bytes that routes to `$default`. */
  const frameOf = (bytes: number, id: string) => {
    const shell = JSON.stringify({ id, pad: '' });
    return JSON.stringify({ id, pad: 'x'.repeat(bytes - Buffer.byteLength(shell)) });
  };

  test('a message of exactly 128 KiB reaches its route', async () => {
    const { client } = await connectAs('size-1');
    const text = frameOf(128 * 1024, 'fits');
    expect(Buffer.byteLength(text)).toBe(128 * 1024);
    client.sendRaw(text);
    expect(await client.waitFor((f) => f.id === 'fits')).toEqual({ type: 'default', id: 'fits', bytes: 128 * 1024 });
    expect(client.isOpen).toBe(true);
  });

  test('a message of 128 KiB + 1 byte closes the connection with 1009 and no error frame', async () => {
    const { client, connectionId } = await connectAs('size-2');
    client.sendRaw(frameOf(128 * 1024 + 1, 'too-big'));
    expect(await closeCode(client)).toBe(1009);
    expect(client.frames).toEqual([]);
    expect(fixture().defaults.filter((d) => d.connectionId === connectionId)).toEqual([]);
    await eventually(async () => disconnectsOf(connectionId).length, (n) => n === 1, 5_000, '$disconnect after 1009');
  });
});

describe('Management API fault switch', () => {
  test('throttled and failed posts answer like AWS and deliver nothing; turned off, posts succeed', async () => {
    const { client, connectionId } = await connectAs('faults-1');
    const api = new ApiGatewayManagementApiClient({
      endpoint: t.gateway.managementEndpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      maxAttempts: 1,
    });
    const post = (type: string) =>
      api.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: new TextEncoder().encode(JSON.stringify({ type })) })).then(
        () => 'ok',
        (err: unknown) => err as { name: string; $metadata: { httpStatusCode?: number } },
      );
    try {
      t.gateway.setManagementFaults({ throttleRatio: 1 });
      const throttled = await post('throttled');
      expect(throttled).toMatchObject({ name: 'LimitExceededException', $metadata: { httpStatusCode: 429 } });
      expect(outcomeOfError(throttled)).toBe('retryable');

      t.gateway.setManagementFaults({ errorRatio: 1 });
      const failed = await post('failed');
      expect(failed).toMatchObject({ name: 'InternalServerErrorException', $metadata: { httpStatusCode: 500 } });
      expect(outcomeOfError(failed)).toBe('retryable');

      // A share: each post draws once; below throttleRatio is throttled, the rest go through.
      const draws = [0.2, 0.7];
      t.gateway.setManagementFaults({ throttleRatio: 0.5, random: () => draws.shift() ?? 0.99 });
      expect(await post('unlucky')).toMatchObject({ name: 'LimitExceededException' });
      expect(await post('lucky')).toBe('ok');

      t.gateway.setManagementFaults(undefined);
      expect(await post('after')).toBe('ok');
      await client.waitFor((f) => f.type === 'after');
      // Frames on one socket arrive in order: nothing from the failed posts came before these.
      expect(client.frames.map((f) => f.type)).toEqual(['lucky', 'after']);
    } finally {
      t.gateway.setManagementFaults(undefined);
      api.destroy();
    }
  });

  test('ratios outside 0..1 are refused', () => {
    expect(() => t.gateway.setManagementFaults({ throttleRatio: 1.5 })).toThrow(/throttleRatio/);
    expect(() => t.gateway.setManagementFaults({ throttleRatio: 0.6, errorRatio: 0.6 })).toThrow(/at most 1/);
  });
});

describe('stopping the gateway', () => {
  test('runs $disconnect once for every open connection', async () => {
    const opened = await Promise.all(['stop-1', 'stop-2', 'stop-3'].map((userId) => connectAs(userId)));
    await t.gateway.stop();
    for (const { client, connectionId } of opened) {
      expect(await closeCode(client)).toBe(1001);
      expect(disconnectsOf(connectionId)).toHaveLength(1);
    }
  }, 30_000);
});
