/**
 * What the send path reads and writes (issue 12): membership read once per message, connection
 * lookups bounded by connectedAt, the message row written only where it must be, and group
 * sends too large for the send route delivered by a fan-out job the persister starts once.
 */
import { monotonicFactory } from 'ulid';
import { toSqsBody } from '../../../lambdas/adapters/sqs-uplink-queue';
import { adminPush, type AdminPushDeps } from '../../../lambdas/domain/admin-push';
import type { ConnectionIdentity } from '../../../lambdas/domain/connection-lifecycle';
import { runFanoutTask, type FanoutDeps } from '../../../lambdas/domain/fanout';
import { MAX_ROW_WRITE_AGE_MS } from '../../../lambdas/domain/inbox-position';
import { MAX_BODY_BYTES } from '../../../lambdas/domain/frames';
import { MAX_CARRIED_AUDIENCE, type QueuedMessage } from '../../../lambdas/domain/messaging-ports';
import { parseQueuedMessage } from '../../../lambdas/domain/queued-message';
import { persistMessage, STORE_CHUNK_SIZE, type PersistDeps } from '../../../lambdas/domain/persist-message';
import { sendMessage, type SendDeps } from '../../../lambdas/domain/send-message';
import { queues } from '../../../lib/gateway-declaration';
import {
  connectionRecord,
  fakeDeliveryDeps,
  FakeConditionalCheckFailed,
  FakeConnectionRegistry,
  FakeConnectionSender,
  FakeFanoutQueue,
  FakeGroupDirectory,
  FakeJobStore,
  FakeMessageStore,
  FakeUplinkQueue,
  ManualClock,
} from '../../support/fakes';

const T0 = Date.UTC(2026, 0, 1, 12);
const INLINE_MAX = 5;

function world(groups: Record<string, string[]>) {
  const clock = new ManualClock(T0);
  const messages = new FakeMessageStore(() => clock.nowMs());
  const registry = new FakeConnectionRegistry();
  const sender = new FakeConnectionSender();
  const uplink = new FakeUplinkQueue();
  const directory = new FakeGroupDirectory(groups);
  const jobs = new FakeJobStore();
  const fanoutQueue = new FakeFanoutQueue();
  const nextUlid = monotonicFactory();
  const send: SendDeps = {
    messages,
    groups: directory,
    uplink,
    registry,
    delivery: fakeDeliveryDeps(sender, registry),
    clock,
    newMsgId: (nowMs) => nextUlid(nowMs),
    newAttemptId: () => 'attempt',
    sleep: async () => undefined,
    dedupWindowSeconds: 300,
    inlineMaxMembers: INLINE_MAX,
  };
  const persist: PersistDeps = {
    messages,
    groups: directory,
    registry,
    delivery: fakeDeliveryDeps(sender, registry),
    clock,
    newPosition: (nowMs) => nextUlid(nowMs),
    inboxTtlSeconds: 7 * 86_400,
    fanout: { jobs, queue: fanoutQueue },
  };
  const fanout: FanoutDeps = { jobs, queue: fanoutQueue, registry, delivery: fakeDeliveryDeps(sender, registry), clock };
  /** Runs the fan-out queue dry, one task at a time, as the worker would. */
  const drainFanout = async () => {
    while (fanoutQueue.tasks.length > 0) await runFanoutTask(fanout, fanoutQueue.tasks.shift()!);
  };
  const caller = (connectionId: string, userId: string): ConnectionIdentity => ({ connectionId, userId, deviceId: `${connectionId}-d`, connectedAt: T0 - 60_000 });
  const messageFramesTo = (connectionId: string) => sender.framesTo(connectionId).filter((f) => f.type === 'message');
  return { clock, messages, registry, sender, uplink, directory, jobs, fanoutQueue, send, persist, drainFanout, caller, messageFramesTo };
}

