/**
 * Access tokens (issue 9.1): one refresh at a time across instances, the old token while it
 * lasts, lease take-over after a dead holder, forced refreshes after an invalid token at most once
 * a minute. The store fake is faithful to the DynamoDB adapter's conditional writes and yields on
 * every call, so concurrent callers interleave as they do over the network; the token API fake
 * holds each fetch open until the test answers it, which pins the interleavings.
 */
import type { WechatAccount } from '../../../lambdas/domain/wechat-accounts';
import { WechatAccountsError } from '../../../lambdas/domain/wechat-accounts';
import {
  createAccessTokens,
  EXPIRY_MARGIN_MS,
  FORCE_INTERVAL_MS,
  LEASE_MS,
  REFRESH_AHEAD_MS,
  REFRESH_AHEAD_SPACING_MS,
  WAIT_MS,
  type AccessTokenDeps,
  type TokenRow,
  type TokenStore,
} from '../../../lambdas/domain/wechat-access-token';
import { WechatApiError, WechatNetworkError, type FetchedToken, type WechatTokenApi } from '../../../lambdas/domain/wechat-api';
import { ManualClock } from '../../support/fakes';

const START = Date.UTC(2026, 0, 1, 12);
const HOUR = 3_600_000;

const oa: WechatAccount = { accountId: 'oa1', kind: 'oa', token: 'tok123', receiveId: 'wxappid00000001', appSecret: 'oa-app-secret-value' };
const wecom: WechatAccount = {
  accountId: 'corp1',
  kind: 'wecom',
  token: 'tok456',
  encodingAESKey: 'a'.repeat(43),
  receiveId: 'wwcorpid0000001',
  appSecret: 'wecom-app-secret-value',
  agentId: 1000002,
};

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The DynamoDB adapter's semantics: a lease only when none is live, save and release only by the owner. */
class MemoryTokenStore implements TokenStore {
  readonly rows = new Map<string, TokenRow>();
  readonly log: string[] = [];
  failSaves = 0;
  /** Holds the next tryLease until the test opens it (a caller slowed between its read and its lease). */
  private gate: Promise<void> | undefined;
  holdNextLease(): () => void {
    let open!: () => void;
    this.gate = new Promise<void>((resolve) => (open = resolve));
    return open;
  }
  heldLeases = 0;

  async read(accountId: string): Promise<TokenRow | undefined> {
    await turn();
    this.log.push('read');
    const row = this.rows.get(accountId);
    return row && { ...row };
  }

  async tryLease(accountId: string, owner: string, nowMs: number, leaseUntilMs: number): Promise<boolean> {
    await turn();
    if (this.gate) {
      const gate = this.gate;
      this.gate = undefined;
      this.heldLeases++;
      await gate;
    }
    this.log.push('tryLease');
    const row = this.rows.get(accountId) ?? {};
    if (row.leaseUntilMs !== undefined && row.leaseUntilMs > nowMs) return false;
    this.rows.set(accountId, { ...row, leaseOwner: owner, leaseUntilMs });
    return true;
  }

  async saveToken(accountId: string, owner: string, token: string, expiresAtMs: number, forced: boolean, nowMs: number): Promise<boolean> {
    await turn();
    this.log.push('saveToken');
    if (this.failSaves > 0) {
      this.failSaves--;
      throw new Error('ProvisionedThroughputExceededException');
    }
    const row = this.rows.get(accountId);
    if (row?.leaseOwner !== owner) return false;
    const { leaseOwner: _o, leaseUntilMs: _u, ...rest } = row;
    this.rows.set(accountId, { ...rest, accessToken: token, expiresAtMs, fetchedAtMs: nowMs, ...(forced ? { lastForcedAtMs: nowMs } : {}) });
    return true;
  }

  async releaseLease(accountId: string, owner: string): Promise<void> {
    await turn();
    this.log.push('releaseLease');
    const row = this.rows.get(accountId);
    if (row?.leaseOwner !== owner) return;
    const { leaseOwner: _o, leaseUntilMs: _u, ...rest } = row;
    this.rows.set(accountId, rest);
  }
}

interface HeldFetch {
  accountId: string;
  forceRefresh: boolean;
  answer(token: string, expiresInSeconds?: number): void;
  fail(error: Error): void;
}

