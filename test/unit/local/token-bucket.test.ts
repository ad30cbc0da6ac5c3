import { describe, expect, test } from '@jest/globals';
import { checkRateLimit, TokenBucket } from '../../../local/token-bucket';

/** A clock the test moves by hand (milliseconds). */
function manualClock(start = 1_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => void (now += ms), set: (ms: number) => void (now = ms) };
}

const takeMany = (bucket: TokenBucket, n: number) => Array.from({ length: n }, () => bucket.tryTake()).filter(Boolean).length;

describe('TokenBucket', () => {
  test('starts full: at one instant exactly `burst` requests pass, the rest are refused', () => {
    const clock = manualClock();
    const bucket = new TokenBucket({ ratePerSecond: 50, burst: 10 }, clock.now);
    expect(takeMany(bucket, 100)).toBe(10);
    expect(bucket.tryTake()).toBe(false);
  });

  test('refills continuously at ratePerSecond', () => {
    const clock = manualClock();
    const bucket = new TokenBucket({ ratePerSecond: 50, burst: 10 }, clock.now);
    takeMany(bucket, 10);
    clock.advance(19); // 0.95 of a token
    expect(bucket.tryTake()).toBe(false);
    clock.advance(1); // 20 ms = 1 token at 50/s
    expect(bucket.tryTake()).toBe(true);
    expect(bucket.tryTake()).toBe(false);
    clock.advance(100); // 5 tokens
    expect(takeMany(bucket, 10)).toBe(5);
  });

  test('never holds more than burst, however long it was idle', () => {
    const clock = manualClock();
    const bucket = new TokenBucket({ ratePerSecond: 1_000, burst: 3 }, clock.now);
    clock.advance(3_600_000);
    expect(bucket.available()).toBe(3);
    expect(takeMany(bucket, 10)).toBe(3);
  });

  test('a client paced at or below the rate is never refused', () => {
    const clock = manualClock();
    const bucket = new TokenBucket({ ratePerSecond: 50, burst: 1 }, clock.now);
    // Exactly at the rate (one request every 20 ms), for 10 simulated seconds, from an empty-ish bucket.
    let refused = 0;
    for (let i = 0; i < 500; i++) {
      if (!bucket.tryTake()) refused++;
      clock.advance(20);
    }
    expect(refused).toBe(0);
    // Rates whose period is not a whole number of ms accumulate floating-point dust; still none refused.
    const odd = new TokenBucket({ ratePerSecond: 3, burst: 1 }, clock.now);
    for (let i = 0; i < 300; i++) {
      expect(odd.tryTake()).toBe(true);
      for (let step = 0; step < 10; step++) clock.advance(1000 / 3 / 10);
    }
  });

  test('a client going faster than the rate gets the rate (plus the burst) over time', () => {
    const clock = manualClock();
    const bucket = new TokenBucket({ ratePerSecond: 100, burst: 20 }, clock.now);
    let allowed = 0;
    // 1,000 requests/s for 5 s: 20 from the burst + 100/s * 5 s.
    for (let i = 0; i < 5_000; i++) {
      if (bucket.tryTake()) allowed++;
      clock.advance(1);
    }
    expect(allowed).toBeGreaterThanOrEqual(519);
    expect(allowed).toBeLessThanOrEqual(521);
  });

  test('a clock going backwards adds no tokens', () => {
    const clock = manualClock(10_000);
    const bucket = new TokenBucket({ ratePerSecond: 10, burst: 2 }, clock.now);
    takeMany(bucket, 2);
    clock.set(5_000);
    expect(bucket.tryTake()).toBe(false);
    clock.set(10_100); // 100 ms after the last real reading: one token
    expect(bucket.tryTake()).toBe(true);
    expect(bucket.tryTake()).toBe(false);
  });

  test('fractional rates work (one request every 2 s)', () => {
    const clock = manualClock();
    const bucket = new TokenBucket({ ratePerSecond: 0.5, burst: 1 }, clock.now);
    expect(bucket.tryTake()).toBe(true);
    clock.advance(1_999);
    expect(bucket.tryTake()).toBe(false);
    clock.advance(1);
    expect(bucket.tryTake()).toBe(true);
  });
});

describe('checkRateLimit', () => {
  test('accepts a positive rate and an integer burst >= 1; undefined is no limit', () => {
    expect(checkRateLimit({ ratePerSecond: 10_000, burst: 5_000 })).toEqual({ ratePerSecond: 10_000, burst: 5_000 });
    expect(checkRateLimit(undefined)).toBeUndefined();
  });

  test.each([
    [{ ratePerSecond: 0, burst: 1 }, /ratePerSecond/],
    [{ ratePerSecond: -5, burst: 1 }, /ratePerSecond/],
    [{ ratePerSecond: Number.NaN, burst: 1 }, /ratePerSecond/],
    [{ ratePerSecond: Number.POSITIVE_INFINITY, burst: 1 }, /ratePerSecond/],
    [{ ratePerSecond: 10, burst: 0 }, /burst/],
    [{ ratePerSecond: 10, burst: 2.5 }, /burst/],
    [{ ratePerSecond: 10, burst: Number.NaN }, /burst/],
  ])('refuses %o', (limit, message) => {
    expect(() => checkRateLimit(limit)).toThrow(message);
    expect(() => new TokenBucket(limit)).toThrow(RangeError);
  });
});
