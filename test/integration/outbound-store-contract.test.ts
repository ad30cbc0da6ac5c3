/**
 * The OutboundStore contract, run twice: against DynamoOutboundStore on DynamoDB Local (the
 * `wechat` table of lib/gateway-declaration.ts, created by the engine) and against the
 * in-memory FakeOutboundStore the unit tests of wechat-outbound.ts use. The worker's "never
 * twice per attempt" rests on these conditions, so the fake is held to the real ones here.
 */
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoOutboundStore } from '../../lambdas/adapters/dynamo-outbound-store';
import type { OutboundRecord, OutboundStore } from '../../lambdas/domain/wechat-outbound';
import { startDynamoEngine, type DynamoEngine } from '../../local/dynamodb-engine';
import { FakeOutboundStore } from '../support/fakes';

let engine: DynamoEngine;
let ddb: DynamoDBDocumentClient;

beforeAll(async () => {
  engine = await startDynamoEngine({ logger: () => undefined });
  // As lambdas/runtime/aws-clients.ts builds it: optional fields left undefined are dropped.
  ddb = DynamoDBDocumentClient.from(engine.client, { marshallOptions: { removeUndefinedValues: true } });
}, 60_000);

afterAll(async () => {
  await engine?.stop();
});

/** The store's clock is the caller's: conditions compare these, never the wall clock. */
const NOW = Date.UTC(2026, 0, 1, 12);
/** The TTL is real time, though: DynamoDB Local deletes items whose TTL has passed (it did, mid-test, with one derived from NOW). */
const TTL = Math.floor(Date.now() / 1000) + 7 * 86_400;
const LEASE = 60_000;
let unique = 0;
const fresh = () => `o${++unique}${Math.random().toString(36).slice(2, 10)}`;

const recordOf = (id: string, overrides: Partial<OutboundRecord> = {}): OutboundRecord => ({
  id,
  accountId: 'acct',
  openId: 'oUser_1-x',
  kind: 'service',
  message: { msgtype: 'text', text: { content: '你好 😀' }, nested: { list: [1, 'two', { three: true }] } },
  requester: 'agent-1',
  state: 'queued',
  attempt: 1,
  untilMs: 0,
  createdAt: NOW,
  updatedAt: NOW,
  ...overrides,
});

const stores: Array<[string, () => OutboundStore]> = [
  ['DynamoDB adapter on DynamoDB Local', () => new DynamoOutboundStore(ddb, engine.tableNames.wechat)],
  ['in-memory fake', () => new FakeOutboundStore()],
];