/** Every fetch stays open until the test answers it (or never, for a holder that dies). */
class HeldTokenApi implements WechatTokenApi {
  readonly fetches: HeldFetch[] = [];

  fetchToken(account: WechatAccount, options: { forceRefresh: boolean }): Promise<FetchedToken> {
    return new Promise<FetchedToken>((resolve, reject) => {
      this.fetches.push({
        accountId: account.accountId,
        forceRefresh: options.forceRefresh,
        answer: (accessToken, expiresInSeconds = 7200) => resolve({ accessToken, expiresInSeconds }),
        fail: reject,
      });
    });
  }
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2_000; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  throw new Error(`timed out waiting until ${what}`);
}

/** A promise whose state can be read synchronously. */
function watch<T>(promise: Promise<T>) {
  const state: { settled: boolean; value?: T; error?: unknown } = { settled: false };
  const done = promise.then(
    (value) => Object.assign(state, { settled: true, value }),
    (error: unknown) => Object.assign(state, { settled: true, error }),
  );
  return Object.assign(state, { promise, done });
}

function setup(options: { sleepAdvancesClock?: boolean } = {}) {
  const clock = new ManualClock(START);
  const store = new MemoryTokenStore();
  const api = new HeldTokenApi();
  const sleeps: number[] = [];
  const failures: Array<{ accountId: string; stage: string; error: unknown }> = [];
  let owners = 0;
  const deps: AccessTokenDeps = {
    store,
    api,
    clock,
    // Time stands still while callers wait (the test moves it), unless a test wants waiting to take time.
    sleep: async (ms) => {
      sleeps.push(ms);
      // A caller that never stops polling is a bug; end it rather than hang the run.
      if (sleeps.length > 50_000) throw new Error('runaway polling');
      if (options.sleepAdvancesClock) clock.advance(ms);
      await new Promise((resolve) => setTimeout(resolve, 1));
    },
    newLeaseOwner: () => `owner-${++owners}`,
    onBackgroundFailure: (failure) => failures.push(failure),
  };
  /** One per simulated Lambda instance: nothing is shared but the store. */
  const instance = () => createAccessTokens(deps);
  const seed = (accountId: string, row: TokenRow) => store.rows.set(accountId, row);
  return { clock, store, api, sleeps, failures, instance, seed };
}

