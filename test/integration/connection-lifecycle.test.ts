import { ApiGatewayManagementApiClient, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { SignJWT } from 'jose';
import { startTestGateway, type TestGateway } from '../support/test-gateway';
import { LOCAL_JWT_SECRET, TestClient, eventually, refusedUpgradeStatus, tokenFor } from '../support/ws-test-client';

/** Issue 2: the connection lifecycle, driven through the local runtime with real sockets. */
let t: TestGateway;
let wsUrl: string;

beforeAll(async () => {
  t = await startTestGateway();
  wsUrl = t.gateway.wsUrl;
}, 90_000);

afterAll(async () => {
  await t?.stop();
});

/** The connection id of a socket, as the registry knows it (the only row of that user). */
async function connectionIdOf(userId: string): Promise<string> {
  const rows = await eventually(() => t.registry.listByUser(userId, Date.now()), (r) => r.length === 1, 5_000, `one connection row for ${userId}`);
  return rows[0]!.connectionId;
}

describe('connecting', () => {
  test('a valid token connects and a connection row appears with user, device and a TTL', async () => {
    const before = Math.floor(Date.now() / 1000);
    const client = await TestClient.connect(wsUrl, await tokenFor('alice', 'phone'));
    const connectionId = await connectionIdOf('alice');
    const row = await t.connectionRow(connectionId);
    expect(row).toMatchObject({ connectionId, userId: 'alice', deviceId: 'phone' });
    // Past API Gateway's 2-hour connection limit: no ping has to keep the row alive.
    expect(row!.expiresAt).toBeGreaterThan(before + 2 * 3600);
    expect(typeof row!.connectedAt).toBe('number');
    await client.close();
  });

  test('a token without did connects as device "default"', async () => {
    const client = await TestClient.connect(wsUrl, await tokenFor('dora'));
    const connectionId = await connectionIdOf('dora');
    expect((await t.connectionRow(connectionId))?.deviceId).toBe('default');
    await client.close();
  });

  test('a missing token is refused at the upgrade with 401 and no row is written', async () => {
    expect(await refusedUpgradeStatus(`${wsUrl}/`)).toBe(401);
    expect(await refusedUpgradeStatus(`${wsUrl}/?token=`)).toBe(401);
  });

  test('a token that is not a JWT is refused with 401', async () => {
    expect(await refusedUpgradeStatus(`${wsUrl}/?token=not-a-jwt`)).toBe(401);
  });

  test('an expired token is refused with 403 and no row is written', async () => {
    const past = Math.floor(Date.now() / 1000) - 60;
    const expired = await new SignJWT({ did: 'd1' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('mallory')
      .setIssuedAt(past - 3600)
      .setExpirationTime(past)
      .sign(new TextEncoder().encode(LOCAL_JWT_SECRET));
    expect(await refusedUpgradeStatus(`${wsUrl}/?token=${expired}`)).toBe(403);
    expect(await t.registry.listByUser('mallory', Date.now())).toEqual([]);
  });

  test('a token signed with another secret is refused with 403', async () => {
    const forged = await tokenFor('mallory', 'd1', 3600, 'some-other-secret');
    expect(await refusedUpgradeStatus(`${wsUrl}/?token=${forged}`)).toBe(403);
    expect(await t.registry.listByUser('mallory', Date.now())).toEqual([]);
  });
});

describe('a connected client', () => {
  test('ping gets pong echoing the id and writes nothing: the row is exactly as $connect wrote it', async () => {
    const client = await TestClient.as(wsUrl, 'bob', 'laptop');
    const connectionId = await connectionIdOf('bob');
    const before = (await t.connectionRow(connectionId))!;
    // The row lives until API Gateway's 2-hour limit plus 10 minutes, counted from connectedAt.
    expect(before).toEqual({ connectionId, userId: 'bob', deviceId: 'laptop', connectedAt: expect.any(Number), expiresAt: Math.floor(before.connectedAt / 1000) + 7800 });
    // expiresAt has one-second resolution: let a second pass, so a write that moved it would show.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const pong = await client.request({ action: 'ping', id: 'p1' });
    expect(pong).toEqual({ type: 'pong', id: 'p1', ts: expect.any(Number) });
    expect(pong.ts).toBeGreaterThanOrEqual(before.connectedAt + 1100);
    expect(await t.connectionRow(connectionId)).toEqual(before);
    await client.close();
  });

  test('an unknown action gets an error frame and the socket stays open', async () => {
    const client = await TestClient.as(wsUrl, 'carol', 'web');
    const error = await client.request({ action: 'dance', id: 'x1' });
    expect(error).toMatchObject({ type: 'error', id: 'x1', code: 'bad_request' });
    expect(error.message).toContain('dance');
    expect(client.isOpen).toBe(true);
    expect(await client.request({ action: 'ping', id: 'p2' })).toMatchObject({ type: 'pong', id: 'p2' });
    await client.close();
  });

  test('non-JSON and action-less frames get bad_request without closing the socket', async () => {
    const client = await TestClient.as(wsUrl, 'carol', 'tablet');
    client.sendRaw('this is not json');
    const notJson = await client.waitFor((f) => f.type === 'error' && /JSON/.test(f.message));
    expect(notJson.code).toBe('bad_request');
    client.sendRaw(JSON.stringify({ id: 'n1', hello: 'world' }));
    const noAction = await client.waitFor((f) => f.id === 'n1');
    expect(noAction).toMatchObject({ type: 'error', code: 'bad_request' });
    expect(client.isOpen).toBe(true);
    await client.close();
  });

  test('disconnecting removes the connection row', async () => {
    const client = await TestClient.as(wsUrl, 'erin', 'phone');
    const connectionId = await connectionIdOf('erin');
    await client.close();
    await eventually(() => t.connectionRow(connectionId), (row) => row === undefined, 5_000, 'row removed after disconnect');
  });

  test('a post to a closed connection surfaces as GoneException through the real SDK', async () => {
    const client = await TestClient.as(wsUrl, 'frank', 'phone');
    const connectionId = await connectionIdOf('frank');
    const management = new ApiGatewayManagementApiClient({
      endpoint: t.gateway.managementEndpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    await management.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: new TextEncoder().encode('{"type":"hello"}') }));
    expect(await client.waitFor((f) => f.type === 'hello')).toEqual({ type: 'hello' });
    await client.close();
    await expect(management.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: new Uint8Array([123, 125]) }))).rejects.toMatchObject({
      name: 'GoneException',
      $metadata: { httpStatusCode: 410 },
    });
    management.destroy();
  });
});