const members = (n: number, prefix = 'm') => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(4, '0')}`);

describe('membership is read once per message', () => {
  it('a group send reads the members once, in send; the persister stores that audience without reading it again', async () => {
    const w = world({ g: ['a', 'b', 'c'] });
    const result = await sendMessage(w.send, w.caller('a-1', 'a'), { action: 'send', to: { group: 'g' }, body: 'x' });
    expect(w.directory.reads).toEqual(['members g']);
    const queued = w.uplink.enqueued[0]!;
    expect(queued.audience).toEqual(['a', 'b', 'c']);

    await persistMessage(w.persist, queued, 1);
    expect(w.directory.reads).toEqual(['members g']);
    for (const u of ['a', 'b', 'c']) expect(w.messages.inboxOf(u).map((r) => r.frame.msgId)).toEqual([result.msgId]);
  });

  it('the audience is the membership when the message was sent: a member added before it is stored gets no row, one removed keeps theirs', async () => {
    const w = world({ g: ['a', 'b', 'c'] });
    await sendMessage(w.send, w.caller('a-1', 'a'), { action: 'send', to: { group: 'g' }, body: 'x' });
    await w.directory.addMembers('g', ['late']);
    await w.directory.removeMembers('g', ['c']);
    await persistMessage(w.persist, w.uplink.enqueued[0]!, 1);
    expect(w.messages.inboxOf('late')).toEqual([]);
    expect(w.messages.inboxOf('c')).toHaveLength(1);
  });

  it('a non-member is refused after that one read, and nothing is queued', async () => {
    const w = world({ g: ['a', 'b'] });
    await expect(sendMessage(w.send, w.caller('z-1', 'z'), { action: 'send', to: { group: 'g' }, body: 'x' })).rejects.toMatchObject({ code: 'forbidden' });
    expect(w.directory.reads).toEqual(['members g']);
    expect(w.uplink.attempts).toEqual([]);
  });

  it('an agent’s reply to a WeChat user reads the agents once and carries them with the account inbox', async () => {
    const w = world({ 'wechat:acc': ['a', 'b'] });
    await sendMessage(w.send, w.caller('a-1', 'a'), { action: 'send', to: { wechat: { accountId: 'acc', openId: 'o1' } }, body: { text: 'hi' } });
    expect(w.directory.reads).toEqual(['members wechat:acc']);
    expect(w.uplink.enqueued[0]!.audience).toEqual(['a', 'b', 'wechat:acc']);
  });

  it('a send to a user reads no membership and carries no audience', async () => {
    const w = world({});
    await sendMessage(w.send, w.caller('a-1', 'a'), { action: 'send', to: { user: 'b' }, body: 'x' });
    await persistMessage(w.persist, w.uplink.enqueued[0]!, 1);
    expect(w.directory.reads).toEqual([]);
    expect(w.uplink.enqueued[0]!.audience).toBeUndefined();
  });

  it(`an audience over ${MAX_CARRIED_AUDIENCE} does not fit the queue message: the persister's first attempt reads it, and later attempts use the frozen one`, async () => {
    const big = members(MAX_CARRIED_AUDIENCE + 1);
    const w = world({ big });
    await sendMessage(w.send, w.caller('m0000-1', 'm0000'), { action: 'send', to: { group: 'big' }, body: 'x' });
    const queued = w.uplink.enqueued[0]!;
    expect(queued.audience).toBeUndefined();
    w.messages.hook = (method) => {
      if (method === 'markStored') throw new Error('crash before stored');
    };
    await expect(persistMessage(w.persist, queued, 1)).rejects.toThrow('crash');
    w.messages.hook = () => undefined;
    await persistMessage(w.persist, queued, 2);
    expect(w.directory.reads).toEqual(['members big', 'members big']);
  });

  it('an admin push to a group carries the members it read: the persister reads nothing', async () => {
    const w = world({ g: ['a', 'b'] });
    const deps: AdminPushDeps = { ...w.send, jobs: w.jobs, queue: w.fanoutQueue, newJobId: () => 'job-1' };
    await adminPush(deps, 'k1', { group: 'g' }, 'hello');
    const queued = w.uplink.enqueued[0]!;
    expect(queued.audience).toEqual(['a', 'b']);
    await persistMessage(w.persist, queued, 1);
    expect(w.directory.reads).toEqual(['members g']);
    expect(w.messages.inboxOf('a')).toHaveLength(1);
  });
});

