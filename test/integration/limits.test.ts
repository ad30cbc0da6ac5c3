/**
 * The limits that protect the account, on the real local runtime: the per-user send rate
 * (`rate_limited` with `retryAfterMs`, nothing queued for the refused frame) and the group size.
 */
import { websocket } from '../../lib/gateway-declaration';
import { declaredStageThrottle } from '../../local/stage-throttle';
import { adminRequest } from '../support/admin-client';
import { startTestGateway, type TestGateway } from '../support/test-gateway';
import { TestClient } from '../support/ws-test-client';

let tg: TestGateway;

beforeAll(async () => {
  // 0.5 sends/s: 5 per 10 s window.
  tg = await startTestGateway({ handlerEnv: { SEND_RATE_PER_USER: '0.5', MAX_GROUP_MEMBERS: '3' } });
}, 60_000);

afterAll(async () => {
  await tg?.stop();
});

it('a user over the send rate gets rate_limited with retryAfterMs, and the refused frame is neither acked nor stored', async () => {
  const sender = await TestClient.as(tg.gateway.wsUrl, 'rate-u1', 'd1');
  const receiver = await TestClient.as(tg.gateway.wsUrl, 'rate-u2', 'd1');
  const replies = [];
  // Sequential, so the window cannot roll over between the 5th and the 6th unnoticed: if it did, a 7th would still be refused.
  for (let i = 0; i < 12; i++) {
    const reply = await sender.request({ action: 'send', id: `rate-${i}`, to: { user: 'rate-u2' }, body: { n: i } });
    replies.push(reply);
    if (reply.type === 'error') break;
  }
  const refused = replies[replies.length - 1]!;
  expect(refused).toMatchObject({ type: 'error', code: 'rate_limited', retryAfterMs: expect.any(Number) });
  expect(refused.retryAfterMs).toBeGreaterThan(0);
  expect(refused.retryAfterMs).toBeLessThanOrEqual(10_000);
  const acked = replies.filter((r) => r.type === 'ack');
  expect(acked.length).toBeGreaterThanOrEqual(5);
  expect(acked.length).toBeLessThanOrEqual(10); // at most two windows' worth if a boundary fell inside the loop
  await tg.gateway.drainQueues();
  const bodies = (await tg.inboxRows('rate-u2')).map((r) => JSON.parse(r.frame).body.n);
  expect(bodies.sort((a: number, b: number) => a - b)).toEqual(acked.map((_, i) => i));
  // Another user is not held back by rate-u1's window.
  expect(await receiver.request({ action: 'send', to: { user: 'rate-u1' }, body: 'other user' })).toMatchObject({ type: 'ack' });
  sender.socket.terminate();
  receiver.socket.terminate();
});

it('a group may not grow past MAX_GROUP_MEMBERS: 409 and no member added', async () => {
  const url = tg.gateway.httpUrl;
  expect(await adminRequest(url, 'PUT', '/v1/groups/limited/members', { add: ['a', 'b', 'c'] })).toMatchObject({ status: 200, body: { members: 3 } });
  const refused = await adminRequest(url, 'PUT', '/v1/groups/limited/members', { add: ['d'] });
  expect(refused).toMatchObject({ status: 409, body: { error: { code: 'conflict', message: expect.stringMatching(/limit is 3/) } } });
  expect((await adminRequest(url, 'GET', '/v1/groups/limited/members')).body.members).toEqual(['a', 'b', 'c']);
  expect(await adminRequest(url, 'PUT', '/v1/groups/limited/members', { add: ['d'], remove: ['a'] })).toMatchObject({ status: 200, body: { members: 3 } });
});

describe('API Gateway stage and route throttles (local mode applies the declared ones)', () => {
  afterEach(() => tg.gateway.setStageThrottle(declaredStageThrottle()));

  it('a frame over its route throttle is refused by the gateway itself, nothing is invoked, and the socket stays open', async () => {
    tg.gateway.setStageThrottle({ routes: { ping: { rateLimit: 0.001, burstLimit: 3 } } });
    const client = await TestClient.as(tg.gateway.wsUrl, 'throttle-u1', 'd1');
    const before = tg.gateway.stageThrottleStats();
    for (let i = 0; i < 10; i++) client.sendRaw(JSON.stringify({ action: 'ping', id: `p${i}` }));
    await client.waitFor(() => client.frames.length >= 10, 10_000, '10 answers');
    expect(client.frames.filter((f) => f.type === 'pong')).toHaveLength(3);
    const refused = client.frames.filter((f) => f.message === 'Too Many Requests');
    expect(refused).toHaveLength(7);
    expect(refused[0]).toEqual({ message: 'Too Many Requests', connectionId: expect.any(String), requestId: expect.any(String) });
    expect(tg.gateway.stageThrottleStats().throttled - before.throttled).toBe(7);
    // Other routes have their own budget.
    expect(await client.request({ action: 'sync', limit: 1 })).toMatchObject({ type: 'sync' });
    expect(client.isOpen).toBe(true);
    client.socket.terminate();
  });

  it('a connect over the $connect throttle gets 429 before the authorizer', async () => {
    tg.gateway.setStageThrottle({ routes: { $connect: { rateLimit: 0.001, burstLimit: 1 } } });
    const first = await TestClient.as(tg.gateway.wsUrl, 'throttle-u2', 'd1');
    await expect(TestClient.as(tg.gateway.wsUrl, 'throttle-u2', 'd2')).rejects.toThrow(/upgrade refused: 429/);
    first.socket.terminate();
  });

  it('the declared throttles are on by default', () => {
    expect(declaredStageThrottle().stage).toEqual(websocket.stageThrottle);
    expect(Object.keys(declaredStageThrottle().routes ?? {}).sort()).toEqual(['$connect', '$default', 'ping', 'send', 'sync']);
  });
});