describe.each(stores)('OutboundStore contract: %s', (_name, make) => {
  let store: OutboundStore;
  beforeAll(() => {
    store = make();
  });

  /** A record created and claimed for attempt 1 at NOW. */
  const claimedRecord = async (overrides: Partial<OutboundRecord> = {}) => {
    const id = fresh();
    await store.create(recordOf(id, overrides), TTL);
    const claimed = await store.claim(id, overrides.attempt ?? 1, NOW, NOW + LEASE);
    expect(claimed).toBeDefined();
    return id;
  };

  describe('create', () => {
    it('creates and round-trips the record exactly (nested message, unicode); get of an unknown id is undefined', async () => {
      const id = fresh();
      const record = recordOf(id, { clientMsgId: 'k-1_A' });
      await expect(store.create(record, TTL)).resolves.toEqual(record);
      await expect(store.get(id)).resolves.toStrictEqual(record);
      await expect(store.get(fresh())).resolves.toBeUndefined();
    });

    it('optional fields left undefined are not stored', async () => {
      const id = fresh();
      await store.create(recordOf(id, { requester: undefined, clientMsgId: undefined }), TTL);
      const stored = (await store.get(id))!;
      expect('requester' in stored).toBe(false);
      expect('clientMsgId' in stored).toBe(false);
    });

    it('create twice returns the first record and leaves it unchanged', async () => {
      const id = fresh();
      const first = recordOf(id);
      await store.create(first, TTL);
      const second = recordOf(id, { openId: 'someone-else', message: { msgtype: 'text', text: { content: 'other' } }, createdAt: NOW + 5 });
      await expect(store.create(second, TTL + 100)).resolves.toStrictEqual(first);
      await expect(store.get(id)).resolves.toStrictEqual(first);
    });

    it('create of an existing record answers its current state, not the candidate (a resubmission sees the progress)', async () => {
      const id = await claimedRecord();
      await store.settle(id, 1, { state: 'retrying', untilMs: NOW + 30_000, errcode: -1, errmsg: 'system error' }, NOW + 1);
      await expect(store.create(recordOf(id), TTL)).resolves.toMatchObject({ state: 'retrying', attempt: 2, errcode: -1 });
    });

    it('concurrent creates of one id: both answer the same, first-stored record', async () => {
      const id = fresh();
      const [a, b] = await Promise.all([store.create(recordOf(id, { openId: 'a' }), TTL), store.create(recordOf(id, { openId: 'b' }), TTL)]);
      const stored = (await store.get(id))!;
      expect([a.openId, b.openId]).toEqual([stored.openId, stored.openId]);
    });
  });

  describe('claim', () => {
    it('claims a queued record: sending, the lease, updatedAt; answers the full record', async () => {
      const id = fresh();
      await store.create(recordOf(id), TTL);
      const claimed = await store.claim(id, 1, NOW + 7, NOW + 7 + LEASE);
      expect(claimed).toStrictEqual({ ...recordOf(id), state: 'sending', untilMs: NOW + 7 + LEASE, updatedAt: NOW + 7 });
      await expect(store.get(id)).resolves.toStrictEqual(claimed);
    });

    it('two claims of one attempt: exactly one wins, concurrently or one after the other', async () => {
      const id = fresh();
      await store.create(recordOf(id), TTL);
      const results = await Promise.all([store.claim(id, 1, NOW, NOW + LEASE), store.claim(id, 1, NOW, NOW + LEASE)]);
      expect(results.filter((r) => r !== undefined)).toHaveLength(1);
      await expect(store.claim(id, 1, NOW + 1, NOW + 1 + LEASE)).resolves.toBeUndefined();
      await expect(store.get(id)).resolves.toMatchObject({ state: 'sending', untilMs: NOW + LEASE });
    });

    it('a claim of another attempt fails: a stale copy (older) or one from the future', async () => {
      const id = fresh();
      await store.create(recordOf(id), TTL);
      await expect(store.claim(id, 2, NOW, NOW + LEASE)).resolves.toBeUndefined();
      await store.claim(id, 1, NOW, NOW + LEASE);
      await store.settle(id, 1, { state: 'retrying', untilMs: NOW + 4000, errcode: -1, errmsg: 'busy' }, NOW + 1);
      await expect(store.claim(id, 1, NOW + 2, NOW + 2 + LEASE)).resolves.toBeUndefined();
      await expect(store.claim(id, 1, NOW + 10 * LEASE, NOW + 11 * LEASE)).resolves.toBeUndefined(); // not even once attempt 1's lease is long gone
      await expect(store.get(id)).resolves.toMatchObject({ state: 'retrying', attempt: 2 });
    });

    it('a retrying record is claimed at its new attempt (the queue delay, not the store, enforces the wait)', async () => {
      const id = await claimedRecord();
      await store.settle(id, 1, { state: 'retrying', untilMs: NOW + 4000, errcode: -1, errmsg: 'busy' }, NOW + 1);
      await expect(store.claim(id, 2, NOW + 5000, NOW + 5000 + LEASE)).resolves.toMatchObject({ state: 'sending', attempt: 2, untilMs: NOW + 5000 + LEASE });
    });

    it('lease expiry: no takeover while the lease lasts (up to and at its end), a takeover after it', async () => {
      const id = await claimedRecord();
      await expect(store.claim(id, 1, NOW + LEASE - 1, NOW + 2 * LEASE)).resolves.toBeUndefined();
      await expect(store.claim(id, 1, NOW + LEASE, NOW + 2 * LEASE)).resolves.toBeUndefined();
      const taken = await store.claim(id, 1, NOW + LEASE + 1, NOW + 2 * LEASE + 1);
      expect(taken).toMatchObject({ state: 'sending', attempt: 1, untilMs: NOW + 2 * LEASE + 1, updatedAt: NOW + LEASE + 1 });
      // The takeover's lease is respected in turn.
      await expect(store.claim(id, 1, NOW + LEASE + 2, NOW + 3 * LEASE)).resolves.toBeUndefined();
    });

    it('a settled record cannot be claimed, at any attempt or time', async () => {
      for (const state of ['sent', 'failed'] as const) {
        const id = await claimedRecord();
        await store.settle(id, 1, { state, untilMs: 0 }, NOW + 1);
        for (const attempt of [1, 2]) await expect(store.claim(id, attempt, NOW + 10 * LEASE, NOW + 11 * LEASE)).resolves.toBeUndefined();
        await expect(store.get(id)).resolves.toMatchObject({ state, attempt: 1 });
      }
    });

    it('a claim of an unknown id fails and creates nothing', async () => {
      const id = fresh();
      await expect(store.claim(id, 1, NOW, NOW + LEASE)).resolves.toBeUndefined();
      await expect(store.get(id)).resolves.toBeUndefined();
    });
  });

  describe('settle', () => {
    it('sent: state, untilMs, sentAt, updatedAt; the attempt stays; no error left from an earlier attempt', async () => {
      const id = await claimedRecord();
      await store.settle(id, 1, { state: 'retrying', untilMs: NOW + 2000, errcode: -1, errmsg: 'system error' }, NOW + 1);
      await store.claim(id, 2, NOW + 2000, NOW + 2000 + LEASE);
      await expect(store.settle(id, 2, { state: 'sent', untilMs: 0, sentAt: NOW + 2100 }, NOW + 2100)).resolves.toBe(true);
      const stored = (await store.get(id))!;
      expect(stored).toMatchObject({ state: 'sent', attempt: 2, untilMs: 0, sentAt: NOW + 2100, updatedAt: NOW + 2100 });
      expect('errcode' in stored).toBe(false);
      expect('errmsg' in stored).toBe(false);
    });

    it('retrying bumps the attempt and records the error and when the next attempt is due', async () => {
      const id = await claimedRecord();
      await expect(store.settle(id, 1, { state: 'retrying', untilMs: NOW + 61_000, errcode: 45011, errmsg: 'api freq out of limit' }, NOW + 1000)).resolves.toBe(true);
      await expect(store.get(id)).resolves.toStrictEqual({
        ...recordOf(id),
        state: 'retrying',
        attempt: 2,
        untilMs: NOW + 61_000,
        errcode: 45011,
        errmsg: 'api freq out of limit',
        updatedAt: NOW + 1000,
      });
    });

    it('failed keeps the attempt and records the error', async () => {
      const id = await claimedRecord();
      await expect(store.settle(id, 1, { state: 'failed', untilMs: 0, errcode: 45015, errmsg: 'response out of time limit' }, NOW + 1)).resolves.toBe(true);
      await expect(store.get(id)).resolves.toMatchObject({ state: 'failed', attempt: 1, errcode: 45015, errmsg: 'response out of time limit', untilMs: 0 });
    });

    it("the record's error is the settled attempt's: a failure without a code (network) leaves no code from an earlier one", async () => {
      const id = await claimedRecord();
      await store.settle(id, 1, { state: 'retrying', untilMs: NOW + 2000, errcode: -1, errmsg: 'system error' }, NOW + 1);
      await store.claim(id, 2, NOW + 2000, NOW + 2000 + LEASE);
      await store.settle(id, 2, { state: 'retrying', untilMs: NOW + 6000, errmsg: 'custom/send: timeout' }, NOW + 2001);
      let stored = (await store.get(id))!;
      expect(stored).toMatchObject({ state: 'retrying', attempt: 3, errmsg: 'custom/send: timeout' });
      expect('errcode' in stored).toBe(false);
      await store.claim(id, 3, NOW + 6000, NOW + 6000 + LEASE);
      await store.settle(id, 3, { state: 'failed', untilMs: 0, errmsg: 'account "x" is not configured' }, NOW + 6001);
      stored = (await store.get(id))!;
      expect(stored).toMatchObject({ state: 'failed', attempt: 3, errmsg: 'account "x" is not configured' });
      expect('errcode' in stored).toBe(false);
    });

    it('settle without a claim fails: queued, retrying, or at another attempt; nothing changes', async () => {
      const id = fresh();
      await store.create(recordOf(id), TTL);
      await expect(store.settle(id, 1, { state: 'sent', untilMs: 0, sentAt: NOW }, NOW)).resolves.toBe(false);
      await expect(store.get(id)).resolves.toStrictEqual(recordOf(id));
      await store.claim(id, 1, NOW, NOW + LEASE);
      await expect(store.settle(id, 2, { state: 'sent', untilMs: 0, sentAt: NOW }, NOW)).resolves.toBe(false);
      await store.settle(id, 1, { state: 'retrying', untilMs: NOW + 2000, errcode: -1, errmsg: 'busy' }, NOW + 1);
      await expect(store.settle(id, 2, { state: 'sent', untilMs: 0, sentAt: NOW }, NOW + 2)).resolves.toBe(false); // attempt 2 not claimed yet
      await expect(store.get(id)).resolves.toMatchObject({ state: 'retrying', attempt: 2 });
      await expect(store.settle(fresh(), 1, { state: 'sent', untilMs: 0 }, NOW)).resolves.toBe(false);
    });

    it('an attempt settles once: a second settle fails (a late worker cannot overwrite a final state)', async () => {
      const id = await claimedRecord();
      await expect(store.settle(id, 1, { state: 'sent', untilMs: 0, sentAt: NOW + 1 }, NOW + 1)).resolves.toBe(true);
      await expect(store.settle(id, 1, { state: 'failed', untilMs: 0, errcode: 45015, errmsg: 'x' }, NOW + 2)).resolves.toBe(false);
      await expect(store.settle(id, 1, { state: 'retrying', untilMs: NOW + 9, errmsg: 'x' }, NOW + 2)).resolves.toBe(false);
      const stored = (await store.get(id))!;
      expect(stored).toMatchObject({ state: 'sent', attempt: 1, sentAt: NOW + 1, updatedAt: NOW + 1 });
      expect('errcode' in stored).toBe(false);
    });

    it('settle after losing the claim fails: the worker that took over after the lease settled first', async () => {
      const id = await claimedRecord(); // worker A, lease until NOW + LEASE
      await store.claim(id, 1, NOW + LEASE + 1, NOW + 2 * LEASE + 1); // worker B takes over
      await expect(store.settle(id, 1, { state: 'retrying', untilMs: NOW + LEASE + 3000, errcode: -1, errmsg: 'busy' }, NOW + LEASE + 2)).resolves.toBe(true); // B
      await expect(store.settle(id, 1, { state: 'sent', untilMs: 0, sentAt: NOW + LEASE + 3 }, NOW + LEASE + 3)).resolves.toBe(false); // A, late
      await expect(store.get(id)).resolves.toMatchObject({ state: 'retrying', attempt: 2, errcode: -1 });
    });

    it('the claim is per attempt, not per worker: of two holders of one attempt, the first to settle wins', async () => {
      // No fencing token: a worker whose lease expired could still settle before the one that
      // took over. SEND_LEASE_MS (60 s) outlives the worker's 30 s Lambda timeout, so a live
      // worker never gets here; this pins what the store does if one did.
      const id = await claimedRecord();
      await store.claim(id, 1, NOW + LEASE + 1, NOW + 2 * LEASE + 1);
      await expect(store.settle(id, 1, { state: 'sent', untilMs: 0, sentAt: NOW + LEASE + 2 }, NOW + LEASE + 2)).resolves.toBe(true);
      await expect(store.settle(id, 1, { state: 'sent', untilMs: 0, sentAt: NOW + LEASE + 3 }, NOW + LEASE + 3)).resolves.toBe(false);
      await expect(store.get(id)).resolves.toMatchObject({ state: 'sent', sentAt: NOW + LEASE + 2 });
    });

    it('concurrent settles of one claimed attempt: exactly one lands', async () => {
      const id = await claimedRecord();
      const results = await Promise.all([
        store.settle(id, 1, { state: 'sent', untilMs: 0, sentAt: NOW + 1 }, NOW + 1),
        store.settle(id, 1, { state: 'retrying', untilMs: NOW + 2000, errcode: -1, errmsg: 'busy' }, NOW + 1),
      ]);
      expect(results.filter(Boolean)).toHaveLength(1);
      const stored = (await store.get(id))!;
      expect(stored.state === 'sent' ? stored.attempt : stored.attempt - 1).toBe(1);
    });
  });
});

it('DynamoDB: the record lives at out#{id}/out with its TTL, and the TTL attribute is not part of the record', async () => {
  const store = new DynamoOutboundStore(ddb, engine.tableNames.wechat);
  const id = fresh();
  await store.create(recordOf(id), TTL);
  const { Item } = await ddb.send(new GetCommand({ TableName: engine.tableNames.wechat, Key: { pk: `out#${id}`, sk: 'out' }, ConsistentRead: true }));
  expect(Item).toMatchObject({ pk: `out#${id}`, sk: 'out', expiresAt: TTL, state: 'queued' });
  const record = (await store.get(id))!;
  expect(record).not.toHaveProperty('expiresAt');
  expect(record).not.toHaveProperty('pk');
});
