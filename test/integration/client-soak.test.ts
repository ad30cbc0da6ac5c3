/**
 * Soak of wxgate/client (client/index.ts) against the local runtime, bounded in time
 * (WXGATE_CLIENT_SOAK_SECONDS, default 40): 50 clients (20 users: ten with 3 devices, ten with 2,
 * so no user nears MAX_CONNECTIONS_PER_USER = 10) send to each other and to a group while their
 * sockets are dropped at random every few seconds, from the client's side (the socket
 * terminated, as a dead network would) and from the server's (a user kicked through the admin
 * API, all devices at once). Each device sends one message at a time every 2-8 s, about
 * 0.6 per second per user at most, far under the per-user send rate (10/s over 10 s).
 *
 * At the end every acked message reached the application of every device of its recipients
 * (and of the sender's other devices) exactly once, its own sending device at most once, and
 * nothing arrived that no one sent. The run is driven by a seeded PRNG
 * (WXGATE_CLIENT_SOAK_SEED; printed), so a failure replays with its seed.
 */
import { jest } from '@jest/globals';
import WebSocket from 'ws';
import { WxgateClient, type Ack, type Message } from '../../client/index';
import { adminRequest } from '../support/admin-client';
import { seededRandom } from '../support/prng';
import { startTestGateway, type TestGateway } from '../support/test-gateway';
import { tokenFor } from '../support/ws-test-client';

const SECONDS = Number(process.env.WXGATE_CLIENT_SOAK_SECONDS ?? 40);
const SEED = Number(process.env.WXGATE_CLIENT_SOAK_SEED ?? Date.now() % 100_000);
const USERS = Array.from({ length: 20 }, (_, i) => `soak${String(i).padStart(2, '0')}`);
const DEVICES = (user: string) => (USERS.indexOf(user) < 10 ? ['phone', 'laptop', 'tablet'] : ['phone', 'laptop']);
const GROUP = 'soak-team';
const GROUP_MEMBERS = USERS.slice(0, 8);
/** Each device drops its socket after 2-8 s open; a user is kicked every 3-6 s. */
const DROP_MS: [number, number] = [2_000, 8_000];
const KICK_MS: [number, number] = [3_000, 6_000];
const SEND_GAP_MS: [number, number] = [2_000, 8_000];

jest.setTimeout((SECONDS + 120) * 1000);

/** One PRNG per device (and one for the kicker), each seeded from SEED: the order in which their turns interleave does not change what each one draws. */
type Random = () => number;
const between = (random: Random, [lo, hi]: [number, number]) => lo + random() * (hi - lo);
const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Sent {
  tag: string;
  from: string;
  device: string;
  to: { user: string } | { group: string };
  ack?: Ack;
  error?: string;
  /** The sending device's socket changed between send() and its ack (the send was resent). */
  resent?: boolean;
}

class Device {
  readonly key: string;
  readonly client: WxgateClient;
  readonly sockets: WebSocket[] = [];
  /** What reached the application: msgId -> count, and the tag of each. */
  readonly got = new Map<string, number>();
  readonly tags = new Map<string, string>();
  readonly errors: string[] = [];
  opens = 0;
  private seq = 0;
  readonly random: Random;

  constructor(
    readonly user: string,
    readonly device: string,
    index: number,
    wsUrl: string,
  ) {
    this.random = seededRandom(SEED * 1000 + index);
    this.key = `${user}/${device}`;
    const sockets = this.sockets;
    class Tracked extends WebSocket {
      constructor(url: string) {
        super(url);
        sockets.push(this);
      }
    }
    this.client = new WxgateClient({
      url: wsUrl,
      token: () => tokenFor(user, device),
      WebSocket: Tracked,
      random: seededRandom(SEED * 1000 + 500 + index),
      // Drops every few seconds would walk the default backoff up to 30 s (it resets after 30 s
      // open): keep the waits short, so the soak measures delivery, not waiting.
      backoffMaxMs: 2_000,
      stableMs: 1_500,
    });
    this.client.on('message', (m: Message) => {
      this.got.set(m.msgId, (this.got.get(m.msgId) ?? 0) + 1);
      this.tags.set(m.msgId, (m.body as { tag?: string })?.tag ?? '?');
    });
    this.client.on('state', (s) => {
      if (s.state === 'open') this.opens++;
    });
    this.client.on('error', (e) => this.errors.push(`${e.code}: ${e.message}`));
  }

