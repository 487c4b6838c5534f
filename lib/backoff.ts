/**
 * Jittered exponential backoff, the one delay rule for everything that reconnects: the runtime agent's gateway
 * socket and the supervisor's restarts (`Backoff`), and the SDK's reconnect policy (`backoffDelay`, bounded there by
 * the session's grace deadline). The n-th retry (0 = first) has base = min(maxMs, initialMs · 2ⁿ) and waits a random
 * time in [base · (1 − jitter), base], so a fleet that lost the gateway at the same moment does not come back in
 * lockstep. Plain arithmetic: runs in Node, browsers and workerd alike.
 */
export interface BackoffOptions {
  /** First delay (before jitter). Default 250 ms. */
  initialMs?: number;
  /** Largest delay. Default 5 s. */
  maxMs?: number;
  /** Random share of each delay, 0..1: 0.5 means the delay is drawn from [d/2, d]. Default 0.5. */
  jitter?: number;
  /** Random numbers in [0, 1); injectable for tests. */
  random?: () => number;
}

export const BACKOFF_DEFAULTS = { initialMs: 250, maxMs: 5000, jitter: 0.5 } as const;

/**
 * The delay before retry `retry` (0 = first), in whole ms. `cut` in [0, 1] is how much of the jitter share is taken
 * off: 0 waits the full base, 1 the shortest delay.
 */
export function backoffDelay(retry: number, shape: { initialMs: number; maxMs: number; jitter: number }, cut: number): number {
  const base = Math.min(shape.maxMs, shape.initialMs * 2 ** retry);
  return Math.round(base * (1 - shape.jitter * cut));
}

/** A backoff that counts its own attempts: `next()` after each failure, `reset()` after a success. */
export class Backoff {
  readonly #shape: { initialMs: number; maxMs: number; jitter: number };
  readonly #random: () => number;
  #attempt = 0;

  constructor(options: BackoffOptions = {}) {
    const { initialMs = BACKOFF_DEFAULTS.initialMs, maxMs = BACKOFF_DEFAULTS.maxMs, jitter = BACKOFF_DEFAULTS.jitter } = options;
    this.#shape = { initialMs, maxMs, jitter };
    this.#random = options.random ?? Math.random;
    if (!(initialMs > 0 && maxMs >= initialMs)) throw new RangeError("backoff: need 0 < initialMs ≤ maxMs");
  }

  /**
   * The delay before the next attempt; each call counts one failed attempt. Here a random number near 0 gives the
   * short end of [base/2, base] (the runtime's convention since it began, which its callers' pinned tests rely on).
   */
  next(): number {
    return backoffDelay(this.#attempt++, this.#shape, 1 - this.#random());
  }

  /** After a success: the next failure waits the initial delay again. */
  reset(): void {
    this.#attempt = 0;
  }
}