describe('the carried audience fits an SQS message', () => {
  const longId = (i: number) => `${i}-`.padEnd(128, 'x');
  // The body that grows most on the queue: characters above U+FFFF, 4 bytes each, escaped as 12.
  const emoji = '\u{1F600}'.repeat(Math.floor((MAX_BODY_BYTES - 2) / 4));
  const worst: QueuedMessage = {
    msgId: monotonicFactory()(T0),
    from: longId(0),
    fromDevice: 'd'.repeat(128),
    fromConnection: 'c'.repeat(64),
    to: { group: 'g'.repeat(128) },
    body: emoji,
    ts: T0,
    audience: Array.from({ length: MAX_CARRIED_AUDIENCE }, (_, i) => longId(i)),
    liveDelivery: 'fanout',
  };

  it(`${MAX_CARRIED_AUDIENCE} ids of 128 characters and a 32 KiB body of emoji stay under SQS's 256 KiB`, () => {
    expect(Buffer.byteLength(JSON.stringify(emoji), 'utf8')).toBeLessThanOrEqual(MAX_BODY_BYTES);
    const bytes = Buffer.byteLength(toSqsBody(worst), 'utf8');
    expect(bytes).toBeLessThan(256 * 1024);
    expect(parseQueuedMessage(toSqsBody(worst))).toEqual(worst);
  });

  it('the queue schema refuses a longer audience (the DLQ, not a truncated audience)', () => {
    expect(() => parseQueuedMessage(JSON.stringify({ ...worst, audience: [...worst.audience!, 'one-more'] }))).toThrow();
    expect(() => parseQueuedMessage(JSON.stringify({ ...worst, liveDelivery: 'inline' }))).toThrow();
  });
});

describe('connection lookups are bounded by connectedAt', () => {
  it('send asks for connections opened at or before ts, the persister for those opened after; each is posted once', async () => {
    const w = world({ g: ['a', 'b'] });
    await w.registry.put(connectionRecord('a-1', 'a', T0 - 60_000));
    await w.registry.put(connectionRecord('a-2', 'a', T0 - 1_000));
    await w.registry.put(connectionRecord('b-at-ts', 'b', T0));
    await w.registry.put(connectionRecord('b-after', 'b', T0 + 1));
    const result = await sendMessage(w.send, w.caller('a-1', 'a'), { action: 'send', to: { group: 'g' }, body: 'x' });
    expect(w.registry.lookups).toEqual([
      { userId: 'a', opened: { notAfter: T0 } },
      { userId: 'b', opened: { notAfter: T0 } },
    ]);
    expect(result.delivery).toMatchObject({ targeted: 2, delivered: 2 });

    w.registry.lookups.length = 0;
    w.clock.advance(500);
    await persistMessage(w.persist, w.uplink.enqueued[0]!, 1);
    expect(w.registry.lookups).toEqual([
      { userId: 'a', opened: { after: T0 } },
      { userId: 'b', opened: { after: T0 } },
    ]);
    expect(Object.fromEntries(['a-1', 'a-2', 'b-at-ts', 'b-after'].map((c) => [c, w.messageFramesTo(c).length]))).toEqual({ 'a-1': 0, 'a-2': 1, 'b-at-ts': 1, 'b-after': 1 });
  });

  it('a WeChat user’s message, which nobody posted live, is looked up over every connection', async () => {
    const w = world({ 'wechat:acc': ['agent'] });
    await w.registry.put(connectionRecord('agent-1', 'agent', T0 - 60_000));
    const callback: QueuedMessage = { msgId: monotonicFactory()(T0), from: 'wechat:acc:o1', fromDevice: 'wechat', fromConnection: '', to: { group: 'wechat:acc' }, body: 'hi', ts: T0, origin: 'wechat' };
    await persistMessage(w.persist, callback, 1);
    expect(w.registry.lookups).toEqual([
      { userId: 'agent', opened: {} },
      { userId: 'wechat:acc', opened: {} },
    ]);
    expect(w.messageFramesTo('agent-1')).toHaveLength(1);
  });
});

