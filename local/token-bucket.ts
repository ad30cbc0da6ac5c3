/**
 * A token bucket, the shape of API Gateway's throttle: a steady `ratePerSecond` and a `burst`
 * (the bucket's size). The bucket starts full; each request takes one token or is refused
 * (nothing is queued, as in AWS, which answers 429 at once); tokens come back continuously at
 * `ratePerSecond`, never beyond `burst`.
 *
 * So from a full bucket, N requests at the same instant get exactly `burst` successes, and a
 * client that paces itself at or below `ratePerSecond` is never refused.
 */
export interface RateLimit {
  /** Steady rate, requests per second (> 0). AWS: 10,000 per account and Region. */
  readonly ratePerSecond: number;
  /** Largest number of requests let through at once (an integer >= 1). AWS: 5,000. */
  readonly burst: number;
}

/** Throws a RangeError for a rate that is not a positive finite number or a burst that is not an integer >= 1. */
export function checkRateLimit(limit: RateLimit | undefined, name = 'rate limit'): RateLimit | undefined {
  if (!limit) return undefined;
  const { ratePerSecond, burst } = limit;
  if (typeof ratePerSecond !== 'number' || !Number.isFinite(ratePerSecond) || ratePerSecond <= 0) {
    throw new RangeError(`${name}: ratePerSecond must be a positive number, got ${ratePerSecond}`);
  }
  if (typeof burst !== 'number' || !Number.isInteger(burst) || burst < 1) {
    throw new RangeError(`${name}: burst must be an integer of at least 1, got ${burst}`);
  }
  return limit;
}

export class TokenBucket {
  private tokens: number;
  private last: number;

  /** `now` is a millisecond clock (default `performance.now()`, monotonic); tests inject their own. */
  constructor(
    readonly limit: RateLimit,
    private readonly now: () => number = () => performance.now(),
  ) {
    checkRateLimit(limit);
    this.tokens = limit.burst;
    this.last = now();
  }

  private refill(): void {
    const now = this.now();
    const elapsed = now - this.last;
    // A clock that goes backwards adds nothing (and does not move `last` back).
    if (elapsed > 0) {
      this.tokens = Math.min(this.limit.burst, this.tokens + (elapsed * this.limit.ratePerSecond) / 1000);
      this.last = now;
    }
  }

  /** Takes one token: true if the request may go, false if it is throttled. */
  tryTake(): boolean {
    this.refill();
    // The epsilon absorbs floating-point dust: a token refilled over many small steps counts as whole.
    if (this.tokens >= 1 - 1e-9) {
      this.tokens = Math.max(0, this.tokens - 1);
      return true;
    }
    return false;
  }

  /** Tokens available now (fractional), for tests and diagnostics. */
  available(): number {
    this.refill();
    return this.tokens;
  }
}
