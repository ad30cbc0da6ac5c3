/**
 * The MessageStore contract, run twice: against the DynamoDB adapter on DynamoDB Local and
 * against the in-memory fake the unit tests use. A fake that is kinder than DynamoDB hides bugs
 * (an unconditional update that re-creates an expired claim did, once), so every behaviour the
 * domain relies on is pinned here for both.
 */
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { monotonicFactory } from 'ulid';
import { DynamoMessageStore } from '../../lambdas/adapters/dynamo-message-store';
import type { MessageFrame } from '../../lambdas/domain/frames';
import { WriteDeadlineError, type ClientIdClaim, type MessageStore } from '../../lambdas/domain/messaging-ports';
import { startDynamoEngine, type DynamoEngine } from '../../local/dynamodb-engine';
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
      const first = await store.beginStore(frame(msgId), ['b', 'a'], p1, NOW_S + 600);
      expect(first).toEqual({ msgId, state: 'storing', positions: [p1], audience: ['b', 'a'], chunksDone: {} });
      await expect(store.markChunkStored(msgId, 0, p1)).resolves.toBe(true);
      await expect(store.markChunkStored(msgId, 0, p2)).resolves.toBe(false);
      const second = await store.beginStore(frame(msgId), ['c'], p2, NOW_S + 600);
      expect(second).toEqual({ msgId, state: 'storing', positions: [p1, p2], audience: ['b', 'a'], chunksDone: { 0: p1 } });
      await store.markStored(msgId);
      await expect(store.getMessageState(msgId)).resolves.toEqual({ ...second, state: 'stored' });
      await expect(store.getMessageState(nextUlid())).resolves.toBeUndefined();
    });

    it('a write past its deadline sends nothing', async () => {
      const user = fresh('u');
      const msgId = nextUlid();
      await expect(store.putInboxRows([user], nextUlid(), frame(msgId), NOW_S + 600, Date.now() - 1)).rejects.toBeInstanceOf(WriteDeadlineError);
      await expect(store.readInbox(user, undefined, 10, Date.now())).resolves.toEqual({ rows: [], more: false });
    });

    it('inbox rows round-trip exactly, sort by position, skip expired rows, page with more', async () => {
      const user = fresh('u');
      const positions = [nextUlid(), nextUlid(), nextUlid(), nextUlid()];
      const ids = positions.map(() => nextUlid());
      for (const [i, p] of positions.entries()) {
        await store.putInboxRows([user], p, frame(ids[i]!), i === 1 ? NOW_S - 1 : NOW_S + 600, Date.now() + 60_000);
      }
      const all = await store.readInbox(user, undefined, 10, NOW);
      expect(all.rows.map((r) => r.position)).toEqual([positions[0], positions[2], positions[3]]);
      expect(all.rows[0]!.frame).toEqual(frame(ids[0]!));
      expect(all.more).toBe(false);
      await expect(store.readInbox(user, positions[0], 1, NOW)).resolves.toEqual({ rows: [{ position: positions[2], frame: frame(ids[2]!) }], more: true });
      await store.deleteInboxRows([user], positions[2]!);
      expect((await store.readInbox(user, undefined, 10, NOW)).rows.map((r) => r.position)).toEqual([positions[0], positions[3]]);
    });
  });
});

it('DynamoDB Local really refuses the unconditional re-creation the old code did (the row stays absent)', async () => {
  const store = new DynamoMessageStore(ddb, engine.tableNames.messages);
  const [user, id] = [fresh('u'), fresh('c')];
  await store.markClientIdQueued(user, id, 'a1');
  const { Item } = await ddb.send(new GetCommand({ TableName: engine.tableNames.messages, Key: { pk: `dedup#${user}#${id}`, sk: 'dedup' }, ConsistentRead: true }));
  expect(Item).toBeUndefined();
});
