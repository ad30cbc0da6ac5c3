import type { Clock } from './clock';
import { epochSeconds } from './clock';
import { GatewayError } from './errors';

/**
 * The per-user send rate (docs/architecture.md, "Limits"). One client must not be able to spend
 * the account's shared budgets (API Gateway's 10,000 requests/s, the @connections post rate,
 * Lambda concurrency) on its own. A fixed window per user, counted with one conditional
 * DynamoDB update per send (1 write unit): a token bucket would need a read and a conditional
 * write, and per-instance counters in memory do not see a client whose frames reach many
 * Lambda instances. A fixed window lets a client send up to twice its allowance across a window
 * boundary; the allowance is sized with that in mind.
 */
export const SEND_RATE_WINDOW_MS = 10_000;

export interface SendRateStore {
  /**
   * Counts one send of `userId` in the window starting at `windowStartMs`, unless the window
   * already holds `allowance`; answers whether the send was counted (admitted).
   */
  admit(userId: string, windowStartMs: number, allowance: number, expiresAt: number): Promise<boolean>;
}

export interface SendRateDeps {
  store: SendRateStore;
  clock: Clock;
  /** Sends per second per user, averaged over the window; 0 turns the limit off. */
  perSecond: number;
}

/** Admits one send of `userId`, or throws `rate_limited` with the time until the next window. */
export async function admitSend(deps: SendRateDeps, userId: string): Promise<void> {
  if (deps.perSecond <= 0) return;
  const now = deps.clock.nowMs();
  const windowStart = now - (now % SEND_RATE_WINDOW_MS);
  const allowance = Math.max(1, Math.round((deps.perSecond * SEND_RATE_WINDOW_MS) / 1000));
  // The row outlives its window by a margin, so TTL never removes a window still being counted.
  const expiresAt = epochSeconds(windowStart + 2 * SEND_RATE_WINDOW_MS);
  if (await deps.store.admit(userId, windowStart, allowance, expiresAt)) return;
  const retryAfterMs = windowStart + SEND_RATE_WINDOW_MS - now;
  throw new GatewayError(
    'rate_limited',
    `more than ${allowance} sends in ${SEND_RATE_WINDOW_MS / 1000} s; send again in ${Math.ceil(retryAfterMs / 1000)} s (with the same id)`,
    retryAfterMs,
  );
}
