/**
 * When to try again after the signaling connection dropped. The session survives a drop only for its grace window
 * (the gateway's `status.deadline`, or `graceMs` from the drop when the gateway had no chance to say), so every
 * delay is bounded by it: a policy answers the delay before the next attempt, or null to give up.
 */
import { BACKOFF_DEFAULTS, backoffDelay, type BackoffOptions as SharedBackoffOptions } from "../../lib/backoff.ts";

export interface ReconnectContext {
  /** 1 for the first attempt after a drop. */
  attempt: number;
  /** ms since the connection dropped. */
  elapsedMs: number;
  /** ms left until the session's grace deadline (may be ≤ 0). */
  remainingMs: number;
}

export interface ReconnectPolicy {
  nextDelayMs(context: ReconnectContext): number | null;
}

export interface BackoffOptions extends SharedBackoffOptions {
  /** Tried no later than this before the deadline, so the last attempt still has time to complete. Default 1 s. */
  marginMs?: number;
}

/** Exponential backoff with jitter (clients dropped together do not return together), bounded by the deadline. */
export function jitteredBackoff(options: BackoffOptions = {}): ReconnectPolicy {
  const {
    initialMs = BACKOFF_DEFAULTS.initialMs,
    maxMs = BACKOFF_DEFAULTS.maxMs,
    jitter = BACKOFF_DEFAULTS.jitter,
    marginMs = 1000,
    random = Math.random,
  } = options;
  return {
    nextDelayMs({ attempt, remainingMs }) {
      const room = remainingMs - marginMs;
      if (room <= 0) return null;
      return Math.min(backoffDelay(attempt - 1, { initialMs, maxMs, jitter }, random()), room);
    },
  };
}

/** One recovery from a drop: when it began (the grace window runs from the drop), its attempts, the next one's timer. */
export class Recovery {
  readonly since: number;
  attempt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(since = Date.now()) {
    this.since = since;
  }

  /** Schedules `attempt` when `policy` says, within `deadline` (epoch ms); false when the policy gives up. */
  schedule(policy: ReconnectPolicy, deadline: number, attempt: () => void): boolean {
    this.attempt++;
    const now = Date.now();
    const delay = policy.nextDelayMs({ attempt: this.attempt, elapsedMs: now - this.since, remainingMs: deadline - now });
    if (delay === null) return false;
    this.#timer = setTimeout(attempt, delay);
    return true;
  }

  cancel(): void {
    clearTimeout(this.#timer);
  }
}