describe(`a group send to more than SEND_INLINE_MAX_MEMBERS (${INLINE_MAX} here) goes through a fan-out job`, () => {
  async function bigGroup() {
    const group = members(INLINE_MAX + 3);
    const w = world({ big: group });
    // Every member online, the sender with a second device; one member connects after the send.
    for (const u of group) await w.registry.put(connectionRecord(`${u}-1`, u, T0 - 60_000));
    await w.registry.put(connectionRecord('m0000-2', 'm0000', T0 - 30_000));
    const result = await sendMessage(w.send, w.caller('m0000-1', 'm0000'), { action: 'send', id: 'big-1', to: { group: 'big' }, body: 'all' });
    await w.registry.put(connectionRecord('m0001-late', 'm0001', T0 + 200));
    w.clock.advance(500);
    return { w, group, result, queued: w.uplink.enqueued[0]! };
  }
  const targets = (group: string[]) => [...group.map((u) => `${u}-1`).filter((c) => c !== 'm0000-1'), 'm0000-2', 'm0001-late'].sort();

  it('send acks and posts nothing else, looks up no connection, and queues the message for a job', async () => {
    const { w, result, queued } = await bigGroup();
    expect(w.sender.posts.map((p) => [p.connectionId, JSON.parse(p.data).type])).toEqual([['m0000-1', 'ack']]);
    expect(result.delivery).toBeUndefined();
    expect(w.registry.lookups).toEqual([]);
    expect(queued).toMatchObject({ liveDelivery: 'fanout', audience: members(INLINE_MAX + 3) });
  });

  it('the persister stores the rows, then starts one job (id = msgId) whose tasks post once to every connection of the audience but the sending one', async () => {
    const { w, group, result, queued } = await bigGroup();
    const persisted = await persistMessage(w.persist, queued, 1);
    expect(persisted).toMatchObject({ outcome: 'stored', jobId: result.msgId, lateDelivery: { targeted: 0 } });
    // No lookups in the persister: the job's tasks read each member's connections once.
    expect(w.registry.lookups).toEqual([]);
    expect(w.fanoutQueue.sent).toEqual([{ jobId: result.msgId, taskId: 'u0', kind: 'users', userIds: group, skipConnection: 'm0000-1' }]);
    expect(w.jobs.jobs.get(result.msgId)).toMatchObject({ msgId: result.msgId, tasksOpen: 1, state: 'queued', payload: JSON.stringify({ type: 'message', msgId: result.msgId, from: 'm0000', to: { group: 'big' }, body: 'all', ts: T0 }) });
    for (const u of group) expect(w.messages.inboxOf(u)).toHaveLength(1);

    await w.drainFanout();
    expect(w.sender.recipients().filter((c) => c !== 'm0000-1')).toEqual(targets(group));
    for (const c of targets(group)) expect(w.messageFramesTo(c).map((f) => f.msgId)).toEqual([result.msgId]);
    expect(w.messageFramesTo('m0000-1')).toEqual([]);
    expect(await w.jobs.getJob(result.msgId)).toMatchObject({ state: 'done', targeted: targets(group).length, delivered: targets(group).length });
  });

  it('a persister that dies after starting the job is redelivered: the same job, its tasks queued again, each connection posted once, counters exact', async () => {
    const { w, group, result, queued } = await bigGroup();
    w.messages.hook = (method) => {
      if (method === 'markStored') throw new Error('Task timed out');
    };
    await expect(persistMessage(w.persist, queued, 1)).rejects.toThrow('Task timed out');
    w.messages.hook = () => undefined;
    await expect(persistMessage(w.persist, queued, 2)).resolves.toMatchObject({ outcome: 'stored', jobId: result.msgId });
    expect(w.jobs.jobs.size).toBe(1);
    expect(w.fanoutQueue.sent.map((t) => t.taskId)).toEqual(['u0', 'u0']);
    await expect(persistMessage(w.persist, queued, 3)).resolves.toMatchObject({ outcome: 'duplicate' });
    expect(w.fanoutQueue.sent).toHaveLength(2);

    await w.drainFanout();
    for (const c of targets(group)) expect(w.messageFramesTo(c)).toHaveLength(1);
    expect(await w.jobs.getJob(result.msgId)).toMatchObject({ state: 'done', tasksOpen: 0, targeted: targets(group).length, delivered: targets(group).length });
    for (const u of group) expect(w.messages.inboxOf(u)).toHaveLength(1);
  });

  it('a job id taken by another message, or a store that fails, fails the attempt (SQS retries it) instead of being taken for this job', async () => {
    const { w, queued } = await bigGroup();
    await w.jobs.createJob({ jobId: queued.msgId, msgId: 'someone-else', payload: 'x', tasksOpen: 1, createdAt: T0 });
    await expect(persistMessage(w.persist, queued, 1)).rejects.toBeInstanceOf(FakeConditionalCheckFailed);
    w.jobs.jobs.clear();
    w.jobs.hook = (method) => {
      if (method === 'createJob') throw new Error('throttled');
    };
    await expect(persistMessage(w.persist, queued, 2)).rejects.toThrow('throttled');
    expect(w.fanoutQueue.sent).toEqual([]);
    await expect(persistMessage(w.persist, queued, 3)).rejects.toThrow('throttled');
    expect(await w.messages.getMessageState(queued.msgId)).toMatchObject({ state: 'storing' });
  });

  it('a queue that refuses the tasks fails the attempt; the retry queues them and the job still finishes', async () => {
    const { w, group, result, queued } = await bigGroup();
    w.fanoutQueue.failNextWith = new Error('SQS down');
    await expect(persistMessage(w.persist, queued, 1)).rejects.toThrow('SQS down');
    await persistMessage(w.persist, queued, 2);
    await w.drainFanout();
    expect(await w.jobs.getJob(result.msgId)).toMatchObject({ state: 'done', delivered: targets(group).length });
  });

  it(`an audience of exactly ${INLINE_MAX} is still posted inline`, async () => {
    const w = world({ g: members(INLINE_MAX) });
    for (const u of members(INLINE_MAX)) await w.registry.put(connectionRecord(`${u}-1`, u, T0 - 60_000));
    const result = await sendMessage(w.send, w.caller('m0000-1', 'm0000'), { action: 'send', to: { group: 'g' }, body: 'x' });
    expect(result.delivery).toMatchObject({ delivered: INLINE_MAX - 1 });
    expect(w.uplink.enqueued[0]!.liveDelivery).toBeUndefined();
    await persistMessage(w.persist, w.uplink.enqueued[0]!, 1);
    expect(w.jobs.jobs.size).toBe(0);
  });
});