describe('get: one refresh at a time', () => {
  it('20 concurrent calls on a cold cache (20 instances) fetch exactly once and all get that token', async () => {
    const { api, store, sleeps, instance } = setup();
    const calls = Array.from({ length: 20 }, () => watch(instance().get(oa)));
    await until(() => api.fetches.length === 1, 'one fetch is open');
    // Everyone else is waiting for it (each has polled at least twice), nobody fetched a second time.
    await until(() => sleeps.length >= 19 * 2, 'the others poll');
    expect(api.fetches).toHaveLength(1);
    expect(calls.filter((c) => c.settled)).toHaveLength(0);
    expect(store.rows.get('oa1')).toMatchObject({ leaseOwner: expect.any(String), leaseUntilMs: START + LEASE_MS });
    expect(store.rows.get('oa1')?.accessToken).toBeUndefined();

    api.fetches[0]!.answer('T1');
    await Promise.all(calls.map((c) => c.done));
    expect(calls.map((c) => c.value)).toEqual(Array(20).fill('T1'));
    expect(calls.every((c) => c.error === undefined)).toBe(true);
    expect(api.fetches).toHaveLength(1);
    expect(api.fetches[0]).toMatchObject({ accountId: 'oa1', forceRefresh: false });
    expect(store.rows.get('oa1')).toEqual({ accessToken: 'T1', expiresAtMs: START + 7200_000 - EXPIRY_MARGIN_MS, fetchedAtMs: START });
  });

  it('a caller that lost the race only by being slow (its lease comes after the save) does not fetch again', async () => {
    const { api, store, instance } = setup();
    const open = store.holdNextLease();
    const slow = watch(instance().get(oa));
    await until(() => store.heldLeases === 1, 'the slow caller read an empty row and is about to lease');
    const fast = watch(instance().get(oa));
    await until(() => api.fetches.length === 1, 'the fast caller fetches');
    api.fetches[0]!.answer('T1');
    await fast.done;
    expect(store.rows.get('oa1')?.leaseOwner).toBeUndefined();
    open(); // the lease is free again: the slow caller gets it, reads the row under it, finds T1
    await slow.done;
    expect(slow.value).toBe('T1');
    expect(api.fetches).toHaveLength(1);
    expect(store.rows.get('oa1')?.leaseOwner).toBeUndefined();
  });

  it('a cached token with more than 5 minutes left is served from the row, no fetch, no lease', async () => {
    const { api, store, seed, instance } = setup();
    seed('oa1', { accessToken: 'T0', expiresAtMs: START + REFRESH_AHEAD_MS + 1, fetchedAtMs: START - HOUR });
    await expect(instance().get(oa)).resolves.toBe('T0');
    expect(api.fetches).toHaveLength(0);
    expect(store.log).toEqual(['read']);
  });

  it('a token near its expiry (4 min left): exactly one caller refreshes, the others get the old token at once', async () => {
    const { api, store, seed, instance } = setup();
    seed('oa1', { accessToken: 'T0', expiresAtMs: START + 4 * 60_000, fetchedAtMs: START - 2 * HOUR + 5 * 60_000 });
    const calls = Array.from({ length: 20 }, () => watch(instance().get(oa)));
    await until(() => api.fetches.length === 1 && calls.filter((c) => c.settled).length === 19, 'one fetch open, 19 served');
    expect(calls.filter((c) => c.settled).map((c) => c.value)).toEqual(Array(19).fill('T0'));
    expect(api.fetches).toHaveLength(1);

    api.fetches[0]!.answer('T1');
    await Promise.all(calls.map((c) => c.done));
    expect(calls.filter((c) => c.value === 'T1')).toHaveLength(1);
    expect(store.rows.get('oa1')).toMatchObject({ accessToken: 'T1', expiresAtMs: START + 7200_000 - EXPIRY_MARGIN_MS });
    expect(store.rows.get('oa1')?.leaseOwner).toBeUndefined();
    // Later callers get the new token from the row.
    await expect(instance().get(oa)).resolves.toBe('T1');
    expect(api.fetches).toHaveLength(1);
  });

  it('an answer with the same ending token does not make every later call fetch: the next try waits a minute', async () => {
    const { api, clock, seed, instance } = setup();
    seed('oa1', { accessToken: 'T0', expiresAtMs: START + 4 * 60_000, fetchedAtMs: START - HOUR });
    const first = watch(instance().get(oa));
    await until(() => api.fetches.length === 1, 'the refresh');
    // WeChat's own 5-minute mark is not reached yet: it answers T0 with what is left of it.
    api.fetches[0]!.answer('T0', 5 * 60);
    await first.done;
    expect(first.value).toBe('T0');
    clock.advance(REFRESH_AHEAD_SPACING_MS - 1);
    await expect(instance().get(oa)).resolves.toBe('T0');
    expect(api.fetches).toHaveLength(1);
    clock.advance(1);
    const later = watch(instance().get(oa));
    await until(() => api.fetches.length === 2, 'the next refresh');
    api.fetches[1]!.answer('T1');
    await later.done;
    expect(later.value).toBe('T1');
  });

  it('an expired token is never handed out: callers wait for the new one', async () => {
    const { api, sleeps, seed, instance } = setup();
    seed('oa1', { accessToken: 'T0', expiresAtMs: START, fetchedAtMs: START - 2 * HOUR });
    const calls = Array.from({ length: 5 }, () => watch(instance().get(oa)));
    await until(() => api.fetches.length === 1 && sleeps.length >= 8, 'one fetch, the others waiting');
    expect(calls.filter((c) => c.settled)).toHaveLength(0);
    api.fetches[0]!.answer('T1');
    await Promise.all(calls.map((c) => c.done));
    expect(calls.map((c) => c.value)).toEqual(Array(5).fill('T1'));
    expect(api.fetches).toHaveLength(1);
  });

  it('a holder that dies (never saves) is taken over by one waiter once its lease ran out', async () => {
    const { api, clock, store, sleeps, instance } = setup();
    const dead = instance().get(oa); // its fetch is never answered: the instance died
    void dead;
    await until(() => api.fetches.length === 1, 'the first holder fetches');
    const waiters = Array.from({ length: 10 }, () => watch(instance().get(oa)));
    await until(() => sleeps.length >= 20, 'the waiters poll');
    expect(api.fetches).toHaveLength(1);

    clock.advance(LEASE_MS - 1);
    await until(() => sleeps.length >= 40, 'the waiters poll on');
    expect(api.fetches).toHaveLength(1);

    clock.advance(1);
    await until(() => api.fetches.length === 2, 'one waiter takes over');
    await until(() => sleeps.length >= 60, 'the others keep waiting');
    expect(api.fetches).toHaveLength(2);
    api.fetches[1]!.answer('T2');
    await Promise.all(waiters.map((w) => w.done));
    expect(waiters.map((w) => w.value)).toEqual(Array(10).fill('T2'));

    // The first holder's late answer cannot overwrite: its lease is gone.
    const owner1 = 'owner-1';
    await expect(store.saveToken('oa1', owner1, 'late', START + HOUR, false, clock.nowMs())).resolves.toBe(false);
    expect(store.rows.get('oa1')?.accessToken).toBe('T2');
  });

  it('a holder that overran its lease and was taken over still answers its caller, without overwriting the row', async () => {
    const { api, clock, store, instance } = setup();
    const slow = watch(instance().get(oa));
    await until(() => api.fetches.length === 1, 'the first holder fetches');
    clock.advance(LEASE_MS);
    const second = watch(instance().get(oa));
    await until(() => api.fetches.length === 2, 'a second caller takes over the run-out lease');
    api.fetches[1]!.answer('T2');
    await second.done;
    api.fetches[0]!.answer('T1');
    await slow.done;
    expect(slow.value).toBe('T1');
    expect(second.value).toBe('T2');
    expect(store.rows.get('oa1')?.accessToken).toBe('T2');
  });

  it('a fetch failure releases the lease and fails the caller; the next call retries', async () => {
    const { api, store, instance } = setup();
    const tokens = instance();
    const first = watch(tokens.get(oa));
    await until(() => api.fetches.length === 1, 'the fetch');
    api.fetches[0]!.fail(new WechatApiError(40013, 'invalid appid', 'stable_token'));
    await first.done;
    expect(first.error).toBeInstanceOf(WechatApiError);
    expect(first.error).toMatchObject({ errcode: 40013 });
    expect(store.rows.get('oa1')).toEqual({});
    expect(store.log.slice(-1)).toEqual(['releaseLease']);

    const second = watch(tokens.get(oa));
    await until(() => api.fetches.length === 2, 'the retry');
    api.fetches[1]!.answer('T1');
    await second.done;
    expect(second.value).toBe('T1');
  });

  it('when the holder fails on a cold cache, the waiters retry one at a time and share the answer', async () => {
    const { api, sleeps, instance } = setup();
    const calls = Array.from({ length: 4 }, () => watch(instance().get(oa)));
    await until(() => api.fetches.length === 1 && sleeps.length >= 6, 'one fetch, three waiting');
    api.fetches[0]!.fail(new WechatNetworkError('no answer within 5000 ms', 'stable_token'));
    await until(() => api.fetches.length === 2, 'one waiter fetches next');
    await until(() => sleeps.length >= 12, 'the others wait again');
    expect(api.fetches).toHaveLength(2);
    api.fetches[1]!.answer('T1');
    await Promise.all(calls.map((c) => c.done));
    expect(calls.filter((c) => c.error instanceof WechatNetworkError)).toHaveLength(1);
    expect(calls.filter((c) => c.value === 'T1')).toHaveLength(3);
  });

  it('an ahead-of-time refresh that fails serves the old token and reports the failure', async () => {
    const { api, store, failures, seed, instance } = setup();
    seed('oa1', { accessToken: 'T0', expiresAtMs: START + 60_000, fetchedAtMs: START - HOUR });
    const call = watch(instance().get(oa));
    await until(() => api.fetches.length === 1, 'the refresh');
    const error = new WechatNetworkError('HTTP 502', 'stable_token');
    api.fetches[0]!.fail(error);
    await call.done;
    expect(call.value).toBe('T0');
    expect(failures).toEqual([{ accountId: 'oa1', stage: 'refreshAhead', error }]);
    expect(store.rows.get('oa1')).toEqual({ accessToken: 'T0', expiresAtMs: START + 60_000, fetchedAtMs: START - HOUR });
  });

  it('a token that cannot be stored still serves its caller, and the lease is released', async () => {
    const { api, store, failures, instance } = setup();
    store.failSaves = 1;
    const call = watch(instance().get(oa));
    await until(() => api.fetches.length === 1, 'the fetch');
    api.fetches[0]!.answer('T1');
    await call.done;
    expect(call.value).toBe('T1');
    expect(failures).toMatchObject([{ accountId: 'oa1', stage: 'save' }]);
    expect(store.rows.get('oa1')?.leaseOwner).toBeUndefined();
  });

  it('a waiter gives up with a retryable WechatNetworkError when a lease outlives WAIT_MS', async () => {
    const { api, clock, seed, instance } = setup({ sleepAdvancesClock: true });
    // A lease far longer than any holder takes: only a broken clock or store would show this.
    seed('oa1', { leaseOwner: 'elsewhere', leaseUntilMs: START + 10 * WAIT_MS });
    const call = watch(instance().get(oa));
    await call.done;
    expect(call.error).toBeInstanceOf(WechatNetworkError);
    expect(String((call.error as Error).message)).toMatch(/oa1.*did not finish within/);
    expect(clock.nowMs() - START).toBeGreaterThanOrEqual(WAIT_MS);
    expect(api.fetches).toHaveLength(0);
  });

  it('stores the expiry with a margin: 60 s, or a tenth of a short-lived token', async () => {
    const { api, store, clock, instance } = setup();
    const tokens = instance();
    const first = watch(tokens.get(oa));
    await until(() => api.fetches.length === 1, 'the fetch');
    api.fetches[0]!.answer('T1', 7200);
    await first.done;
    expect(store.rows.get('oa1')?.expiresAtMs).toBe(START + 7_140_000);

    const second = watch(tokens.get(wecom));
    await until(() => api.fetches.length === 2, 'the fetch');
    clock.advance(500); // the fetch took time: the expiry counts from before it
    api.fetches[1]!.answer('W1', 30);
    await second.done;
    expect(store.rows.get('corp1')).toMatchObject({ accessToken: 'W1', expiresAtMs: START + 27_000, fetchedAtMs: START });
  });

  it('accounts do not share tokens or leases', async () => {
    const { api, instance } = setup();
    const tokens = instance();
    const a = watch(tokens.get(oa));
    const b = watch(tokens.get(wecom));
    await until(() => api.fetches.length === 2, 'both fetch at once');
    expect(api.fetches.map((f) => f.accountId).sort()).toEqual(['corp1', 'oa1']);
    for (const f of api.fetches) f.answer(`${f.accountId}-T`);
    await Promise.all([a.done, b.done]);
    expect([a.value, b.value]).toEqual(['oa1-T', 'corp1-T']);
  });
});

