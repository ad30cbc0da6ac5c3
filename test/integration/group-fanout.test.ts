import { DEFAULT_INLINE_MAX_MEMBERS } from '../../lambdas/domain/send-message';
import { adminRequest } from '../support/admin-client';
import { startTestGateway, type TestGateway } from '../support/test-gateway';
import { TestClient, eventually, type Frame } from '../support/ws-test-client';

/**
 * Group sends on the local runtime: one to more members than the send route posts to
 * (SEND_INLINE_MAX_MEMBERS, default 100) is acked once queued and posted by a fan-out job the
 * persister starts (id = msgId); a smaller one is posted inline, with no job. Real sockets for
 * some members; every member's inbox checked.
 */
let t: TestGateway;
const clients: TestClient[] = [];

beforeAll(async () => {
  t = await startTestGateway();
}, 90_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await t?.stop();
});

async function connect(userId: string, deviceId: string): Promise<TestClient> {
  const client = await TestClient.as(t.gateway.wsUrl, userId, deviceId);
  clients.push(client);
  await client.request({ action: 'ping' }); // registered once a ping round-trips
  return client;
}

const users = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(3, '0')}`);

test(`a send to a group of ${DEFAULT_INLINE_MAX_MEMBERS + 50}: acked at once, every online device gets it once through the job, every member's inbox holds it once`, async () => {
  const members = users('fo', DEFAULT_INLINE_MAX_MEMBERS + 50);
  await t.groups.addMembers('fo-group', members);
  // The sender on two devices, 24 other members online (one on two devices), the rest offline.
  const sending = await connect(members[0]!, 'd1');
  const others = await Promise.all([connect(members[0]!, 'd2'), connect(members[1]!, 'd2'), ...members.slice(1, 25).map((u) => connect(u, 'd1'))]);

  // When each socket first saw a message frame, whatever its msgId (the msgId is known only from the ack).
  const firstMessageAt = others.map(() => Infinity);
  others.forEach((c, i) =>
    c.socket.on('message', (data) => {
      if ((JSON.parse(data.toString()) as Frame).type === 'message') firstMessageAt[i] = Math.min(firstMessageAt[i]!, Date.now());
    }),
  );
  const sentAt = Date.now();
  const ack = await sending.request({ action: 'send', id: 'fo-1', to: { group: 'fo-group' }, body: { text: 'to everyone' } });
  const ackedAt = Date.now();
  expect(ack).toEqual({ type: 'ack', id: 'fo-1', msgId: expect.any(String), ts: expect.any(Number) });
  expect(ackedAt - sentAt).toBeLessThan(5_000);

  await Promise.all(others.map((c) => c.waitFor((f) => f.msgId === ack.msgId, 30_000)));
  // The ack did not wait for any post (the job below is what posted).
  expect(Math.min(...firstMessageAt)).toBeGreaterThanOrEqual(ackedAt);

  const job = await eventually(
    () => adminRequest(t.gateway.httpUrl, 'GET', `/v1/jobs/${ack.msgId}`),
    (res) => res.status === 200 && res.body.state === 'done',
    30_000,
    'the job to finish',
  );
  expect(job.body).toEqual({ jobId: ack.msgId, msgId: ack.msgId, state: 'done', targeted: others.length, delivered: others.length, gone: 0, failed: 0 });

  await t.gateway.drainQueues(60_000);
  for (const c of [sending, ...others]) await c.request({ action: 'ping' }); // every frame pushed before has arrived
  const expected: Frame = { type: 'message', msgId: ack.msgId, from: members[0], to: { group: 'fo-group' }, body: { text: 'to everyone' }, ts: ack.ts };
  for (const c of others) expect(c.messages().filter((f) => f.msgId === ack.msgId)).toEqual([expected]);
  expect(sending.messages()).toEqual([]);

  for (const user of members) {
    const rows = (await t.inboxRows(user)).filter((r) => r.msgId === ack.msgId);
    expect([user, rows.length]).toEqual([user, 1]);
  }
}, 120_000);

test(`a send to a group of ${DEFAULT_INLINE_MAX_MEMBERS} is posted inside the route: no job`, async () => {
  const members = users('in', DEFAULT_INLINE_MAX_MEMBERS);
  await t.groups.addMembers('in-group', members);
  const sending = await connect(members[0]!, 'd1');
  const other = await connect(members[1]!, 'd1');
  const ack = await sending.request({ action: 'send', to: { group: 'in-group' }, body: 'small' });
  await other.waitFor((f) => f.msgId === ack.msgId);
  await t.gateway.drainQueues(60_000);
  expect((await adminRequest(t.gateway.httpUrl, 'GET', `/v1/jobs/${ack.msgId}`)).status).toBe(404);
  await other.request({ action: 'ping' });
  expect(other.messages().filter((f) => f.msgId === ack.msgId)).toHaveLength(1);
  for (const user of members) expect((await t.inboxRows(user)).filter((r) => r.msgId === ack.msgId)).toHaveLength(1);
}, 120_000);
