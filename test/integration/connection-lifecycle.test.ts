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
    expect(row!.expiresAt).toBeGreaterThan(before + 60);
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
  test('ping gets pong echoing the id, and the TTL moves forward', async () => {
    const client = await TestClient.as(wsUrl, 'bob', 'laptop');
    const connectionId = await connectionIdOf('bob');
    const before = (await t.connectionRow(connectionId))!;
    // expiresAt has one-second resolution: let a second pass so the move is visible.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const pong = await client.request({ action: 'ping', id: 'p1' });
    expect(pong).toEqual({ type: 'pong', id: 'p1', ts: expect.any(Number) });
    const after = (await t.connectionRow(connectionId))!;
    expect(after.expiresAt).toBeGreaterThan(before.expiresAt);
    expect(after.lastActiveAt).toBeGreaterThan(before.lastActiveAt);
    expect(after.connectedAt).toBe(before.connectedAt);
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