describe('refreshAfterInvalid', () => {
  it('with the stored (stale) token: normal mode first; WeChat still answers the refused token, so one forced fetch, shared by every concurrent caller', async () => {
    const { api, store, sleeps, seed, instance } = setup();
    seed('oa1', { accessToken: 'T0', expiresAtMs: START + HOUR, fetchedAtMs: START - HOUR });
    const calls = Array.from({ length: 10 }, () => watch(instance().refreshAfterInvalid(oa, 'T0')));
    await until(() => api.fetches.length === 1 && sleeps.length >= 18, 'one normal-mode fetch, nine waiting');
    // Nobody is handed the token WeChat just refused.
    expect(calls.filter((c) => c.settled)).toHaveLength(0);
    expect(api.fetches[0]).toMatchObject({ accountId: 'oa1', forceRefresh: false });
    api.fetches[0]!.answer('T0');
    await until(() => api.fetches.length === 2, 'the forced fetch');
    expect(api.fetches[1]).toMatchObject({ accountId: 'oa1', forceRefresh: true });
    api.fetches[1]!.answer('T1');
    await Promise.all(calls.map((c) => c.done));
    expect(calls.map((c) => c.value)).toEqual(Array(10).fill('T1'));
    expect(api.fetches).toHaveLength(2);
    expect(store.rows.get('oa1')).toEqual({ accessToken: 'T1', expiresAtMs: START + 7_140_000, fetchedAtMs: START, lastForcedAtMs: START });
  });

  it('with the stored (stale) token that someone else already replaced at WeChat (40001) or that expired (42001): normal mode answers the new one, nothing is forced', async () => {
    const { api, store, seed, instance } = setup();
    seed('oa1', { accessToken: 'T0', expiresAtMs: START + HOUR, fetchedAtMs: START - HOUR });
    const call = watch(instance().refreshAfterInvalid(oa, 'T0'));
    await until(() => api.fetches.length === 1, 'the normal-mode fetch');
    api.fetches[0]!.answer('T-theirs');
    await call.done;
    expect(call.value).toBe('T-theirs');
    expect(api.fetches.map((f) => f.forceRefresh)).toEqual([false]);
    expect(store.rows.get('oa1')?.lastForcedAtMs).toBeUndefined();
  });

  it('with a token already replaced: the stored one, no fetch', async () => {
    const { api, seed, instance } = setup();
    seed('oa1', { accessToken: 'T1', expiresAtMs: START + HOUR, fetchedAtMs: START - 1000, lastForcedAtMs: START - 1000 });
    await expect(instance().refreshAfterInvalid(oa, 'T0')).resolves.toBe('T1');
    expect(api.fetches).toHaveLength(0);
  });

  it('a second forced refresh within a minute is a normal-mode fetch; after the minute it is forced again', async () => {
    const { api, clock, store, seed, instance } = setup();
    const tokens = instance();
    seed('oa1', { accessToken: 'T0', expiresAtMs: START + HOUR, fetchedAtMs: START - HOUR });
    const first = watch(tokens.refreshAfterInvalid(oa, 'T0'));
    await until(() => api.fetches.length === 1, 'the normal-mode fetch');
    api.fetches[0]!.answer('T0'); // WeChat still holds T0 current: force
    await until(() => api.fetches.length === 2, 'the forced fetch');
    expect(api.fetches[1]!.forceRefresh).toBe(true);
    api.fetches[1]!.answer('T1');
    await first.done;

    // WeChat refuses T1 too, 30 s later, and normal mode still answers T1: no second force within
    // the minute; the caller gets T1 back (its retry fails and the message reports the code).
    clock.advance(30_000);
    const second = watch(tokens.refreshAfterInvalid(oa, 'T1'));
    await until(() => api.fetches.length === 3, 'the second normal-mode fetch');
    expect(api.fetches[2]!.forceRefresh).toBe(false);
    api.fetches[2]!.answer('T1');
    await second.done;
    expect(second.value).toBe('T1');
    expect(api.fetches).toHaveLength(3);
    expect(store.rows.get('oa1')?.lastForcedAtMs).toBe(START);

    clock.advance(FORCE_INTERVAL_MS - 30_000);
    const third = watch(tokens.refreshAfterInvalid(oa, 'T1'));
    await until(() => api.fetches.length === 4, 'the third normal-mode fetch');
    api.fetches[3]!.answer('T1');
    await until(() => api.fetches.length === 5, 'the forced fetch after the minute');
    expect(api.fetches[4]!.forceRefresh).toBe(true);
    api.fetches[4]!.answer('T3');
    await third.done;
    expect(third.value).toBe('T3');
    expect(store.rows.get('oa1')?.lastForcedAtMs).toBe(START + FORCE_INTERVAL_MS);
  });

  it('waits for a refresh already in flight instead of forcing a second one', async () => {
    const { api, seed, instance } = setup();
    seed('oa1', { accessToken: 'T0', expiresAtMs: START + 60_000, fetchedAtMs: START - HOUR });
    const ahead = watch(instance().get(oa));
    await until(() => api.fetches.length === 1, 'the ahead-of-time refresh');
    const invalid = watch(instance().refreshAfterInvalid(oa, 'T0'));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(invalid.settled).toBe(false);
    api.fetches[0]!.answer('T1');
    await Promise.all([ahead.done, invalid.done]);
    expect(invalid.value).toBe('T1');
    expect(api.fetches).toHaveLength(1);
  });

  it('WeCom has no force flag: gettoken again, and no forced time is recorded', async () => {
    const { api, store, seed, instance } = setup();
    seed('corp1', { accessToken: 'W0', expiresAtMs: START + HOUR, fetchedAtMs: START - HOUR });
    const call = watch(instance().refreshAfterInvalid(wecom, 'W0'));
    await until(() => api.fetches.length === 1, 'the fetch');
    expect(api.fetches[0]).toMatchObject({ accountId: 'corp1', forceRefresh: false });
    api.fetches[0]!.answer('W1');
    await call.done;
    expect(call.value).toBe('W1');
    expect(store.rows.get('corp1')?.lastForcedAtMs).toBeUndefined();
  });

  it('a failed forced refresh fails the caller (the stale token is never the answer) and releases the lease', async () => {
    const { api, store, seed, instance } = setup();
    seed('oa1', { accessToken: 'T0', expiresAtMs: START + HOUR, fetchedAtMs: START - HOUR });
    const call = watch(instance().refreshAfterInvalid(oa, 'T0'));
    await until(() => api.fetches.length === 1, 'the fetch');
    api.fetches[0]!.fail(new WechatApiError(45011, 'api minute-quota reach limit', 'stable_token'));
    await call.done;
    expect(call.error).toMatchObject({ errcode: 45011 });
    expect(store.rows.get('oa1')?.leaseOwner).toBeUndefined();
    expect(store.rows.get('oa1')?.lastForcedAtMs).toBeUndefined();
  });
});

