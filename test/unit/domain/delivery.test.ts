import { jest } from '@jest/globals';
import { connectionsOf, deliver, postWithRetry } from '../../../lambdas/domain/delivery';
import { connectionRecord, fakeDeliveryDeps, FakeConnectionRegistry, FakeConnectionSender } from '../../support/fakes';

const NOW = Date.UTC(2026, 0, 1);
const PAYLOAD = '{"type":"message"}';

async function registryWith(...records: ReturnType<typeof connectionRecord>[]) {
  const registry = new FakeConnectionRegistry();
  for (const record of records) await registry.put(record);
  return registry;
}

describe('deliver', () => {
  it('delivers the payload to every target', async () => {
    const targets = [connectionRecord('a', 'u1', NOW), connectionRecord('b', 'u2', NOW), connectionRecord('c', 'u2', NOW)];
    const sender = new FakeConnectionSender();
    const report = await deliver(fakeDeliveryDeps(sender, await registryWith(...targets)), targets, PAYLOAD);
    expect(report).toEqual({ targeted: 3, delivered: 3, gone: 0, failed: 0 });
    expect(sender.recipients()).toEqual(['a', 'b', 'c']);
    expect(sender.posts.every((p) => p.data === PAYLOAD)).toBe(true);
  });

  it('counts a 410 as gone and removes that row with the target user as condition', async () => {
    const gone = connectionRecord('a', 'u1', NOW);
    const live = connectionRecord('b', 'u2', NOW);
    const registry = await registryWith(gone, live);
    const removeStale = jest.spyOn(registry, 'removeStale');
    const sender = new FakeConnectionSender().script('a', 'gone');

    const report = await deliver(fakeDeliveryDeps(sender, registry), [gone, live], PAYLOAD);

    expect(report).toEqual({ targeted: 2, delivered: 1, gone: 1, failed: 0 });
    expect(removeStale).toHaveBeenCalledTimes(1);
    expect(removeStale).toHaveBeenCalledWith('a', 'u1');
    expect(registry.rows.has('a')).toBe(false);
    expect(registry.rows.has('b')).toBe(true);
    expect(sender.posts.filter((p) => p.connectionId === 'a')).toHaveLength(1); // a 410 is not retried
  });

  it('does not remove a row that meanwhile belongs to another user', async () => {
    // The target was read as u1's; the id now holds u9's row (e.g. a reused id in local mode).
    const target = connectionRecord('a', 'u1', NOW);
    const registry = await registryWith(connectionRecord('a', 'u9', NOW));
    const sender = new FakeConnectionSender().script('a', 'gone');

    const report = await deliver(fakeDeliveryDeps(sender, registry), [target], PAYLOAD);

    expect(report.gone).toBe(1);
    expect(registry.rows.get('a')?.userId).toBe('u9');
  });

  it('retries a retryable outcome up to maxAttempts with growing jittered sleeps, then counts it failed', async () => {
    const target = connectionRecord('a', 'u1', NOW);
    const sender = new FakeConnectionSender().script('a', 'retryable', 'retryable', 'retryable', 'retryable', 'ok');
    const randoms = [0.5, 0.25, 0.75];
    const deps = fakeDeliveryDeps(sender, await registryWith(target), { maxAttempts: 4, baseDelayMs: 100, random: () => randoms.shift()! });

    const report = await deliver(deps, [target], PAYLOAD);

    expect(report).toEqual({ targeted: 1, delivered: 0, gone: 0, failed: 1 });
    expect(sender.posts).toHaveLength(4); // never a fifth attempt, although it would have succeeded
    // Full jitter: random * base * 2^(attempt-1), one sleep between consecutive attempts.
    expect(deps.sleeps).toEqual([0.5 * 100, 0.25 * 200, 0.75 * 400]);
  });

  it('backs off with a growing ceiling (random fixed at 1)', async () => {
    const target = connectionRecord('a', 'u1', NOW);
    const sender = new FakeConnectionSender().script('a', 'retryable', 'retryable', 'retryable');
    const deps = fakeDeliveryDeps(sender, await registryWith(target), { maxAttempts: 4, baseDelayMs: 50, random: () => 1 });

    const report = await deliver(deps, [target], PAYLOAD);

    expect(report.delivered).toBe(1);
    expect(sender.posts).toHaveLength(4);
    expect(deps.sleeps).toEqual([50, 100, 200]);
  });

  it('does not retry a rejected outcome', async () => {
    const target = connectionRecord('a', 'u1', NOW);
    const sender = new FakeConnectionSender().script('a', 'rejected', 'ok');
    const deps = fakeDeliveryDeps(sender, await registryWith(target));

    const report = await deliver(deps, [target], PAYLOAD);

    expect(report).toEqual({ targeted: 1, delivered: 0, gone: 0, failed: 1 });
    expect(sender.posts).toHaveLength(1);
    expect(deps.sleeps).toEqual([]);
  });

  it('never has more posts in flight than the concurrency limit', async () => {
    const targets = Array.from({ length: 20 }, (_, i) => connectionRecord(`c${i}`, `u${i}`, NOW));
    const sender = new FakeConnectionSender(2);
    const report = await deliver(fakeDeliveryDeps(sender, await registryWith(...targets), { concurrency: 3 }), targets, PAYLOAD);
    expect(report.delivered).toBe(20);
    expect(sender.maxInFlight).toBe(3);
  });

  it('counts a sender that throws as failed without breaking the other deliveries', async () => {
    const targets = [connectionRecord('a', 'u1', NOW), connectionRecord('b', 'u2', NOW), connectionRecord('c', 'u3', NOW)];
    const sender = new FakeConnectionSender().script('b', 'throw');
    const report = await deliver(fakeDeliveryDeps(sender, await registryWith(...targets), { concurrency: 1 }), targets, PAYLOAD);
    expect(report).toEqual({ targeted: 3, delivered: 2, gone: 0, failed: 1 });
    expect(sender.recipients()).toEqual(['a', 'b', 'c']);
  });

  it('handles no targets', async () => {
    const sender = new FakeConnectionSender();
    await expect(deliver(fakeDeliveryDeps(sender, new FakeConnectionRegistry()), [], PAYLOAD)).resolves.toEqual({
      targeted: 0,
      delivered: 0,
      gone: 0,
      failed: 0,
    });
  });
});

