/**
 * When a supervised child that crashed is started again (supervisor.ts; `npm start` restarts its runtime agent
 * this way): after a jittered, doubling delay (lib/backoff.ts), and not at all once it crashed `maxQuickCrashes`
 * times in a row, each within `quickMs` of its start — a child that cannot stay up is not restarted forever. A child
 * that ran longer than `quickMs` before crashing starts a new count, from the shortest delay.
 */
import { Backoff, type BackoffOptions } from "../../lib/backoff.ts";

export interface RestartPolicyOptions {
  /** Crashes in a row, each within `quickMs` of starting, after which the child is left down (default 5). */
  maxQuickCrashes?: number;
  /** A run shorter than this counts as a quick crash (default 30 s). */
  quickMs?: number;
  /** Delays between restarts (default 0.5 s doubling to 10 s, each a random time in [base/2, base]). */
  backoff?: BackoffOptions;
}

export type RestartDecision =
  | { restart: true; delayMs: number /** 1 for the first restart after a stable run. */; attempt: number }
  | { restart: false /** Why not, for the person reading the log. */; reason: string };

export class RestartPolicy {
  readonly maxQuickCrashes: number;
  readonly quickMs: number;
  readonly #backoff: Backoff;
  #quickCrashes = 0;
  #attempt = 0;

  constructor(options: RestartPolicyOptions = {}) {
    this.maxQuickCrashes = options.maxQuickCrashes ?? 5;
    this.quickMs = options.quickMs ?? 30_000;
    if (!(Number.isInteger(this.maxQuickCrashes) && this.maxQuickCrashes >= 1))
      throw new RangeError("restart policy: maxQuickCrashes must be a positive integer");
    this.#backoff = new Backoff({ initialMs: 500, maxMs: 10_000, ...options.backoff });
  }

  /** The child crashed after running `ranMs`: restart it (after `delayMs`), or give up. */
  afterCrash(ranMs: number): RestartDecision {
    if (ranMs >= this.quickMs) {
      // It had been up a while: a fresh incident, not a crash loop.
      this.#quickCrashes = 0;
      this.#attempt = 0;
      this.#backoff.reset();
    } else {
      this.#quickCrashes++;
    }
    if (this.#quickCrashes >= this.maxQuickCrashes) {
      return {
        restart: false,
        reason: `it crashed ${this.#quickCrashes} times in a row, each within ${Math.round(this.quickMs / 1000)} s of starting`,
      };
    }
    this.#attempt++;
    return { restart: true, delayMs: this.#backoff.next(), attempt: this.#attempt };
  }
}
