import { monotonicFactory } from 'ulid';
import type { ConnectionIdentity } from '../../../lambdas/domain/connection-lifecycle';
import { GatewayError } from '../../../lambdas/domain/errors';
import type { SendFrame } from '../../../lambdas/domain/frames';
import { sendMessage, type SendDeps } from '../../../lambdas/domain/send-message';
import {
  connectionRecord,
  fakeDeliveryDeps,
  FakeConnectionRegistry,
  FakeConnectionSender,
  FakeGroupDirectory,
  FakeMessageStore,
  FakeUplinkQueue,
  ManualClock,
} from '../../support/fakes';

const START = Date.UTC(2026, 0, 1, 12);

export async function setup() {
  const clock = new ManualClock(START);
  const registry = new FakeConnectionRegistry();
  const sender = new FakeConnectionSender();
  const messages = new FakeMessageStore(() => clock.nowMs());
  const uplink = new FakeUplinkQueue();
  const groups = new FakeGroupDirectory({ g1: ['u1', 'u2', 'u3'] });
  // u1 sends from c1 and has a second device c1b; u2 has two devices; u3 one; u4 is in no group.
  for (const [id, user] of [['c1', 'u1'], ['c1b', 'u1'], ['c2a', 'u2'], ['c2b', 'u2'], ['c3', 'u3'], ['c4', 'u4']] as const) {
    await registry.put(connectionRecord(id, user, START - 60_000));
  }
  const caller = (connectionId: string, userId: string): ConnectionIdentity => ({ connectionId, userId, deviceId: `${connectionId}-device`, connectedAt: START - 60_000 });
  const nextUlid = monotonicFactory();
  let attempts = 0;
  const deps = (): SendDeps => ({
    messages,
    groups,
    uplink,
    registry,
    delivery: fakeDeliveryDeps(sender, registry),
    clock,
    newMsgId: (nowMs) => nextUlid(nowMs),
    newAttemptId: () => `attempt-${++attempts}`,
    // Waiting moves the manual clock and yields, so concurrent attempts interleave.
    sleep: async (ms) => {
      clock.advance(ms);
      await new Promise((resolve) => setImmediate(resolve));
    },
    dedupWindowSeconds: 300,
  });
  return { clock, registry, sender, messages, uplink, groups, caller, deps };
}

const toUser = (id?: string): SendFrame => ({ action: 'send', id, to: { user: 'u2' }, body: { text: 'hi' } });

