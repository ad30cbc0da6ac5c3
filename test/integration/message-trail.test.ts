import { jest } from '@jest/globals';
import { adminRequest } from '../support/admin-client';
import { startTestGateway, type TestGateway } from '../support/test-gateway';
import { TestClient } from '../support/ws-test-client';

/**
 * One message, one search (docs/architecture.md, "Following one message"): the correlation id of
 * the invocation that queued a message (the API Gateway request id of the `send`, or of the admin
 * push) travels through the uplink queue as a message attribute, and the persister logs the
 * record under it. Against the real local runtime with the handlers' log level at DEBUG; the
 * handlers' JSON log lines are read from this process's stdout and stderr, where local mode's
 * handlers write them. Nothing else runs while a message is followed: in local mode every
 * handler shares one logger, and concurrent invocations would share its correlation id.
 */
type LogLine = Record<string, unknown>;

let t: TestGateway;
const clients: TestClient[] = [];
const written: string[] = [];
const spies: Array<{ mockRestore(): void }> = [];

beforeAll(async () => {
  t = await startTestGateway({ handlerEnv: { POWERTOOLS_LOG_LEVEL: 'DEBUG' } });
  const capture = (chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  };
  spies.push(jest.spyOn(process.stdout, 'write').mockImplementation(capture), jest.spyOn(process.stderr, 'write').mockImplementation(capture));
}, 90_000);

afterAll(async () => {
  for (const spy of spies) spy.mockRestore();
  await Promise.all(clients.map((c) => c.close()));
  await t?.stop();
});

/** The handlers' JSON log lines written since `mark` (an index into `written`). */
function linesSince(mark: number): LogLine[] {
  return written
    .slice(mark)
    .join('\n')
    .split('\n')
    .filter((line) => line.startsWith('{"level"'))
    .map((line) => JSON.parse(line) as LogLine);
}

async function connect(userId: string): Promise<TestClient> {
  const client = await TestClient.as(t.gateway.wsUrl, userId, 'd1');
  clients.push(client);
  await client.request({ action: 'ping' });
  return client;
}

describe('one search finds every log line of one message', () => {
  let sender: TestClient;

  beforeAll(async () => {
    sender = await connect('trail-a');
    await connect('trail-b');
    await t.gateway.drainQueues();
  });

  it("the send's lines and the persister's lines share the send's API Gateway request id", async () => {
    const mark = written.length;
    const ack = await sender.request({ action: 'send', id: 'trail-1', to: { user: 'trail-b' }, body: { text: 'follow me' } });
    await t.gateway.drainQueues();
    const lines = linesSince(mark);

    // Which function wrote a line is not asserted: local mode runs every function in one process
    // with one logger, so a persister invocation running at the same moment can lend the send's
    // line its Lambda context (function_name). In AWS each function has its own process.
    const queued = lines.find((line) => line.message === 'message queued' && line.msgId === ack.msgId);
    expect(queued).toMatchObject({ correlation_id: expect.stringMatching(/^\S+$/) });
    const trail = lines.filter((line) => line.correlation_id === queued!.correlation_id);
    expect(trail.map((line) => line.message)).toEqual(['message queued', 'message persisted']);
    expect(trail[1]).toMatchObject({ msgId: ack.msgId, outcome: 'stored' });
  });

  it("an admin push's lines and the persister's share the push request's id", async () => {
    const mark = written.length;
    const pushed = await adminRequest(t.gateway.httpUrl, 'POST', '/v1/push', { to: { users: ['trail-b'] }, body: { text: 'from the backend' } });
    expect(pushed.status).toBe(200);
    await t.gateway.drainQueues();
    const lines = linesSince(mark);

    const accepted = lines.find((line) => line.message === 'admin push accepted' && line.msgId === pushed.body.msgId);
    expect(accepted?.correlation_id).toEqual(expect.any(String));
    const trail = lines.filter((line) => line.correlation_id === accepted!.correlation_id);
    expect(trail.map((line) => line.message)).toEqual(['admin push accepted', 'message persisted']);
    expect(trail[1]).toMatchObject({ msgId: pushed.body.msgId, outcome: 'stored' });
  });
});
