/**
 * When to try again after the signaling connection dropped. The session survives a drop only for its grace window
 * (the gateway's `status.deadline`, or `graceMs` from the drop when the gateway had no chance to say), so every
 * delay is bounded by it: a policy answers the delay before the next attempt, or null to give up.
 */
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

export interface BackoffOptions {
  /** First delay (before jitter). Default 250 ms. */
  initialMs?: number;
  /** Largest delay. Default 5 s. */
  maxMs?: number;
  /** Random share of each delay, 0..1: 0.5 means the delay is drawn from [d/2, d]. Default 0.5. */
  jitter?: number;
  /** Tried no later than this before the deadline, so the last attempt still has time to complete. Default 1 s. */
  marginMs?: number;
  /** Random numbers in [0, 1); injectable for tests. */
  random?: () => number;
}

/** Exponential backoff with jitter (clients dropped together do not return together), bounded by the deadline. */
export function jitteredBackoff(options: BackoffOptions = {}): ReconnectPolicy {
  const { initialMs = 250, maxMs = 5000, jitter = 0.5, marginMs = 1000, random = Math.random } = options;
  return {
    nextDelayMs({ attempt, remainingMs }) {
      const room = remainingMs - marginMs;
      if (room <= 0) return null;
      const base = Math.min(maxMs, initialMs * 2 ** (attempt - 1));
      const delay = base * (1 - jitter * random());
      return Math.min(Math.round(delay), room);
    },
  };
}
