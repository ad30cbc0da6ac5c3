/**
 * The retry table (docs/wechat.md, "Retries by error code"), row by row, and the backoff it
 * feeds. Every delay becomes an SQS DelaySeconds, so it must be a whole number of seconds in
 * 1..900: 0 would retry at once (the point of a backoff is not to), above 900 SQS refuses.
 */
import { jest } from '@jest/globals';
import {
  BASE_BACKOFF_SECONDS,
  FREQUENCY_LIMIT_WAIT_SECONDS,
  MAX_ATTEMPTS,
  MAX_BACKOFF_SECONDS,
  NETWORK_FAILURE,
  RETRY_RULES,
  retryDecision,
  ruleFor,
  type FailureAction,
  type RetryRule,
} from '../../../lambdas/domain/wechat-retry-policy';

const EXPECTED: Array<[number, FailureAction]> = [
  [40001, 'refresh-token'],
  [40014, 'refresh-token'],
  [42001, 'refresh-token'],
  [-1, 'backoff'],
  [45011, 'wait-a-minute'],
  [45009, 'permanent'],
  [45015, 'permanent'],
  [45047, 'permanent'],
  [43101, 'permanent'],
  [40003, 'permanent'],
  [40037, 'permanent'],
  [47001, 'permanent'],
  [40125, 'permanent'],
  [40013, 'permanent'],
];

const RANDOMS = [0, 0.001, 0.25, 0.5, 0.75, 0.999];
const always = (value: number) => () => value;
const delayOf = (rule: RetryRule, attempt: number, random: number): number => {
  const decision = retryDecision(rule, attempt, always(random));
  if (!decision.retry) throw new Error(`expected a retry for ${rule.action} at attempt ${attempt}`);
  return decision.delaySeconds;
};
const retryingAttempts = Array.from({ length: MAX_ATTEMPTS - 1 }, (_, i) => i + 1);

describe('RETRY_RULES: the table row by row', () => {
  it('holds exactly the codes this test knows (a new row needs a row here)', () => {
    expect(Object.keys(RETRY_RULES).map(Number).sort((a, b) => a - b)).toEqual(EXPECTED.map(([code]) => code).sort((a, b) => a - b));
  });

  it.each(EXPECTED)('%i → %s, with a reason', (code, action) => {
    expect(ruleFor(code).action).toBe(action);
    expect(ruleFor(code)).toBe(RETRY_RULES[code]);
    expect(ruleFor(code).reason.length).toBeGreaterThan(10);
  });

  it.each([40002, 40164, 48001, 99999, 1, -2, 0.5, Number.NaN])('unknown code %p → permanent (never retried blindly)', (code) => {
    expect(ruleFor(code).action).toBe('permanent');
    expect(ruleFor(code).reason).toMatch(/does not know/);
    expect(retryDecision(ruleFor(code), 1, always(0.5))).toEqual({ retry: false });
  });

  it('a network failure backs off (WeChat may not have seen the call)', () => {
    expect(NETWORK_FAILURE.action).toBe('backoff');
    expect(retryDecision(NETWORK_FAILURE, 1, always(0))).toEqual({ retry: true, delaySeconds: expect.any(Number) });
  });
});