describe('connectionsOf', () => {
  it('lists each user once, only live rows, minus skipped ones', async () => {
    const registry = await registryWith(
      connectionRecord('a1', 'u1', NOW),
      connectionRecord('a2', 'u1', NOW + 1),
      connectionRecord('b1', 'u2', NOW),
      connectionRecord('b-expired', 'u2', NOW, { expiresAt: Math.floor(NOW / 1000) - 1 }),
      connectionRecord('c1', 'u3', NOW),
    );
    const listByUser = jest.spyOn(registry, 'listByUser');

    const found = await connectionsOf(registry, ['u1', 'u2', 'u1', 'u2'], NOW, (c) => c.connectionId === 'a1');

    expect(found.map((c) => c.connectionId).sort()).toEqual(['a2', 'b1']);
    expect(listByUser.mock.calls.map(([userId]) => userId).sort()).toEqual(['u1', 'u2']);
  });
});

describe('postWithRetry (used for acks)', () => {
  it('retries a throttled post and reports ok once it goes through', async () => {
    const registry = new FakeConnectionRegistry();
    const sender = new FakeConnectionSender();
    sender.script('c-ack', 'retryable', 'retryable', 'ok');
    const deps = fakeDeliveryDeps(sender, registry);
    await expect(postWithRetry(deps, 'c-ack', '{"type":"ack"}')).resolves.toBe('ok');
    expect(sender.posts.filter((p) => p.connectionId === 'c-ack')).toHaveLength(3);
  });
});
