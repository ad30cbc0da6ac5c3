/**
 * The MessageStore contract, run twice: against the DynamoDB adapter on DynamoDB Local and
 * against the in-memory fake the unit tests use. A fake that is kinder than DynamoDB hides bugs
 * (an unconditional update that re-creates an expired claim did, once), so every behaviour the
 * domain relies on is pinned here for both.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { encodeTime, monotonicFactory, ulid } from 'ulid';
import { DynamoMessageStore } from '../../lambdas/adapters/dynamo-message-store';
import { systemClock } from '../../lambdas/domain/clock';
import { MAX_BODY_BYTES, type MessageFrame } from '../../lambdas/domain/frames';
import { RESUME_OVERLAP_MS } from '../../lambdas/domain/inbox-position';
import { syncInbox, type SyncDeps } from '../../lambdas/domain/inbox-sync';
import { WriteDeadlineError, type ClientIdClaim, type MessageStore } from '../../lambdas/domain/messaging-ports';
import { startDynamoEngine, type DynamoEngine } from '../../local/dynamodb-engine';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../local/local-names';
import { FakeMessageStore } from '../support/fakes';

let engine: DynamoEngine;
let ddb: DynamoDBDocumentClient;

beforeAll(async () => {
  engine = await startDynamoEngine({ logger: () => undefined });
  ddb = DynamoDBDocumentClient.from(engine.client);
}, 60_000);

afterAll(async () => {
  await engine?.stop();
});

const NOW = Date.now();
const NOW_S = Math.floor(NOW / 1000);
const nextUlid = monotonicFactory();
let unique = 0;
const fresh = (prefix: string) => `${prefix}-${++unique}-${Math.random().toString(36).slice(2, 8)}`;
const claim = (owner: string, overrides: Partial<ClientIdClaim> = {}): ClientIdClaim => ({
  msgId: nextUlid(),
  ts: NOW,
  state: 'pending',
  owner,
  leaseUntil: NOW + 35_000,
  ...overrides,
});
const frame = (msgId: string): MessageFrame => ({ type: 'message', msgId, from: 'a', to: { user: 'b' }, body: { text: '😀 \uFFFE', n: 1e308 }, ts: NOW });
/** The reply budget of `sync`, and a frame with the largest body (32 KiB serialized). */
const BUDGET = 120 * 1024;
const largest = (msgId: string): MessageFrame => ({ ...frame(msgId), body: 'b'.repeat(MAX_BODY_BYTES - 2) });

const stores: Array<[string, () => MessageStore]> = [
  ['DynamoDB adapter on DynamoDB Local', () => new DynamoMessageStore(ddb, engine.tableNames.messages)],
  ['in-memory fake', () => new FakeMessageStore()],
];

