import { closeConnection, openConnection, pingConnection, type LifecycleDeps } from '../../../lambdas/domain/connection-lifecycle';
import { FakeConnectionRegistry, ManualClock } from '../../support/fakes';

const IDLE_TTL = 900;
const START = Date.UTC(2026, 0, 1, 12, 0, 0, 250);

function setup() {
  const registry = new FakeConnectionRegistry();
  const clock = new ManualClock(START);
  const deps: LifecycleDeps = { registry, clock, idleTtlSeconds: IDLE_TTL };
  const identity = { connectionId: 'c1', userId: 'u1', deviceId: 'phone', connectedAt: START - 100 };
  return { registry, clock, deps, identity };
}

describe('connection lifecycle', () => {
  it('open stores the connection with expiresAt = now/1000 + idle TTL', async () => {
    const { registry, deps, identity } = setup();
    const record = await openConnection(deps, identity);
    const expected = { ...identity, lastActiveAt: START, expiresAt: Math.floor(START / 1000) + IDLE_TTL };
    expect(record).toEqual(expected);
    expect(registry.rows.get('c1')).toEqual(expected);
    await expect(registry.listByUser('u1', START)).resolves.toEqual([expected]);
  });

  it('ping moves lastActiveAt and expiresAt forward and keeps connectedAt', async () => {
    const { registry, clock, deps, identity } = setup();
    await openConnection(deps, identity);
    clock.advance(5 * 60_000);
    const { ts } = await pingConnection(deps, identity);
    expect(ts).toBe(clock.nowMs());
    expect(registry.rows.get('c1')).toEqual({
      ...identity,
      lastActiveAt: clock.nowMs(),
      expiresAt: Math.floor(clock.nowMs() / 1000) + IDLE_TTL,
    });
    // Without the ping the row would have expired by now; with it, it is still live.
    clock.advance(12 * 60_000);
    await expect(registry.get('c1', clock.nowMs())).resolves.toBeDefined();
  });

  it('ping re-creates a row that was swept while the socket lived', async () => {
    const { registry, clock, deps, identity } = setup();
    await openConnection(deps, identity);
    await registry.remove('c1');
    clock.advance(60_000);
    await pingConnection(deps, identity);
    await expect(registry.get('c1', clock.nowMs())).resolves.toMatchObject({ userId: 'u1', deviceId: 'phone', lastActiveAt: clock.nowMs() });
  });

  it('close removes the row', async () => {
    const { registry, deps, identity } = setup();
    await openConnection(deps, identity);
    await closeConnection(deps, 'c1');
    expect(registry.rows.has('c1')).toBe(false);
    await expect(registry.listByUser('u1', START)).resolves.toEqual([]);
  });
});