describe('retryDecision', () => {
  it.each(EXPECTED.filter(([, action]) => action === 'permanent' || action === 'refresh-token'))('%i (%s) is never retried through the queue, at any attempt', (code) => {
    for (let attempt = 1; attempt <= MAX_ATTEMPTS + 1; attempt++) {
      for (const r of RANDOMS) expect(retryDecision(ruleFor(code), attempt, always(r))).toEqual({ retry: false });
    }
  });

  it.each([
    ['-1', ruleFor(-1)],
    ['45011', ruleFor(45011)],
    ['network', NETWORK_FAILURE],
  ])('%s: retried before MAX_ATTEMPTS, never at or after it', (_name, rule) => {
    for (const attempt of retryingAttempts) expect(retryDecision(rule, attempt, always(0.5)).retry).toBe(true);
    expect(retryDecision(rule, MAX_ATTEMPTS, always(0.5))).toEqual({ retry: false });
    expect(retryDecision(rule, MAX_ATTEMPTS + 1, always(0))).toEqual({ retry: false });
    expect(retryDecision(rule, 1000, always(0))).toEqual({ retry: false });
  });

  it('backoff: the window starts at BASE_BACKOFF_SECONDS and doubles per attempt, capped at MAX_BACKOFF_SECONDS', () => {
    const windows = retryingAttempts.map((attempt) => Math.min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * 2 ** (attempt - 1)));
    // random() → 1 reaches the top of the window.
    expect(retryingAttempts.map((attempt) => delayOf(NETWORK_FAILURE, attempt, 0.999))).toEqual(windows);
    expect(retryingAttempts.map((attempt) => delayOf(ruleFor(-1), attempt, 0.999))).toEqual(windows);
    for (let i = 1; i < windows.length; i++) expect(windows[i]).toBeGreaterThan(windows[i - 1]!);
  });

  it('backoff never exceeds MAX_BACKOFF_SECONDS (nor 900) at any attempt that retries', () => {
    for (const attempt of retryingAttempts) {
      for (const r of RANDOMS) {
        const delay = delayOf(NETWORK_FAILURE, attempt, r);
        expect(delay).toBeLessThanOrEqual(MAX_BACKOFF_SECONDS);
        expect(delay).toBeLessThanOrEqual(900);
      }
    }
    expect(MAX_BACKOFF_SECONDS).toBeLessThanOrEqual(900);
  });

  it('jitter: random()=0 lands at half the window (never at once), random()=0.999 at its top', () => {
    for (const attempt of retryingAttempts) {
      const window = Math.min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * 2 ** (attempt - 1));
      const low = delayOf(ruleFor(-1), attempt, 0);
      const high = delayOf(ruleFor(-1), attempt, 0.999);
      expect(low).toBe(Math.ceil(window / 2));
      expect(low).toBeGreaterThanOrEqual(1);
      expect(high).toBe(window);
      for (const r of RANDOMS) {
        const delay = delayOf(ruleFor(-1), attempt, r);
        expect(Number.isInteger(delay)).toBe(true);
        expect(delay).toBeGreaterThanOrEqual(low);
        expect(delay).toBeLessThanOrEqual(high);
      }
    }
  });

  it('jitter spreads: different random() values give different delays once the window is wide', () => {
    const delays = new Set(RANDOMS.map((r) => delayOf(NETWORK_FAILURE, MAX_ATTEMPTS - 1, r)));
    expect(delays.size).toBeGreaterThan(2);
  });

  it('45011 waits at least a full minute (the next window), at most 70 s, whatever the attempt', () => {
    for (const attempt of retryingAttempts) {
      expect(delayOf(ruleFor(45011), attempt, 0)).toBe(FREQUENCY_LIMIT_WAIT_SECONDS);
      expect(delayOf(ruleFor(45011), attempt, 0.999)).toBe(FREQUENCY_LIMIT_WAIT_SECONDS + 10);
      for (const r of RANDOMS) {
        const delay = delayOf(ruleFor(45011), attempt, r);
        expect(delay).toBeGreaterThanOrEqual(60);
        expect(Number.isInteger(delay)).toBe(true);
      }
    }
  });

  it('no rule, attempt or random() gives a delay above 900 (SQS refuses) or below 1', () => {
    const rules = [...Object.values(RETRY_RULES), NETWORK_FAILURE, ruleFor(12345)];
    for (const rule of rules) {
      for (let attempt = 1; attempt <= MAX_ATTEMPTS + 2; attempt++) {
        for (const r of [...RANDOMS, 0.9999999999]) {
          const decision = retryDecision(rule, attempt, always(r));
          if (!decision.retry) continue;
          expect(decision.delaySeconds).toBeGreaterThanOrEqual(1);
          expect(decision.delaySeconds).toBeLessThanOrEqual(900);
        }
      }
    }
  });

  it('uses Math.random when no random() is given', () => {
    const decision = retryDecision(ruleFor(-1), 3);
    expect(decision.retry).toBe(true);
    if (decision.retry) {
      expect(decision.delaySeconds).toBeGreaterThanOrEqual(4);
      expect(decision.delaySeconds).toBeLessThanOrEqual(8);
    }
  });

  it('consults random() at most once per decision and not at all when it does not retry', () => {
    const random = jest.fn(() => 0.5);
    retryDecision(ruleFor(45015), 1, random);
    retryDecision(ruleFor(40001), 1, random);
    retryDecision(ruleFor(-1), MAX_ATTEMPTS, random);
    expect(random).not.toHaveBeenCalled();
    retryDecision(ruleFor(-1), 1, random);
    expect(random).toHaveBeenCalledTimes(1);
  });
});