describe.each(stores)('MessageStore contract: %s', (_name, make) => {
  let store: MessageStore;
  beforeAll(() => {
    store = make();
  });

  describe('client-id claims', () => {
    it('the first claim wins; a second finds it, whoever asks', async () => {
      const [user, id] = [fresh('u'), fresh('c')];
      const first = claim('a1');
      await expect(store.claimClientId(user, id, first, NOW_S + 300, NOW)).resolves.toBeUndefined();
      await expect(store.claimClientId(user, id, claim('a2'), NOW_S + 300, NOW)).resolves.toEqual(first);
      await expect(store.getClientIdClaim(user, id, NOW)).resolves.toEqual(first);
    });

    it('an expired claim (not yet deleted by TTL) is invisible and free to take again', async () => {
      const [user, id] = [fresh('u'), fresh('c')];
      await store.claimClientId(user, id, claim('a1'), NOW_S - 1, NOW);
      await expect(store.getClientIdClaim(user, id, NOW)).resolves.toBeUndefined();
      const second = claim('a2');
      await expect(store.claimClientId(user, id, second, NOW_S + 300, NOW)).resolves.toBeUndefined();
      await expect(store.getClientIdClaim(user, id, NOW)).resolves.toEqual(second);
    });

    it('markClientIdQueued only by the owner, and never creates a missing row', async () => {
      const [user, id] = [fresh('u'), fresh('c')];
      await expect(store.markClientIdQueued(user, id, 'a1')).resolves.toBe(false);
      await expect(store.getClientIdClaim(user, id, NOW)).resolves.toBeUndefined();
      await expect(store.claimClientId(user, id, claim('a1'), NOW_S + 300, NOW)).resolves.toBeUndefined();
      await expect(store.markClientIdQueued(user, id, 'intruder')).resolves.toBe(false);
      await expect(store.markClientIdQueued(user, id, 'a1')).resolves.toBe(true);
      await expect(store.getClientIdClaim(user, id, NOW)).resolves.toMatchObject({ state: 'queued', owner: 'a1' });
    });

    it('takeOver moves a pending claim from its owner only; a queued claim cannot be taken', async () => {
      const [user, id] = [fresh('u'), fresh('c')];
      await store.claimClientId(user, id, claim('a1'), NOW_S + 300, NOW);
      await expect(store.takeOverClientId(user, id, 'not-the-owner', 'a2', NOW + 1)).resolves.toBe(false);
      await expect(store.takeOverClientId(user, id, 'a1', 'a2', NOW + 1)).resolves.toBe(true);
      await expect(store.getClientIdClaim(user, id, NOW)).resolves.toMatchObject({ owner: 'a2', leaseUntil: NOW + 1, state: 'pending' });
      await expect(store.markClientIdQueued(user, id, 'a1')).resolves.toBe(false); // the old owner lost it
      await store.markClientIdQueued(user, id, 'a2');
      await expect(store.takeOverClientId(user, id, 'a2', 'a3', NOW + 2)).resolves.toBe(false);
    });

    it('release ends the lease of the owner only', async () => {
      const [user, id] = [fresh('u'), fresh('c')];
      await store.claimClientId(user, id, claim('a1'), NOW_S + 300, NOW);
      await expect(store.releaseClientId(user, id, 'a2')).resolves.toBe(false);
      await expect(store.releaseClientId(user, id, 'a1')).resolves.toBe(true);
      await expect(store.getClientIdClaim(user, id, NOW)).resolves.toMatchObject({ leaseUntil: 0 });
      await expect(store.releaseClientId(fresh('u'), id, 'a1')).resolves.toBe(false); // no row: nothing created
    });
  });

  describe('storing state', () => {
    it('beginStore accumulates positions and freezes the first audience; chunks are recorded once', async () => {
      const msgId = nextUlid();
      const [p1, p2] = [nextUlid(), nextUlid()];
      const first = await store.beginStore(msgId, ['b', 'a'], p1, NOW_S + 600);
      expect(first).toEqual({ positions: [p1], audience: ['b', 'a'] });
      await expect(store.getMessageState(msgId)).resolves.toEqual({ msgId, state: 'storing', positions: [p1], audience: ['b', 'a'], chunksDone: {} });
      await expect(store.markChunkStored(msgId, 0, p1, NOW_S + 600)).resolves.toBe(true);
      await expect(store.markChunkStored(msgId, 0, p2, NOW_S + 600)).resolves.toBe(false);
      await expect(store.markChunkStored(msgId, 11, p1, NOW_S + 600)).resolves.toBe(true);
      const second = await store.beginStore(msgId, ['c'], p2, NOW_S + 600);
      expect(second).toEqual({ positions: [p1, p2], audience: ['b', 'a'] });
      await expect(store.getMessageState(msgId)).resolves.toEqual({ msgId, state: 'storing', ...second, chunksDone: { 0: p1, 11: p1 } });
      await store.markStored(msgId);
      await expect(store.getMessageState(msgId)).resolves.toEqual({ msgId, state: 'stored', ...second, chunksDone: { 0: p1, 11: p1 } });
      await expect(store.getMessageState(nextUlid())).resolves.toBeUndefined();
    });

    it('a write past its deadline sends nothing', async () => {
      const user = fresh('u');
      const msgId = nextUlid();
      await expect(store.putInboxRows([user], nextUlid(), frame(msgId), NOW_S + 600, Date.now() - 1)).rejects.toBeInstanceOf(WriteDeadlineError);
      await expect(store.readInbox(user, undefined, 10, BUDGET, Date.now())).resolves.toEqual({ rows: [], more: false });
    });

    it('inbox rows round-trip exactly, sort by position, skip expired rows, page with more', async () => {
      const user = fresh('u');
      const positions = [nextUlid(), nextUlid(), nextUlid(), nextUlid()];
      const ids = positions.map(() => nextUlid());
      for (const [i, p] of positions.entries()) {
        await store.putInboxRows([user], p, frame(ids[i]!), i === 1 ? NOW_S - 1 : NOW_S + 600, Date.now() + 60_000);
      }
      const all = await store.readInbox(user, undefined, 10, BUDGET, NOW);
      expect(all.rows.map((r) => r.position)).toEqual([positions[0], positions[2], positions[3]]);
      expect(all.rows[0]!.frame).toEqual(frame(ids[0]!));
      expect(all.more).toBe(false);
      await expect(store.readInbox(user, positions[0], 1, BUDGET, NOW)).resolves.toEqual({ rows: [{ position: positions[2], frame: frame(ids[2]!) }], more: true });
      await store.deleteInboxRows([user], positions[2]!);
      expect((await store.readInbox(user, undefined, 10, BUDGET, NOW)).rows.map((r) => r.position)).toEqual([positions[0], positions[3]]);
    });
  });

  describe('inbox reads for sync', () => {
    it('stop at the first row that does not fit the byte budget, which proves more; the next read starts right after the last row', async () => {
      const user = fresh('u');
      const positions = Array.from({ length: 10 }, () => nextUlid());
      for (const p of positions) await store.putInboxRows([user], p, largest(nextUlid()), NOW_S + 600, Date.now() + 60_000);
      const first = await store.readInbox(user, undefined, 500, BUDGET, NOW);
      expect(first.rows.map((r) => r.position)).toEqual(positions.slice(0, 3));
      expect(first.more).toBe(true);
      const second = await store.readInbox(user, positions[2], 500, BUDGET, NOW);
      expect(second.rows.map((r) => r.position)).toEqual(positions.slice(3, 6));
      await expect(store.readInbox(user, positions[8], 500, BUDGET, NOW)).resolves.toMatchObject({ rows: [{ position: positions[9] }], more: false });
      // A row larger than the whole budget still comes back, alone.
      await expect(store.readInbox(user, undefined, 500, 1000, NOW)).resolves.toMatchObject({ rows: [{ position: positions[0] }], more: true });
    });

    it("start after a floor that is no row's position: the rows of its millisecond and later, nothing below", async () => {
      const user = fresh('u');
      const at = NOW - 3_600_000;
      const floor = encodeTime(at) + '0'.repeat(16);
      const positions = [ulid(at - 1), ulid(at), ulid(at + 1)];
      for (const p of positions) await store.putInboxRows([user], p, frame(nextUlid()), NOW_S + 600, Date.now() + 60_000);
      expect((await store.readInbox(user, floor, 10, BUDGET, NOW)).rows.map((r) => r.position)).toEqual(positions.slice(1));
      await expect(store.readInbox(user, encodeTime(at + 2) + '0'.repeat(16), 10, BUDGET, NOW)).resolves.toEqual({ rows: [], more: false });
    });
  });
});

