/**
 * Jittered exponential backoff for reconnecting sockets: the n-th retry waits a random time in
 * [base/2, base] with base = min(maxMs, initialMs · 2ⁿ), so a fleet of runtimes that lost the gateway at the same
 * moment does not come back in lockstep.
 */
export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  /** Source of randomness in [0, 1); tests may pin it. */
  random?: () => number;
}

export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(options: BackoffOptions = {}) {
    this.#initialMs = options.initialMs ?? 250;
    this.#maxMs = options.maxMs ?? 5000;
    this.#random = options.random ?? Math.random;
    if (!(this.#initialMs > 0 && this.#maxMs >= this.#initialMs)) throw new RangeError("backoff: need 0 < initialMs ≤ maxMs");
  }

  /** The delay before the next attempt; each call counts one failed attempt. */
  next(): number {
    const base = Math.min(this.#maxMs, this.#initialMs * 2 ** this.#attempt);
    this.#attempt++;
    return Math.round(base / 2 + (this.#random() * base) / 2);
  }

  /** After a success: the next failure waits the initial delay again. */
  reset(): void {
    this.#attempt = 0;
  }
}
