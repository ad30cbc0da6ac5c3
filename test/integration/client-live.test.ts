/**
 * wxgate/client (client/index.ts) against the real local runtime: ann sends bob 20 messages while
 * bob's socket is killed twice (once abruptly from the client's side, once kicked by the admin
 * API from the server's side). Bob's application gets each of the 20 exactly once and in order,
 * and every one of ann's sends resolves with an ack.
 */
import WebSocket from 'ws';
import { WxgateClient, type Message, type StateChange } from '../../client/index';
import { adminRequest } from '../support/admin-client';
import { startTestGateway, type TestGateway } from '../support/test-gateway';
import { eventually, tokenFor } from '../support/ws-test-client';

let tg: TestGateway;
const clients: WxgateClient[] = [];

beforeAll(async () => {
  tg = await startTestGateway({ pollWaitMs: 50 });
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await tg?.stop();
});

/** ws's WebSocket, remembering every socket the client opens so the test can kill one. */
function trackedWebSocket() {
  const sockets: WebSocket[] = [];
  class Tracked extends WebSocket {
    constructor(url: string) {
      super(url);
      sockets.push(this);
    }
  }
  return { Tracked, sockets };
}

const synced = (client: WxgateClient) => new Promise<void>((resolve) => {
  const stop = client.on('synced', () => (stop(), resolve()));
});

it('20 messages to a receiver whose socket dies twice: each reaches its application once, in order; every send is acked', async () => {
  const wsUrl = tg.gateway.wsUrl;
  const bobSockets = trackedWebSocket();
  let bobTokens = 0;
  const bob = new WxgateClient({
    url: wsUrl,
    token: () => (bobTokens++, tokenFor('bob', 'phone')),
    WebSocket: bobSockets.Tracked,
  });
  const ann = new WxgateClient({ url: wsUrl, token: () => tokenFor('ann', 'laptop'), WebSocket: WebSocket });
  clients.push(ann, bob);
  const started = Date.now();
  const got: Message[] = [];
  const bobStates: StateChange[] = [];
  bob.on('message', (m) => got.push(m));
  bob.on('state', (s) => bobStates.push(s));
  const errors: string[] = [];
  for (const c of [ann, bob]) c.on('error', (e) => errors.push(`${e.code}: ${e.message}`));

  try {
    const ready = Promise.all([synced(ann), synced(bob)]);
    ann.connect();
    bob.connect();
    await ready;

    const acks = [];
    for (let n = 1; n <= 20; n++) {
      if (n === 7) bobSockets.sockets[bobSockets.sockets.length - 1]!.terminate(); // the client's side, abruptly
      if (n === 14) {
        const kicked = await adminRequest(tg.gateway.httpUrl, 'DELETE', '/v1/users/bob/connections'); // the server's side
        expect(kicked).toEqual({ status: 200, body: { closed: 1 } });
      }
      // Awaiting each ack keeps ann's sends in send order (frames of one connection are processed independently).
      acks.push(await ann.send('bob', { n, text: `message ${n}` }));
    }
    expect(acks.map((a) => typeof a.msgId)).toEqual(Array(20).fill('string'));
    expect(new Set(acks.map((a) => a.msgId)).size).toBe(20);

    await eventually(
      async () => got.length,
      (count) => count >= 20,
      30_000,
      "bob's 20 messages",
    );
    // Any late repeat (a resume overlap, a live push) would come now; none may reach the application.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(got.map((m) => (m.body as { n: number }).n)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(got.map((m) => m.msgId)).toEqual(acks.map((a) => a.msgId));
    expect(got.every((m) => m.from === 'ann' && (m.to as { user: string }).user === 'bob')).toBe(true);

    // Bob really went away twice and came back on his own, with a fresh token each time.
    expect(bobStates.filter((s) => s.state === 'reconnecting')).toHaveLength(2);
    expect(bobSockets.sockets).toHaveLength(3);
    expect(bobTokens).toBe(3);
    expect(bob.state).toBe('open');
    expect(errors).toEqual([]);
    console.log(`client-live: 20 messages, 2 kills, ${Date.now() - started} ms`);
  } finally {
    ann.close();
    bob.close();
  }
}, 60_000);
