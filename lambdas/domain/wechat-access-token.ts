import type { Clock } from './clock';
import { WechatAccountsError, type WechatAccount } from './wechat-accounts';
import { WechatNetworkError, type AccessTokens, type FetchedToken, type WechatTokenApi } from './wechat-api';

/**
 * Access tokens of official accounts (cgi-bin/stable_token) and WeCom apps (cgi-bin/gettoken),
 * one module for both (issue 9.1). The token of an account is cached in one row (TokenStore) with
 * its expiry, shared by every Lambda instance. Refreshing is done by exactly one caller at a time,
 * the holder of a lease on that row taken with a conditional write; everyone else either uses the
 * old token while it still has life, or waits for the holder's new one. A lease whose holder died
 * runs out and is taken over. WeChat never sees two token calls for one account at once, so a
 * cold start of many instances costs one call, not one per instance.
 */

/**
 * Refreshed when 5 minutes of life or fewer remain. Both of WeChat's stable_token normal mode and
 * its old token endpoint hand out a new token in the last 5 minutes of the old one (both stay
 * valid meanwhile); earlier they answer the same token again.
 */
export const REFRESH_AHEAD_MS = 5 * 60_000;
/**
 * An ahead-of-time refresh is not repeated sooner than this after the last fetch. Without it, a
 * fetch that WeChat answers with the same, still-ending token (stable_token just before its own
 * 5-minute mark, or WeCom, whose gettoken returns the same token until it has expired) would leave
 * the token inside the refresh window and every following call would fetch again.
 */
export const REFRESH_AHEAD_SPACING_MS = 60_000;
/**
 * How long a refresh may hold the lease: longer than the token call's timeout (5 s,
 * adapters/wechat-http-api.ts) plus the DynamoDB reads and writes around it, so a live holder
 * never loses its lease to a second caller, and short enough that callers waiting on a cold cache
 * take over soon after a holder died.
 */
export const LEASE_MS = 10_000;
/** How often a waiting caller reads the row again. */
export const POLL_MS = 100;
/** A waiter gives up after one full lease (the holder's, then possibly a take-over) and a margin. */
export const WAIT_MS = LEASE_MS + 2_000;
/**
 * The stored expiry is this much earlier than WeChat's: expires_in counts from WeChat's answer,
 * while we count from before our request (the request's own duration is lost), clocks differ a
 * little, and a token handed out must survive the call it is used for. At most a tenth of the
 * token's life, so a short-lived token (WeCom's gettoken answering the old token's last seconds,
 * short TTLs in tests) keeps most of it instead of being stored as already expired.
 */
export const EXPIRY_MARGIN_MS = 60_000;
/**
 * At most one forced refresh per minute per account. A forced refresh invalidates the token every
 * other caller holds and WeChat limits them (30 s apart, a small daily quota). If WeChat still
 * rejects the token forced less than a minute ago, forcing again would not help: the likely cause
 * is someone else forcing (another system using the same appId, or WeChat's propagation), and
 * stable_token in normal mode answers exactly the token WeChat currently holds valid.
 */
export const FORCE_INTERVAL_MS = 60_000;

/** The token row of an account. Every field may be missing: a row may hold only a lease. */
export interface TokenRow {
  accessToken?: string;
  /** Epoch ms after which the token is not handed out (WeChat's expiry minus the margin). */
  expiresAtMs?: number;
  /** Epoch ms at which the stored token was fetched (the start of the request). */
  fetchedAtMs?: number;
  leaseOwner?: string;
  leaseUntilMs?: number;
  /** Epoch ms of the last forced refresh (official accounts only). */
  lastForcedAtMs?: number;
}

