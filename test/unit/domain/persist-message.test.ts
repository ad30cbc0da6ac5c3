import { monotonicFactory, ulid } from 'ulid';
import type { QueuedMessage } from '../../../lambdas/domain/messaging-ports';
import { InjectedFaultError, persistMessage, type PersistDeps } from '../../../lambdas/domain/persist-message';
import {
  connectionRecord,
  fakeDeliveryDeps,
  FakeConnectionRegistry,
  FakeConnectionSender,
  FakeGroupDirectory,
  FakeMessageStore,
  ManualClock,
} from '../../support/fakes';

const SENT = Date.UTC(2026, 0, 1, 12);
const INBOX_TTL = 7 * 86_400;

export function setup(overrides: Partial<PersistDeps> = {}) {
  const clock = new ManualClock(SENT + 500);
  const messages = new FakeMessageStore(() => clock.nowMs());
  const groups = new FakeGroupDirectory({ g1: ['u2', 'u3'] });
  const registry = new FakeConnectionRegistry();
  const sender = new FakeConnectionSender();
  const nextPosition = monotonicFactory();
  const positions: string[] = [];
  const deps: PersistDeps = {
    messages,
    groups,
    registry,
    delivery: fakeDeliveryDeps(sender, registry),
    clock,
    newPosition: (nowMs) => {
      const position = nextPosition(nowMs);
      positions.push(position);
      return position;
    },
    inboxTtlSeconds: INBOX_TTL,
    ...overrides,
  };
  return { clock, messages, groups, registry, sender, deps, positions };
}

export const queued = (overrides: Partial<QueuedMessage> = {}): QueuedMessage => ({
  msgId: ulid(SENT),
  from: 'u1',
  fromDevice: 'phone',
  fromConnection: 'c1',
  to: { user: 'u2' },
  body: { text: 'hi' },
  ts: SENT,
  ...overrides,
});

const frameOf = (m: QueuedMessage) => ({ type: 'message', msgId: m.msgId, from: m.from, to: m.to, body: m.body, ts: m.ts });

describe('persistMessage', () => {
  it('stores one inbox row for the recipient and one for the sender at the new position', async () => {
    const { messages, deps, positions } = setup();
    const message = queued();

    const result = await persistMessage(deps, message, 1);

    expect(result.outcome).toBe('stored');
    expect(positions).toHaveLength(1);
    for (const user of ['u1', 'u2']) expect(messages.inboxOf(user)).toEqual([{ position: positions[0], frame: frameOf(message) }]);
    expect(messages.inboxes.has('u3')).toBe(false);
    expect(messages.inboxes.get('u2')!.get(positions[0]!)!.expiresAt).toBe(Math.floor(SENT / 1000) + INBOX_TTL);
    await expect(messages.getMessageState(message.msgId)).resolves.toEqual({
      msgId: message.msgId,
      positions: [positions[0]],
      state: 'stored',
      audience: ['u2', 'u1'],
      chunksDone: { 0: positions[0] },
    });
  });

  it('stores a group message for every member and the sender (even a sender outside the group)', async () => {
    const { messages, deps, positions } = setup();
    const message = queued({ to: { group: 'g1' } });
    await persistMessage(deps, message, 1);
    for (const user of ['u1', 'u2', 'u3']) expect(messages.inboxOf(user)).toEqual([{ position: positions[0], frame: frameOf(message) }]);
  });

  it('does nothing for a message already stored', async () => {
    const { messages, deps, clock, sender, registry } = setup();
    const message = queued();
    await persistMessage(deps, message, 1);
    const before = structuredClone([...messages.inboxes.entries()].map(([u, rows]) => [u, [...rows.entries()]]));
    await registry.put(connectionRecord('c2', 'u2', SENT));
    clock.advance(1000);

    const again = await persistMessage(deps, message, 2);

    expect(again).toEqual({ outcome: 'duplicate', lateDelivery: { targeted: 0, delivered: 0, gone: 0, failed: 0 } });
    expect([...messages.inboxes.entries()].map(([u, rows]) => [u, [...rows.entries()]])).toEqual(before);
    expect(sender.posts).toEqual([]);
  });

  it('after a fault half-way, the retry leaves exactly one row per member, at the new position', async () => {
    const { messages, deps, clock, positions } = setup({ injectFault: (_m, attempt) => attempt === 1 });
    const message = queued({ to: { group: 'g1' } });

    await expect(persistMessage(deps, message, 1)).rejects.toBeInstanceOf(InjectedFaultError);
    // The first attempt did write rows, and left the message `storing`.
    expect(messages.inboxOf('u2').map((r) => r.position)).toEqual([positions[0]]);
    await expect(messages.getMessageState(message.msgId)).resolves.toMatchObject({ state: 'storing', positions: [positions[0]] });

    clock.advance(5000);
    await expect(persistMessage(deps, message, 2)).resolves.toMatchObject({ outcome: 'stored' });

    expect(positions).toHaveLength(2);
    expect(positions[1]! > positions[0]!).toBe(true);
    for (const user of ['u1', 'u2', 'u3']) {
      const rows = messages.inboxOf(user).filter((r) => r.frame.msgId === message.msgId);
      expect(rows.map((r) => r.position)).toEqual([positions[1]]);
    }
    await expect(messages.getMessageState(message.msgId)).resolves.toMatchObject({ state: 'stored', positions: [positions[0], positions[1]] });
  });

  it('two attempts that die half-way leave no orphan rows once a third succeeds', async () => {
    const { messages, deps, clock, positions } = setup({ injectFault: (_m, attempt) => attempt <= 2 });
    const message = queued({ to: { group: 'g1' } });

    await expect(persistMessage(deps, message, 1)).rejects.toBeInstanceOf(InjectedFaultError);
    clock.advance(1000);
    await expect(persistMessage(deps, message, 2)).rejects.toBeInstanceOf(InjectedFaultError);
    // Attempt 2 deleted attempt 1's rows before writing its own: never two visible copies.
    expect(messages.inboxOf('u2').map((r) => r.position)).toEqual([positions[1]]);
    clock.advance(1000);
    await expect(persistMessage(deps, message, 3)).resolves.toMatchObject({ outcome: 'stored' });

    for (const user of ['u1', 'u2', 'u3']) {
      expect(messages.inboxOf(user).map((r) => r.position)).toEqual([positions[2]]);
    }
  });

  it('delivers late to audience connections opened after ts (send served the others), except the sending one', async () => {
    const { registry, sender, deps, clock } = setup();
    const message = queued();
    await registry.put(connectionRecord('c1', 'u1', SENT - 1000)); // the sending connection
    await registry.put(connectionRecord('c1-new', 'u1', SENT + 2000)); // sender's device opened after the send
    await registry.put(connectionRecord('c2-at-ts', 'u2', SENT)); // opened at ts: send's to serve
    await registry.put(connectionRecord('c2-recent', 'u2', SENT + 1));
    await registry.put(connectionRecord('c2-old', 'u2', SENT - 3000)); // send saw it
    await registry.put(connectionRecord('c3-new', 'u3', SENT + 1000)); // not in the audience
    clock.advance(5000);

    const result = await persistMessage(deps, message, 1);

    expect(sender.recipients()).toEqual(['c1-new', 'c2-recent']);
    expect(sender.framesTo('c2-recent')).toEqual([frameOf(message)]);
    expect(result.lateDelivery).toEqual({ targeted: 2, delivered: 2, gone: 0, failed: 0 });
  });
});
