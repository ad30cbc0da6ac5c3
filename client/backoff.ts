/**
 * Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"):
 * attempt n (0-based) waits a uniformly random time in [0, min(maxMs, baseMs · 2^n)).
 * `random` returns values in [0, 1), as Math.random does.
 */
export const backoffDelay = (attempt: number, baseMs: number, maxMs: number, random: () => number): number =>
  Math.floor(random() * Math.min(maxMs, baseMs * 2 ** attempt));