describe('sendMessage to a user', () => {
  it('queues the message, acks first, then delivers to the recipient and the sender’s other devices', async () => {
    const { sender, uplink, caller, deps } = await setup();
    const me = caller('c1', 'u1');

    const result = await sendMessage(deps(), me, toUser('c-1'));

    expect(uplink.enqueued).toEqual([
      { msgId: result.msgId, from: 'u1', fromDevice: 'c1-device', fromConnection: 'c1', to: { user: 'u2' }, body: { text: 'hi' }, ts: START },
    ]);
    expect(result).toMatchObject({ ts: START, duplicate: false, delivery: { targeted: 3, delivered: 3, gone: 0, failed: 0 } });

    // The ack is the very first post; every delivery comes after it.
    expect(sender.posts[0]!.connectionId).toBe('c1');
    expect(JSON.parse(sender.posts[0]!.data)).toEqual({ type: 'ack', id: 'c-1', msgId: result.msgId, ts: START });

    const messageFrame = { type: 'message', msgId: result.msgId, from: 'u1', to: { user: 'u2' }, body: { text: 'hi' }, ts: START };
    expect(sender.recipients()).toEqual(['c1', 'c1b', 'c2a', 'c2b']);
    for (const id of ['c1b', 'c2a', 'c2b']) expect(sender.framesTo(id)).toEqual([messageFrame]);
    // The sending connection gets only the ack; outsiders get nothing.
    expect(sender.framesTo('c1')).toEqual([{ type: 'ack', id: 'c-1', msgId: result.msgId, ts: START }]);
  });

  it('acks without an id when the frame had none and does no de-duplication', async () => {
    const { sender, uplink, messages, caller, deps } = await setup();
    const me = caller('c1', 'u1');
    const first = await sendMessage(deps(), me, toUser());
    const second = await sendMessage(deps(), me, toUser());
    expect(first.msgId).not.toBe(second.msgId);
    expect(uplink.enqueued).toHaveLength(2);
    expect(messages.claims.size).toBe(0);
    expect(sender.framesTo('c1')[0]).toEqual({ type: 'ack', msgId: first.msgId, ts: START });
  });

  it('refuses a reply to a WeChat user from a non-agent with forbidden, and a bad body from an agent with bad_request; queues nothing', async () => {
    const { sender, uplink, caller, deps, groups } = await setup();
    const me = caller('c1', 'u1');
    const reply = (body: SendFrame['body']): SendFrame => ({ action: 'send', to: { wechat: { accountId: 'acc', openId: 'o1' } }, body });
    await expect(sendMessage(deps(), me, reply({ text: 'hi' }))).rejects.toMatchObject({ code: 'forbidden', message: expect.stringContaining('wechat:acc') });
    await groups.addMembers('wechat:acc', ['u1']);
    for (const body of [1, { text: '' }, { msgtype: 'image' }, { text: 'x', touser: 'o2' }]) {
      await expect(sendMessage(deps(), me, reply(body))).rejects.toMatchObject({ code: 'bad_request' });
    }
    expect(uplink.attempts).toEqual([]);
    expect(sender.posts).toEqual([]);
  });

  it("queues an agent's reply to a WeChat user and delivers it live to the other agents and the sender's other devices", async () => {
    const { sender, uplink, caller, deps, groups } = await setup();
    await groups.addMembers('wechat:acc', ['u1', 'u2']);
    const result = await sendMessage(deps(), caller('c1', 'u1'), { action: 'send', id: 'w2', to: { wechat: { accountId: 'acc', openId: 'o1' } }, body: { text: 'hi' } });
    expect(uplink.enqueued.map((m) => m.to)).toEqual([{ wechat: { accountId: 'acc', openId: 'o1' } }]);
    const messageTargets = sender.posts.filter((p) => JSON.parse(p.data).type === 'message').map((p) => p.connectionId).sort();
    expect(messageTargets).toEqual(['c1b', 'c2a', 'c2b']);
    expect(result.duplicate).toBe(false);
  });
});

describe('sendMessage to a group', () => {
  it('refuses a non-member with forbidden and queues nothing', async () => {
    const { sender, uplink, caller, deps } = await setup();
    const outsider = caller('c4', 'u4');
    const frame: SendFrame = { action: 'send', id: 'x', to: { group: 'g1' }, body: 1 };
    const failure = sendMessage(deps(), outsider, frame);
    await expect(failure).rejects.toBeInstanceOf(GatewayError);
    await expect(failure).rejects.toMatchObject({ code: 'forbidden' });
    expect(uplink.attempts).toEqual([]);
    expect(sender.posts).toEqual([]);
  });

  it('delivers to every member’s devices except the sending connection', async () => {
    const { sender, uplink, caller, deps } = await setup();
    const me = caller('c1', 'u1');
    const result = await sendMessage(deps(), me, { action: 'send', id: 'g-1', to: { group: 'g1' }, body: 'hello' });
    expect(uplink.enqueued.map((m) => m.to)).toEqual([{ group: 'g1' }]);
    expect(sender.recipients()).toEqual(['c1', 'c1b', 'c2a', 'c2b', 'c3']);
    for (const id of ['c1b', 'c2a', 'c2b', 'c3']) expect(sender.framesTo(id)).toEqual([expect.objectContaining({ type: 'message', msgId: result.msgId, to: { group: 'g1' } })]);
    expect(sender.framesTo('c1').map((f) => f.type)).toEqual(['ack']);
    expect(sender.framesTo('c4')).toEqual([]);
  });
});