describe('connections per user (MAX_CONNECTIONS_PER_USER, default 10)', () => {
  const LIMIT = 10;

  /** Opens a socket of `userId` and finds its connection id (the row that was not there before). */
  async function open(userId: string, deviceId: string): Promise<{ client: TestClient; connectionId: string }> {
    const known = new Set((await t.registry.listByUser(userId, Date.now())).map((r) => r.connectionId));
    const client = await TestClient.as(wsUrl, userId, deviceId);
    const rows = await eventually(
      () => t.registry.listByUser(userId, Date.now()),
      (r) => r.some((row) => !known.has(row.connectionId)),
      5_000,
      `the row of ${userId}/${deviceId}`,
    );
    return { client, connectionId: rows.find((row) => !known.has(row.connectionId))!.connectionId };
  }

  async function openMany(userId: string, count: number) {
    const opened: Array<{ client: TestClient; connectionId: string }> = [];
    // One after another, so connectedAt orders them.
    for (let i = 0; i < count; i++) opened.push(await open(userId, `d${i}`));
    return opened;
  }

  const liveIds = async (userId: string) => (await t.registry.listByUser(userId, Date.now())).map((r) => r.connectionId).sort();
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  test('the (limit+1)-th connection closes the oldest socket with a close frame; the others stay open and the old row is gone', async () => {
    const first = await openMany('lim-a', LIMIT);
    // Exactly at the limit: nobody was closed.
    expect(first.every(({ client }) => client.isOpen)).toBe(true);
    expect(await liveIds('lim-a')).toEqual(first.map((o) => o.connectionId).sort());

    const newest = await open('lim-a', 'new');
    const oldest = first[0]!;
    // DeleteConnection's close, as API Gateway closes it: a close frame with 1000 (1006 would mean no frame).
    expect(await oldest.client.whenClosed()).toEqual({ code: 1000 });
    // Its $disconnect ran and removed its row.
    await eventually(() => t.connectionRow(oldest.connectionId), (row) => row === undefined, 5_000, 'the oldest row removed');
    await pause(300);
    expect([...first.slice(1), newest].filter(({ client }) => !client.isOpen).map((o) => o.connectionId)).toEqual([]);
    expect(await liveIds('lim-a')).toEqual([...first.slice(1), newest].map((o) => o.connectionId).sort());
    // The survivors still work.
    expect(await newest.client.request({ action: 'ping', id: 'after' })).toMatchObject({ type: 'pong', id: 'after' });
    expect(await first[1]!.client.request({ action: 'ping', id: 'after' })).toMatchObject({ type: 'pong', id: 'after' });
    await Promise.all([...first.slice(1), newest].map(({ client }) => client.close()));
  }, 60_000);

  test('a user below the limit keeps every connection', async () => {
    const opened = await openMany('lim-b', 4);
    await pause(300);
    expect(opened.filter(({ client }) => !client.isOpen)).toEqual([]);
    expect(await liveIds('lim-b')).toEqual(opened.map((o) => o.connectionId).sort());
    await Promise.all(opened.map(({ client }) => client.close()));
  });

  test('an oldest connection that is already gone (410 to DeleteConnection) loses its row, and every live socket stays open', async () => {
    const ghost = 'limGhostConn000=';
    const now = Date.now();
    await t.registry.put({ connectionId: ghost, userId: 'lim-c', deviceId: 'ghost', connectedAt: now - 60_000, expiresAt: Math.floor(now / 1000) + 3600 });
    const live = await openMany('lim-c', LIMIT);
    await eventually(() => t.connectionRow(ghost), (row) => row === undefined, 5_000, 'the ghost row removed');
    await pause(300);
    expect(live.filter(({ client }) => !client.isOpen)).toEqual([]);
    expect(await liveIds('lim-c')).toEqual(live.map((o) => o.connectionId).sort());
    await Promise.all(live.map(({ client }) => client.close()));
  }, 60_000);
});
