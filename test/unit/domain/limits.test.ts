import { checkGroupSize, parseRequestBody } from '../../../lambdas/domain/admin-requests';
import { MAX_STORABLE_GROUP_MEMBERS, maxGroupMembers } from '../../../lambdas/runtime/config';
import { GatewayError } from '../../../lambdas/domain/errors';
import { admitSend, SEND_RATE_WINDOW_MS, type SendRateStore } from '../../../lambdas/domain/send-rate';
import { ManualClock } from '../../support/fakes';

/** Like the DynamoDB adapter: a conditional ADD per (user, window); counts every call it was asked. */
class FakeSendRateStore implements SendRateStore {
  readonly windows = new Map<string, { sends: number; expiresAt: number }>();
  calls = 0;
  async admit(userId: string, windowStartMs: number, allowance: number, expiresAt: number): Promise<boolean> {
    this.calls++;
    const key = `${userId}#${windowStartMs}`;
    const row = this.windows.get(key);
    if (row && row.sends >= allowance) return false;
    this.windows.set(key, { sends: (row?.sends ?? 0) + 1, expiresAt });
    return true;
  }
}

const T0 = Date.UTC(2026, 11, 5, 12, 0, 0); // a window boundary

function setup(perSecond = 2) {
  const clock = new ManualClock(T0);
  const store = new FakeSendRateStore();
  return { clock, store, deps: { store, clock, perSecond } };
}

describe('admitSend: the per-user send rate', () => {
  it('admits perSecond x 10 s sends in a window, then refuses with rate_limited and the time to the next window', async () => {
    const { clock, deps } = setup(2);
    for (let i = 0; i < 20; i++) await admitSend(deps, 'u1');
    clock.advance(3_250);
    const refused = await admitSend(deps, 'u1').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(GatewayError);
    expect(refused).toMatchObject({ code: 'rate_limited', retryAfterMs: SEND_RATE_WINDOW_MS - 3_250 });
    expect((refused as Error).message).toMatch(/20 sends in 10 s; send again in 7 s/);
  });

  it('opens a fresh allowance in the next window', async () => {
    const { clock, deps } = setup(1);
    for (let i = 0; i < 10; i++) await admitSend(deps, 'u1');
    await expect(admitSend(deps, 'u1')).rejects.toMatchObject({ code: 'rate_limited' });
    clock.advance(SEND_RATE_WINDOW_MS);
    await expect(admitSend(deps, 'u1')).resolves.toBeUndefined();
  });

  it('counts each user apart', async () => {
    const { deps } = setup(1);
    for (let i = 0; i < 10; i++) await admitSend(deps, 'u1');
    await expect(admitSend(deps, 'u1')).rejects.toMatchObject({ code: 'rate_limited' });
    await expect(admitSend(deps, 'u2')).resolves.toBeUndefined();
  });

  it('keeps a window row until after the window ends (TTL lags, a row must never vanish mid-window)', async () => {
    const { store, deps } = setup(1);
    await admitSend(deps, 'u1');
    const [row] = [...store.windows.values()];
    expect(row!.expiresAt * 1000).toBeGreaterThanOrEqual(T0 + SEND_RATE_WINDOW_MS);
  });

  it('0 turns the limit off without touching the store', async () => {
    const { store, deps } = setup(0);
    for (let i = 0; i < 50; i++) await admitSend(deps, 'u1');
    expect(store.calls).toBe(0);
  });

  it('concurrent sends never admit more than the allowance', async () => {
    const { deps } = setup(1);
    const outcomes = await Promise.allSettled(Array.from({ length: 25 }, () => admitSend(deps, 'u1')));
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(10);
  });
});

describe('checkGroupSize', () => {
  it('allows a change up to the limit and refuses one past it with conflict', () => {
    expect(() => checkGroupSize(8, { add: ['a', 'b'] }, 10)).not.toThrow();
    expect(() => checkGroupSize(9, { add: ['a', 'b'] }, 10)).toThrow(expect.objectContaining({ code: 'conflict', message: expect.stringMatching(/limit is 10/) }));
    expect(() => checkGroupSize(10, { add: ['a'], remove: ['b'] }, 10)).not.toThrow();
  });
});

describe('sizes that must fit SQS and one DynamoDB item', () => {
  it('a push listing more than 100 KiB of user ids is a 400 naming to.users; 10,000 short ids pass', () => {
    const ids = (n: number, len: number) => Array.from({ length: n }, (_, i) => `u${String(i).padStart(len - 1, '0')}`);
    expect(() => parseRequestBody('push', JSON.stringify({ to: { users: ids(10_000, 7) }, body: 1 }))).not.toThrow();
    expect(() => parseRequestBody('push', JSON.stringify({ to: { users: ids(3_000, 36) }, body: 1 }))).toThrow(expect.objectContaining({ code: 'bad_request', message: expect.stringMatching(/^to\.users: \d+ KiB/) }));
  });

  it('MAX_GROUP_MEMBERS cannot be set past what one audience row holds', () => {
    const saved = process.env.MAX_GROUP_MEMBERS;
    try {
      process.env.MAX_GROUP_MEMBERS = String(MAX_STORABLE_GROUP_MEMBERS + 1);
      expect(() => maxGroupMembers()).toThrow(/at most 2500/);
      delete process.env.MAX_GROUP_MEMBERS;
      expect(maxGroupMembers()).toBe(2_000);
      // The longest ids of a full group still fit one 400 KB item.
      expect(MAX_STORABLE_GROUP_MEMBERS * (128 + 3)).toBeLessThan(400 * 1000 - 20_000);
    } finally {
      if (saved === undefined) delete process.env.MAX_GROUP_MEMBERS;
      else process.env.MAX_GROUP_MEMBERS = saved;
    }
  });
});