describe('sendMessage retries (same client id)', () => {
  it('answers a retry of a queued message with the same msgId and nothing new queued or delivered', async () => {
    const { sender, uplink, clock, caller, deps } = await setup();
    const me = caller('c1', 'u1');
    const first = await sendMessage(deps(), me, toUser('c-1'));
    const postsAfterFirst = sender.posts.length;

    clock.advance(2000);
    const retry = await sendMessage(deps(), me, { ...toUser('c-1'), body: 'a different body' });

    expect(retry).toEqual({ msgId: first.msgId, ts: first.ts, duplicate: true, delivery: undefined, afterAckFailures: [] });
    expect(uplink.attempts).toHaveLength(1);
    expect(sender.posts.slice(postsAfterFirst).map((p) => [p.connectionId, JSON.parse(p.data)])).toEqual([
      ['c1', { type: 'ack', id: 'c-1', msgId: first.msgId, ts: first.ts }],
    ]);
  });

  it('re-queues with the SAME msgId when the first attempt failed before the queue had it', async () => {
    const { sender, uplink, clock, caller, deps } = await setup();
    const me = caller('c1', 'u1');
    uplink.failNext(new Error('SQS unavailable'));

    await expect(sendMessage(deps(), me, toUser('c-1'))).rejects.toThrow('SQS unavailable');
    const firstMsgId = uplink.attempts[0]!.msgId;
    expect(sender.posts).toEqual([]);

    clock.advance(3000);
    const retry = await sendMessage(deps(), me, toUser('c-1'));

    expect(retry.msgId).toBe(firstMsgId);
    expect(retry.ts).toBe(START); // the first attempt's ts, not the retry's
    expect(retry.duplicate).toBe(false);
    expect(uplink.enqueued.map((m) => [m.msgId, m.ts])).toEqual([[firstMsgId, START]]);
    expect(sender.framesTo('c1')).toEqual([{ type: 'ack', id: 'c-1', msgId: firstMsgId, ts: START }]);
    expect(sender.framesTo('c2a')).toEqual([expect.objectContaining({ msgId: firstMsgId })]);

    // And once it is queued, a third attempt is a plain duplicate.
    const third = await sendMessage(deps(), me, toUser('c-1'));
    expect(third).toMatchObject({ msgId: firstMsgId, duplicate: true });
    expect(uplink.enqueued).toHaveLength(1);
  });

  it('treats the same id after the window as a new message', async () => {
    const { uplink, clock, caller, deps } = await setup();
    const me = caller('c1', 'u1');
    const first = await sendMessage(deps(), me, toUser('c-1'));
    clock.advance(301_000);
    const later = await sendMessage(deps(), me, toUser('c-1'));
    expect(later.msgId).not.toBe(first.msgId);
    expect(later.duplicate).toBe(false);
    expect(uplink.enqueued).toHaveLength(2);
  });

  it('does not share ids between users', async () => {
    const { uplink, caller, deps } = await setup();
    const u1 = caller('c1', 'u1');
    const u3 = caller('c3', 'u3');
    const a = await sendMessage(deps(), u1, toUser('same'));
    const b = await sendMessage(deps(), u3, toUser('same'));
    expect(a.msgId).not.toBe(b.msgId);
    expect(uplink.enqueued).toHaveLength(2);
  });

  it('leaves connections opened after the message ts to the persister', async () => {
    const { registry, sender, caller, deps } = await setup();
    await registry.put(connectionRecord('c2-later', 'u2', START + 1));
    await registry.put(connectionRecord('c2-at-ts', 'u2', START));

    const result = await sendMessage(deps(), caller('c1', 'u1'), toUser('c-9'));

    expect(sender.recipients()).toContain('c2-at-ts');
    expect(sender.recipients()).not.toContain('c2-later');
    expect(result.delivery).toEqual({ targeted: 4, delivered: 4, gone: 0, failed: 0 });
  });

  it('propagates an enqueue failure with no ack and no delivery', async () => {
    const { sender, uplink, caller, deps } = await setup();
    const me = caller('c1', 'u1');
    uplink.failNext(new Error('boom'));
    await expect(sendMessage(deps(), me, toUser())).rejects.toThrow('boom');
    expect(uplink.enqueued).toEqual([]);
    expect(sender.posts).toEqual([]);
  });
});
