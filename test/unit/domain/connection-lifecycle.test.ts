import {
  API_GATEWAY_MAX_CONNECTION_SECONDS,
  ROW_LIFETIME_SECONDS,
  closeConnection,
  connectionsOverLimit,
  openConnection,
  pingConnection,
  type LifecycleDeps,
} from '../../../lambdas/domain/connection-lifecycle';
import { FakeConnectionRegistry, ManualClock, connectionRecord } from '../../support/fakes';

const START = Date.UTC(2026, 0, 1, 12, 0, 0, 250);
const CONNECTED_AT = START - 100;

function setup() {
  const registry = new FakeConnectionRegistry();
  const clock = new ManualClock(START);
  const deps: LifecycleDeps = { registry, clock, rowLifetimeSeconds: ROW_LIFETIME_SECONDS };
  const identity = { connectionId: 'c1', userId: 'u1', deviceId: 'phone', connectedAt: CONNECTED_AT };
  return { registry, clock, deps, identity };
}

describe('connection lifecycle', () => {
  it('a row lives 2 h 10 min: API Gateway\'s 2-hour connection limit plus a 10-minute margin', () => {
    expect(API_GATEWAY_MAX_CONNECTION_SECONDS).toBe(7200);
    expect(ROW_LIFETIME_SECONDS).toBe(2 * 3600 + 10 * 60);
  });

  it('open stores the connection once, with expiresAt = connectedAt/1000 + the row lifetime, and no activity time', async () => {
    const { registry, deps, identity } = setup();
    const record = await openConnection(deps, identity);
    const expected = { ...identity, expiresAt: Math.floor(CONNECTED_AT / 1000) + ROW_LIFETIME_SECONDS };
    expect(record).toEqual(expected);
    expect(registry.rows.get('c1')).toEqual(expected);
    expect(registry.writes).toEqual(['put c1']);
    await expect(registry.listByUser('u1', START)).resolves.toEqual([expected]);
  });

  it('the row outlives the longest socket API Gateway keeps, and then expires', async () => {
    const { registry, clock, deps, identity } = setup();
    await openConnection(deps, identity);
    // The last moment API Gateway may still hold the socket open, plus the margin less a second.
    clock.set(CONNECTED_AT + (API_GATEWAY_MAX_CONNECTION_SECONDS + 9 * 60) * 1000);
    await expect(registry.get('c1', clock.nowMs())).resolves.toBeDefined();
    clock.set(CONNECTED_AT + ROW_LIFETIME_SECONDS * 1000 + 1000);
    await expect(registry.get('c1', clock.nowMs())).resolves.toBeUndefined();
  });

  it('ping answers the time and writes nothing: no write, the row exactly as $connect left it', async () => {
    const { registry, clock, deps, identity } = setup();
    await openConnection(deps, identity);
    const before = { ...registry.rows.get('c1')! };
    clock.advance(5 * 60_000);
    expect(pingConnection(deps)).toEqual({ ts: clock.nowMs() });
    clock.advance(90 * 60_000);
    expect(pingConnection(deps)).toEqual({ ts: clock.nowMs() });
    expect(registry.writes).toEqual(['put c1']);
    expect(registry.rows.get('c1')).toEqual(before);
  });

  it('a connection that never pings is still live after 15 minutes and an hour (a ping is not what keeps it)', async () => {
    const { registry, clock, deps, identity } = setup();
    await openConnection(deps, identity);
    clock.advance(16 * 60_000);
    await expect(registry.listByUser('u1', clock.nowMs())).resolves.toHaveLength(1);
    clock.advance(60 * 60_000);
    await expect(registry.get('c1', clock.nowMs())).resolves.toMatchObject({ userId: 'u1', deviceId: 'phone' });
  });

  it('close removes the row', async () => {
    const { registry, deps, identity } = setup();
    await openConnection(deps, identity);
    await closeConnection(deps, 'c1');
    expect(registry.rows.has('c1')).toBe(false);
    await expect(registry.listByUser('u1', START)).resolves.toEqual([]);
  });
});

describe('connections per user: which to close when one more opens', () => {
  /** `count` connections of u1, opened a second apart; the last is the new one. */
  const opened = (count: number) => Array.from({ length: count }, (_, i) => connectionRecord(`c${i}`, 'u1', START + i * 1000));

  it('exactly at the limit (the new one included) nothing is closed', () => {
    expect(connectionsOverLimit(opened(10), 'c9', 10)).toEqual([]);
    expect(connectionsOverLimit(opened(3), 'c2', 10)).toEqual([]);
    expect(connectionsOverLimit(opened(1), 'c0', 1)).toEqual([]);
  });

  it('one over the limit closes the oldest only', () => {
    expect(connectionsOverLimit(opened(11), 'c10', 10)).toEqual(['c0']);
  });

  it('several over the limit (the limit was lowered, or devices raced) close the oldest ones, oldest first', () => {
    expect(connectionsOverLimit(opened(7), 'c6', 3)).toEqual(['c0', 'c1', 'c2', 'c3']);
    expect(connectionsOverLimit(opened(4), 'c3', 1)).toEqual(['c0', 'c1', 'c2']);
  });

  it('orders by connectedAt whatever order the rows come in, ties by connection id', () => {
    const rows = opened(5).reverse();
    expect(connectionsOverLimit(rows, 'c4', 3)).toEqual(['c0', 'c1']);
    const tied = [connectionRecord('b', 'u1', START), connectionRecord('a', 'u1', START), connectionRecord('new', 'u1', START + 1)];
    expect(connectionsOverLimit(tied, 'new', 2)).toEqual(['a']);
  });

  it('never closes the new connection, even when it is not the newest row (a racing device) or not listed yet (index lag)', () => {
    // The new connection's row sorts first (clock skew, or another device connected just after).
    expect(connectionsOverLimit(opened(4), 'c0', 3)).toEqual(['c1']);
    // The index does not show the new row yet: it still takes one of the places.
    expect(connectionsOverLimit(opened(3), 'not-yet-listed', 3)).toEqual(['c0']);
    expect(connectionsOverLimit([], 'not-yet-listed', 1)).toEqual([]);
  });
});
