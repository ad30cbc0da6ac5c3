/**
 * What to do when a WeChat API call fails, by error code (docs/wechat.md, "Retries by error
 * code"). One table, one reason per row. Retries go through the outbound queue with a delay,
 * never through a sleep inside a Lambda.
 */
export type FailureAction =
  /** The access token is bad: one forced refresh and one immediate retry, then give up. */
  | 'refresh-token'
  /** Transient: retry later with exponential backoff and jitter. */
  | 'backoff'
  /** A rate limit by the minute: retry no sooner than the next minute. */
  | 'wait-a-minute'
  /** Retrying cannot help: report the code to the sender. */
  | 'permanent';

export interface RetryRule {
  readonly action: FailureAction;
  readonly reason: string;
}

/** The error codes wxgate knows; every other non-zero code is permanent (see `ruleFor`). */
export const RETRY_RULES: Readonly<Record<number, RetryRule>> = {
  40001: { action: 'refresh-token', reason: 'access token invalid or not the latest (refreshed elsewhere, or revoked)' },
  40014: { action: 'refresh-token', reason: 'access token malformed or not valid' },
  42001: { action: 'refresh-token', reason: 'access token expired' },
  [-1]: { action: 'backoff', reason: 'system busy: WeChat asks callers to try again later' },
  45011: { action: 'wait-a-minute', reason: 'API call frequency limit (per minute): the next minute has room again' },
  45009: { action: 'permanent', reason: 'daily API quota spent: retrying today only burns calls' },
  45015: { action: 'permanent', reason: 'reply window closed: the user has not talked to the account in the last 48 hours' },
  45047: { action: 'permanent', reason: 'too many customer-service messages without an answer from the user' },
  43101: { action: 'permanent', reason: 'the user refused (or has not accepted) this subscribe message' },
  40003: { action: 'permanent', reason: 'invalid openid (not a user of this account)' },
  40037: { action: 'permanent', reason: 'invalid template_id' },
  47001: { action: 'permanent', reason: 'payload format error: the same payload fails the same way' },
  40125: { action: 'permanent', reason: 'invalid app secret: fix the account configuration' },
  40013: { action: 'permanent', reason: 'invalid appid / corpid: fix the account configuration' },
};

const UNKNOWN_CODE: RetryRule = { action: 'permanent', reason: 'an error code wxgate does not know to be transient' };
/** A network error, timeout or unusable answer: WeChat may or may not have acted; retry. */
export const NETWORK_FAILURE: RetryRule = { action: 'backoff', reason: 'network error or timeout: transient' };

export const ruleFor = (errcode: number): RetryRule => RETRY_RULES[errcode] ?? UNKNOWN_CODE;

/** Attempts in all (the first included) before a transient failure is reported as final. */
export const MAX_ATTEMPTS = 6;
/** First backoff; doubles per attempt up to MAX_BACKOFF_SECONDS (SQS delays stop at 900 s). */
export const BASE_BACKOFF_SECONDS = 2;
export const MAX_BACKOFF_SECONDS = 300;
/** 45011 counts calls per minute: waiting one full minute lands in a fresh window. */
export const FREQUENCY_LIMIT_WAIT_SECONDS = 60;

export type RetryDecision = { retry: true; delaySeconds: number } | { retry: false };

/**
 * Whether attempt `attempt` (1-based) that failed under `rule` gets another one, and after how
 * long. Full jitter over the upper half of the window spreads retries of many messages that
 * failed together (a busy spell) without ever retrying at once.
 */
export function retryDecision(rule: RetryRule, attempt: number, random: () => number = Math.random): RetryDecision {
  if (rule.action === 'permanent' || rule.action === 'refresh-token' || attempt >= MAX_ATTEMPTS) return { retry: false };
  const window = rule.action === 'wait-a-minute' ? FREQUENCY_LIMIT_WAIT_SECONDS : Math.min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * 2 ** (attempt - 1));
  const delaySeconds = rule.action === 'wait-a-minute' ? window + Math.ceil(random() * 10) : Math.ceil(window / 2 + random() * (window / 2));
  return { retry: true, delaySeconds: Math.min(900, delaySeconds) };
}
