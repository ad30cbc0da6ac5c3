/** Injected time source, so domain code is testable without fake timers. */
export interface Clock {
  nowMs(): number;
}

export const systemClock: Clock = { nowMs: () => Date.now() };

export const epochSeconds = (ms: number): number => Math.floor(ms / 1000);