/** Where tokens are cached (adapters/dynamo-wechat-token-store.ts). Reads are strongly consistent. */
export interface TokenStore {
  read(accountId: string): Promise<TokenRow | undefined>;
  /** Takes the lease (creating the row if missing) only if no lease is live (leaseUntilMs > nowMs). */
  tryLease(accountId: string, owner: string, nowMs: number, leaseUntilMs: number): Promise<boolean>;
  /**
   * Stores the token and clears the lease, only if `owner` still holds it (even if it ran out, as
   * long as nobody took it over); sets fetchedAtMs = nowMs, and lastForcedAtMs = nowMs if forced.
   * False when the lease was lost (nothing written).
   */
  saveToken(accountId: string, owner: string, token: string, expiresAtMs: number, forced: boolean, nowMs: number): Promise<boolean>;
  /** Clears the lease if `owner` still holds it; otherwise does nothing. */
  releaseLease(accountId: string, owner: string): Promise<void>;
}

export interface AccessTokenDeps {
  store: TokenStore;
  api: WechatTokenApi;
  clock: Clock;
  sleep: (ms: number) => Promise<void>;
  /** A new unique id for every lease taken. */
  newLeaseOwner: () => string;
  /**
   * Told about failures that do not fail the caller: an ahead-of-time refresh that failed while
   * the old token still had life (the caller got the old one), or a fetched token that could not
   * be stored (the caller got it all the same). For logs and metrics.
   */
  onBackgroundFailure?: (failure: { accountId: string; stage: 'refreshAhead' | 'save'; error: unknown }) => void;
}

/** The app secret an account needs for tokens or login; the error names the account and field, never a value. */
export function appSecretOf(account: WechatAccount, purpose: string): string {
  if (!account.appSecret) {
    const field = account.kind === 'wecom' ? "appSecret (the WeCom application's secret)" : 'appSecret';
    throw new WechatAccountsError(`WeChat account "${account.accountId}": ${field} is not configured; it is needed for ${purpose}`);
  }
  return account.appSecret;
}

type Mode = { kind: 'normal' } | { kind: 'invalid'; staleToken: string };