describe('accounts without an app secret', () => {
  it('fail clearly, naming the account and the field, never a value, before any store or API call', async () => {
    const { api, store, instance } = setup();
    const tokens = instance();
    const { appSecret: _s, ...noSecret } = oa;
    const { appSecret: _w, ...wecomNoSecret } = wecom;
    for (const call of [() => tokens.get(noSecret), () => tokens.refreshAfterInvalid(noSecret, 'T0')]) {
      const error = await call().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WechatAccountsError);
      expect((error as Error).message).toBe('WeChat account "oa1": appSecret is not configured; it is needed for access tokens');
    }
    const error = (await tokens.get(wecomNoSecret).catch((e: unknown) => e)) as Error;
    expect(error.message).toBe(`WeChat account "corp1": appSecret (the WeCom application's secret) is not configured; it is needed for access tokens`);
    expect(error.message).not.toContain(wecom.encodingAESKey);
    expect(error.message).not.toContain(wecom.token);
    expect(api.fetches).toHaveLength(0);
    expect(store.log).toEqual([]);
  });
});

describe('the in-memory store keeps the conditional semantics the domain relies on', () => {
  it('lease only when none is live; save and release only by the owner; save clears the lease', async () => {
    const store = new MemoryTokenStore();
    await expect(store.tryLease('a', 'o1', START, START + LEASE_MS)).resolves.toBe(true);
    await expect(store.tryLease('a', 'o2', START + LEASE_MS - 1, START + 2 * LEASE_MS)).resolves.toBe(false);
    await expect(store.saveToken('a', 'o2', 'X', START + HOUR, false, START)).resolves.toBe(false);
    await store.releaseLease('a', 'o2');
    expect(store.rows.get('a')?.leaseOwner).toBe('o1');
    await expect(store.saveToken('a', 'o1', 'T', START + HOUR, true, START)).resolves.toBe(true);
    expect(store.rows.get('a')).toEqual({ accessToken: 'T', expiresAtMs: START + HOUR, fetchedAtMs: START, lastForcedAtMs: START });
    await expect(store.tryLease('a', 'o3', START, START + LEASE_MS)).resolves.toBe(true);
    await expect(store.tryLease('a', 'o4', START + LEASE_MS, START + 2 * LEASE_MS)).resolves.toBe(true);
    await expect(store.saveToken('a', 'o3', 'late', START + HOUR, false, START)).resolves.toBe(false);
  });
});