describe("what one sync costs on DynamoDB Local, in DynamoDB's own ConsumedCapacity", () => {
  let units = 0;
  let reader: DynamoMessageStore;
  let writer: DynamoMessageStore;
  beforeAll(() => {
    // A client of its own, for the reads only: every request asks for ConsumedCapacity and adds it up.
    const client = new DynamoDBClient({ endpoint: engine.endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
    client.middlewareStack.add(
      (next) => async (args) => {
        (args.input as { ReturnConsumedCapacity?: string }).ReturnConsumedCapacity = 'TOTAL';
        const result = await next(args);
        units += (result.output as { ConsumedCapacity?: { CapacityUnits?: number } }).ConsumedCapacity?.CapacityUnits ?? 0;
        return result;
      },
      { step: 'initialize', name: 'sumConsumedCapacity' },
    );
    reader = new DynamoMessageStore(DynamoDBDocumentClient.from(client), engine.tableNames.messages);
    writer = new DynamoMessageStore(ddb, engine.tableNames.messages);
  });
  const syncDeps = (): SyncDeps => ({ messages: reader, groups: { isMember: async () => false }, clock: systemClock, overlapMs: RESUME_OVERLAP_MS, maxReplyBytes: BUDGET, inboxTtlSeconds: 7 * 86_400 });
  const unitsOf = async <T>(run: () => Promise<T>) => {
    const before = units;
    const result = await run();
    return { result, units: units - before };
  };
  const putAll = async (user: string, rows: Array<[string, MessageFrame, number]>) => {
    for (let i = 0; i < rows.length; i += 25) {
      await Promise.all(rows.slice(i, i + 25).map(([position, f, expiresAt]) => writer.putInboxRows([user], position, f, expiresAt, Date.now() + 60_000)));
    }
  };

  it('limit=500 over 32 KiB bodies: four rows, eventually consistent, not the 4,040 units of reading 501 rows', async () => {
    const user = fresh('u');
    const ids = Array.from({ length: 520 }, () => nextUlid());
    await putAll(user, ids.map((id) => [nextUlid(), largest(id), NOW_S + 600]));

    const { result, units: used } = await unitsOf(() => syncInbox(syncDeps(), user, { action: 'sync', limit: 500 }));
    expect(result.messages.map((m) => m.msgId)).toEqual(ids.slice(0, 3));
    expect(result.next).not.toBeNull();
    // Four rows of about 32.1 KB, eventually consistent: ceil(128.5 KB / 4 KB) / 2 = 16.5 units
    // (33 strongly consistent). Reading limit + 1 rows, strongly consistent, cost 4,040.
    expect(used).toBeLessThanOrEqual(17);
  });

  it('without after, rows older than the inbox TTL (not yet deleted) are not read', async () => {
    const user = fresh('u');
    const old = NOW - 8 * 86_400_000;
    await putAll(user, Array.from({ length: 50 }, (_, i) => [ulid(old + i), largest(ulid(old + i)), Math.floor(old / 1000) + 7 * 86_400] as [string, MessageFrame, number]));
    const live = nextUlid();
    await writer.putInboxRows([user], nextUlid(), frame(live), NOW_S + 600, Date.now() + 60_000);

    const { result, units: used } = await unitsOf(() => syncInbox(syncDeps(), user, { action: 'sync' }));
    expect(result.messages.map((m) => m.msgId)).toEqual([live]);
    // One small row: half a unit. Reading the expired rows first would cost 8.5 units for each 4 of them.
    expect(used).toBe(0.5);
  });
});

it('DynamoDB Local really refuses the unconditional re-creation the old code did (the row stays absent)', async () => {
  const store = new DynamoMessageStore(ddb, engine.tableNames.messages);
  const [user, id] = [fresh('u'), fresh('c')];
  await store.markClientIdQueued(user, id, 'a1');
  const { Item } = await ddb.send(new GetCommand({ TableName: engine.tableNames.messages, Key: { pk: `dedup#${user}#${id}`, sk: 'dedup' }, ConsistentRead: true }));
  expect(Item).toBeUndefined();
});

it('on DynamoDB Local the message row holds no frame, and chunks and `stored` leave it as it was but for the state', async () => {
  const store = new DynamoMessageStore(ddb, engine.tableNames.messages);
  const msgId = nextUlid();
  const position = nextUlid();
  const get = async (sk: string) => (await ddb.send(new GetCommand({ TableName: engine.tableNames.messages, Key: { pk: `msg#${msgId}`, sk }, ConsistentRead: true }))).Item;
  await store.beginStore(msgId, ['a', 'b'], position, NOW_S + 600);
  const begun = await get('msg');
  await store.markChunkStored(msgId, 0, position, NOW_S + 600);
  expect(await get('msg')).toEqual(begun);
  expect(await get('chunk#0')).toEqual({ pk: `msg#${msgId}`, sk: 'chunk#0', position, expiresAt: NOW_S + 600 });
  await store.markStored(msgId);
  expect(await get('msg')).toEqual({ ...begun, state: 'stored' });
  expect(Object.keys(begun ?? {}).sort()).toEqual(['audience', 'expiresAt', 'pk', 'positions', 'sk', 'state']);
});