  /** The socket the client uses now, when open. */
  get socket(): WebSocket | undefined {
    const last = this.sockets[this.sockets.length - 1];
    return last?.readyState === WebSocket.OPEN ? last : undefined;
  }

  nextSend(): Sent {
    const tag = `${this.key}#${++this.seq}`;
    const inGroup = GROUP_MEMBERS.includes(this.user);
    const to = inGroup && this.random() < 0.2 ? { group: GROUP } : { user: pick(this.random, USERS.filter((u) => u !== this.user)) };
    return { tag, from: this.user, device: this.device, to };
  }
}

let tg: TestGateway;
const devices: Device[] = [];

beforeAll(async () => {
  tg = await startTestGateway({ pollWaitMs: 50 });
}, 120_000);

afterAll(async () => {
  for (const d of devices) d.client.close();
  await tg?.stop();
});

it(`50 clients whose sockets drop every few seconds: every acked message reaches every device of its recipients exactly once (seed ${SEED})`, async () => {
  console.log(`client-soak: seed ${SEED} (WXGATE_CLIENT_SOAK_SEED=${SEED} replays it), ${SECONDS} s`);
  expect((await adminRequest(tg.gateway.httpUrl, 'PUT', `/v1/groups/${GROUP}/members`, { add: GROUP_MEMBERS })).status).toBe(200);
  for (const user of USERS) for (const device of DEVICES(user)) devices.push(new Device(user, device, devices.length, tg.gateway.wsUrl));
  expect(devices).toHaveLength(50);
  await Promise.all(
    devices.map(
      (d) =>
        new Promise<void>((resolve) => {
          const stop = d.client.on('synced', () => (stop(), resolve()));
          d.client.connect();
        }),
    ),
  );

  const started = Date.now();
  const end = started + SECONDS * 1000;
  const sent: Sent[] = [];
  let drops = 0;
  let kicks = 0;
  let kicked = 0;

  const sender = async (d: Device) => {
    await sleep(between(d.random, [0, SEND_GAP_MS[1]]));
    while (Date.now() < end) {
      const s = d.nextSend();
      sent.push(s);
      const socketsBefore = d.sockets.length;
      try {
        s.ack = await d.client.send(s.to, { tag: s.tag, text: pick(d.random, ['hi', '你好', '😀', 'x'.repeat(300)]) });
      } catch (e) {
        s.error = `${(e as { code?: string }).code}: ${(e as Error).message}`;
      }
      s.resent = d.sockets.length !== socketsBefore;
      await sleep(between(d.random, SEND_GAP_MS));
    }
  };
  const dropper = async (d: Device) => {
    const random = seededRandom(SEED * 1000 + 200 + devices.indexOf(d));
    while (Date.now() < end) {
      await sleep(between(random, DROP_MS));
      if (Date.now() >= end) break;
      const socket = d.socket;
      if (socket) {
        socket.terminate();
        drops++;
      }
    }
  };
  const kicker = async () => {
    const random = seededRandom(SEED * 1000 + 999);
    while (Date.now() < end) {
      await sleep(between(random, KICK_MS));
      if (Date.now() >= end) break;
      const answer = await adminRequest(tg.gateway.httpUrl, 'DELETE', `/v1/users/${pick(random, USERS)}/connections`);
      expect(answer.status).toBe(200);
      kicks++;
      kicked += answer.body.closed as number;
    }
  };
  await Promise.all([...devices.map(sender), ...devices.map(dropper), kicker()]);
  const flowEnded = Date.now();

  // Every send settled (the senders awaited them); all should be acks.
  const acked = sent.filter((s) => s.ack);
  const failed = sent.filter((s) => s.error);
  expect(failed.map((s) => `${s.tag}: ${s.error}`)).toEqual([]);

  // Who must get each acked message: every device of its recipients and of its sender, except
  // the sending device (its own acked send is never handed back to it; it may be, at most once).
  const expected = new Map<Device, Set<string>>(devices.map((d) => [d, new Set()]));
  const byMsgId = new Map<string, Sent>();
  for (const s of acked) {
    byMsgId.set(s.ack!.msgId, s);
    const users = new Set('user' in s.to ? [s.to.user, s.from] : GROUP_MEMBERS);
    for (const d of devices) if (users.has(d.user) && d.key !== `${s.from}/${s.device}`) expected.get(d)!.add(s.ack!.msgId);
  }
  const missing = () => devices.flatMap((d) => [...expected.get(d)!].filter((id) => !d.got.has(id)).map((id) => `${d.key} lacks ${byMsgId.get(id)!.tag} (${id})`));
  const deadline = Date.now() + 60_000;
  while (missing().length && Date.now() < deadline) await sleep(250);
  const converged = Date.now();
  // Late repeats (a resume overlap, a live push after a sync) would arrive now.
  await sleep(3_000);

  const deliveries = [...expected.values()].reduce((n, ids) => n + ids.size, 0);
  const duplicates = devices.flatMap((d) => [...d.got].filter(([, count]) => count > 1).map(([id, count]) => `${d.key} got ${d.tags.get(id)} (${id}) ${count} times`));
  const unexpected = devices.flatMap((d) =>
    [...d.got.keys()]
      .filter((id) => !expected.get(d)!.has(id))
      .filter((id) => {
        const s = byMsgId.get(id);
        return !s || `${s.from}/${s.device}` !== d.key || s.tag !== d.tags.get(id);
      })
      .map((id) => `${d.key} got ${d.tags.get(id)} (${id}), not addressed to it`),
  );
  // A device's own send comes back to it only when its socket dropped before the ack: the resume
  // (or a live push to its new socket) then brings the stored message before the resent send's ack.
  const echoed = devices.flatMap((d) => [...d.got.keys()].filter((id) => !expected.get(d)!.has(id)).flatMap((id) => byMsgId.get(id) ?? []));
  const echoes = echoed.length;
  const opens = devices.reduce((n, d) => n + d.opens, 0);
  const errors = devices.flatMap((d) => d.errors.map((e) => `${d.key} ${e}`));
  console.log(
    `client-soak: seed ${SEED}: ${SECONDS} s, 50 clients, ${acked.length} messages acked (${acked.filter((s) => 'group' in s.to).length} to the group), ` +
      `${deliveries} deliveries expected; ${drops} sockets terminated, ${kicks} kicks closing ${kicked}, ${opens - 50} reconnects; ` +
      `converged ${converged - flowEnded} ms after the flow ended; ${echoes} own sends handed back (of ${acked.filter((s) => s.resent).length} resent); ${errors.length} client error events` +
      (errors.length ? ` (first: ${errors.slice(0, 3).join(' | ')})` : ''),
  );
  expect({ seed: SEED, missing: missing().slice(0, 20), duplicates: duplicates.slice(0, 20), unexpected: unexpected.slice(0, 20) }).toEqual({
    seed: SEED,
    missing: [],
    duplicates: [],
    unexpected: [],
  });
  expect(echoed.filter((s) => !s.resent).map((s) => `${s.tag} came back to its sender without a reconnect`)).toEqual([]);
  expect(acked.length).toBeGreaterThan(SECONDS * 4);
  expect(drops + kicked).toBeGreaterThan(SECONDS * 3);
});