export function createAccessTokens(deps: AccessTokenDeps): AccessTokens {
  const { store, api, clock } = deps;

  const usable = (row: TokenRow | undefined, now: number): row is TokenRow & { accessToken: string; expiresAtMs: number } =>
    row?.accessToken !== undefined && row.expiresAtMs !== undefined && row.expiresAtMs > now;
  const dueAhead = (row: { expiresAtMs: number; fetchedAtMs?: number }, now: number) =>
    row.expiresAtMs - now <= REFRESH_AHEAD_MS && (row.fetchedAtMs === undefined || now - row.fetchedAtMs >= REFRESH_AHEAD_SPACING_MS);
  const fresh = (row: TokenRow | undefined, now: number): row is TokenRow & { accessToken: string } => usable(row, now) && !dueAhead(row, now);
  const leasedByOther = (row: TokenRow | undefined, now: number) => row?.leaseUntilMs !== undefined && row.leaseUntilMs > now;
  const marginMs = (expiresInSeconds: number) => Math.max(0, Math.min(EXPIRY_MARGIN_MS, expiresInSeconds * 100));

  const waitedTooLong = (accountId: string) =>
    new WechatNetworkError(`no access token for account "${accountId}": another caller's refresh did not finish within ${WAIT_MS} ms`, 'access_token');

  /**
   * Takes the lease and refreshes. Undefined when another caller won the lease. Under the lease
   * the row is read again: a holder that finished between our read and our lease has already
   * stored what we came for.
   */
  async function refreshUnderLease(account: WechatAccount, mode: Mode, seen: TokenRow | undefined): Promise<string | undefined> {
    const { accountId } = account;
    const owner = deps.newLeaseOwner();
    const leasedAt = clock.nowMs();
    if (!(await store.tryLease(accountId, owner, leasedAt, leasedAt + LEASE_MS))) return undefined;
    // The old token, if it still has life: what the caller gets if an ahead-of-time refresh fails.
    let fallback = mode.kind === 'normal' && usable(seen, leasedAt) ? seen.accessToken : undefined;
    let fetched: { accessToken: string; expiresAtMs: number; forced: boolean; fetchedAt: number };
    try {
      const row = await store.read(accountId);
      const now = clock.nowMs();
      const replaced = mode.kind === 'normal' || row?.accessToken !== mode.staleToken;
      if (replaced && fresh(row, now)) {
        await store.releaseLease(accountId, owner);
        return row.accessToken;
      }
      if (replaced) fallback = usable(row, now) ? row.accessToken : undefined;
      // Normal mode first, always: stable_token answers the token WeChat holds valid now, so after
      // someone else's forced refresh (40001) or an expiry (42001) it already gives the new one,
      // and forcing would invalidate a token other systems on this appId just fetched (two
      // systems forcing each other in turn) and spend one of the day's 20 forced refreshes. Only
      // when normal mode answers the very token WeChat refused is it forced, at most once a
      // minute per account. WeCom's gettoken has no force flag: it answers the token WeCom holds
      // valid, a new one once the old was invalidated or expired.
      let fetchedAt = clock.nowMs();
      let token: FetchedToken = await api.fetchToken(account, { forceRefresh: false });
      const lastForced = row?.lastForcedAtMs;
      const forced =
        !replaced && account.kind === 'oa' && token.accessToken === mode.staleToken && !(lastForced !== undefined && now - lastForced < FORCE_INTERVAL_MS);
      if (forced) {
        fetchedAt = clock.nowMs();
        // A refused force (45009: the day's 20 are spent, shared with whatever else uses this
        // appId; 45011) propagates: normal mode already answered the refused token.
        token = await api.fetchToken(account, { forceRefresh: true });
      }
      fetched = { accessToken: token.accessToken, expiresAtMs: fetchedAt + token.expiresInSeconds * 1000 - marginMs(token.expiresInSeconds), forced, fetchedAt };
    } catch (error) {
      // Best effort: an unreleased lease runs out within LEASE_MS anyway.
      await store.releaseLease(accountId, owner).catch(() => undefined);
      if (fallback !== undefined) {
        deps.onBackgroundFailure?.({ accountId, stage: 'refreshAhead', error });
        return fallback;
      }
      throw error;
    }
    try {
      // False if our lease was taken over (we overran it): the token is valid all the same.
      await store.saveToken(accountId, owner, fetched.accessToken, fetched.expiresAtMs, fetched.forced, fetched.fetchedAt);
    } catch (error) {
      await store.releaseLease(accountId, owner).catch(() => undefined);
      deps.onBackgroundFailure?.({ accountId, stage: 'save', error });
    }
    return fetched.accessToken;
  }

  async function get(account: WechatAccount): Promise<string> {
    appSecretOf(account, 'access tokens');
    const deadline = clock.nowMs() + WAIT_MS;
    for (;;) {
      const now = clock.nowMs();
      const row = await store.read(account.accountId);
      if (fresh(row, now)) return row.accessToken;
      if (!leasedByOther(row, now)) {
        const token = await refreshUnderLease(account, { kind: 'normal' }, row);
        if (token !== undefined) return token;
        continue; // Someone else took the lease first: look again.
      }
      // Someone is refreshing. The old token, while it lasts, serves meanwhile.
      if (usable(row, now)) return row.accessToken;
      if (now >= deadline) throw waitedTooLong(account.accountId);
      await deps.sleep(POLL_MS);
    }
  }

  async function refreshAfterInvalid(account: WechatAccount, staleToken: string): Promise<string> {
    appSecretOf(account, 'access tokens');
    const deadline = clock.nowMs() + WAIT_MS;
    for (;;) {
      const now = clock.nowMs();
      const row = await store.read(account.accountId);
      // Already replaced by another caller (or never stored): the ordinary rules apply.
      if (row?.accessToken !== staleToken) return get(account);
      if (!leasedByOther(row, now)) {
        const token = await refreshUnderLease(account, { kind: 'invalid', staleToken }, row);
        if (token !== undefined) return token;
        continue;
      }
      // The stored token is the invalid one: wait for the holder's, never hand this one out.
      if (now >= deadline) throw waitedTooLong(account.accountId);
      await deps.sleep(POLL_MS);
    }
  }

  return { get, refreshAfterInvalid };
}
