/**
 * The session lifecycle as a transition table. Every state change goes through `nextState`, so an event that
 * makes no sense in the current state (a late alarm, a duplicate close, a reconnect after the end) is refused
 * here instead of being guarded in each handler.
 *
 *   CREATED ──queue──▶ WAITING ──ready──▶ ACTIVE ──drop──▶ RECONNECTING ──resume──▶ ACTIVE
 *                         │                  │                  │
 *                         │ wait/connect     │ close,           │ grace expired (client away) ──▶ CLOSED
 *                         │ limit, runtime   │ max_duration     │ grace expired (runtime away) ──▶ INACTIVE
 *                         ▼ lost             ▼                  ▼
 *                      INACTIVE ──restart──▶ WAITING         CLOSED
 */
import type { SessionState } from "../../protocol/common.ts";

export type LifecycleEvent =
  | "queue" // handed to the model's pool
  | "assign" // a runtime took it (state unchanged; capabilities become known)
  | "ready" // client and runtime both connected: the client's peer connection is up
  | "drop" // the client or the runtime went away: grace starts
  | "resume" // both are back inside the grace window
  | "wait_expired" // no GPU in time, or the client never connected after assignment
  | "runtime_lost" // the runtime is gone for good (restarted without the session, or released it)
  | "grace_expired"
  | "max_duration"
  | "close" // the client ended it (DELETE, native close)
  | "restart"; // PUT /sessions/{id} on an INACTIVE session

const TRANSITIONS: Record<SessionState, Partial<Record<LifecycleEvent, SessionState>>> = {
  CREATED: { queue: "WAITING", close: "CLOSED" },
  WAITING: {
    assign: "WAITING",
    ready: "ACTIVE",
    wait_expired: "INACTIVE",
    runtime_lost: "INACTIVE",
    close: "CLOSED",
  },
  ACTIVE: { drop: "RECONNECTING", runtime_lost: "INACTIVE", max_duration: "CLOSED", close: "CLOSED" },
  RECONNECTING: {
    resume: "ACTIVE",
    // Who was away decides the ending: a client that never came back closes the session; a lost GPU leaves it
    // INACTIVE, which PUT /sessions/{id} can restart on another GPU. `grace_expired` is resolved by the caller.
    grace_expired: "CLOSED",
    runtime_lost: "INACTIVE",
    max_duration: "CLOSED",
    close: "CLOSED",
  },
  INACTIVE: { restart: "WAITING", close: "CLOSED" },
  CLOSED: {},
};

export function nextState(state: SessionState, event: LifecycleEvent): SessionState | undefined {
  return TRANSITIONS[state][event];
}

export function isEnded(state: SessionState): boolean {
  return state === "CLOSED" || state === "INACTIVE";
}

/** A GPU is held, so the session is billed. */
export function holdsGpu(state: SessionState): boolean {
  return state === "ACTIVE" || state === "RECONNECTING";
}