describe('the message row is written only where it must be', () => {
  it('one beginStore, one record per chunk (never the row), one markStored; the row holds no frame', async () => {
    const group = members(60);
    const w = world({ g: group });
    const calls: string[] = [];
    w.messages.hook = (method) => void calls.push(method);
    await sendMessage(w.send, w.caller('m0000-1', 'm0000'), { action: 'send', to: { group: 'g' }, body: { text: 'x'.repeat(1000) } });
    calls.length = 0;
    await persistMessage(w.persist, w.uplink.enqueued[0]!, 1);
    const count = (m: string) => calls.filter((c) => c === m).length;
    const chunks = Math.ceil(group.length / STORE_CHUNK_SIZE);
    expect([count('getMessageState'), count('beginStore'), count('putInboxRows'), count('markChunkStored'), count('markStored'), count('deleteInboxRows')]).toEqual([1, 1, chunks, chunks, 1, 0]);
    expect(Object.keys(w.messages.messages.get(w.uplink.enqueued[0]!.msgId)!).sort()).toEqual(['audience', 'expiresAt', 'msgId', 'positions', 'state']);
  });
});

describe('a 5,000-member group is stored within the persister’s limits, across attempts', () => {
  const group = members(5_000);

  /** Each store call takes `ms` of the manual clock; returns the attempts it took and each attempt's span. */
  async function storeWith(ms: number) {
    const w = world({ big: group });
    await sendMessage(w.send, w.caller('m0000-1', 'm0000'), { action: 'send', to: { group: 'big' }, body: 'all' });
    const queued = w.uplink.enqueued[0]!;
    w.messages.hook = (method) => {
      if (method === 'putInboxRows' || method === 'deleteInboxRows' || method === 'markChunkStored') w.clock.advance(ms);
    };
    const spans: number[] = [];
    for (let attempt = 1; ; attempt++) {
      const started = w.clock.nowMs();
      const outcome = await persistMessage(w.persist, queued, attempt).then(
        () => 'stored',
        (err: Error) => err.name,
      );
      spans.push(w.clock.nowMs() - started);
      // Never two visible rows of the message for anyone, whatever attempt died where.
      expect(Math.max(...group.map((u) => w.messages.inboxOf(u).length))).toBeLessThanOrEqual(1);
      if (outcome === 'stored') break;
      expect(outcome).toBe('WriteDeadlineError');
      expect(attempt).toBeLessThan(10);
      w.clock.advance(queues.uplink.visibilityTimeoutSeconds * 1000);
    }
    for (const u of group) expect(w.messages.inboxOf(u)).toHaveLength(1);
    return { attempts: spans.length, spans };
  }

  it('at 20 ms a write (DynamoDB on a good day) one attempt stores it in about 8 s', async () => {
    const { attempts, spans } = await storeWith(20);
    expect(attempts).toBe(1);
    expect(spans[0]).toBe((5_000 / STORE_CHUNK_SIZE) * 2 * 20);
  });

  it('at 100 ms a write (throttled) attempts stop at the 20 s write deadline and converge in 3, fewer than the 5 receives before the DLQ', async () => {
    const { attempts, spans } = await storeWith(100);
    expect(attempts).toBe(3);
    expect(attempts).toBeLessThan(queues.uplink.maxReceiveCount);
    // No attempt runs far past the deadline: well inside the function's 60 s.
    for (const span of spans) expect(span).toBeLessThanOrEqual(MAX_ROW_WRITE_AGE_MS + 300);
  });
});
