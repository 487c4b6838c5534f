/**
 * The client's connection phases as a transition table, and the public status derived from them. An event that
 * makes no sense in the current phase (a late socket close after disconnect(), a second connect()) is refused
 * here rather than guarded in each handler.
 *
 *   idle ─connect─▶ creating ─created─▶ opening ─welcomed─▶ live
 *                                        ▲   │                │ socketLost
 *                                  retry │   └─socketLost─▶ recovering ─(gave up)─▶ idle
 *                                        └──────────────────┘
 *   opening/live/recovering ─suspend─▶ suspended ─reconnect─▶ opening        (disconnect(true), reconnect())
 *   any but idle ─close─▶ closing ─ended─▶ idle                              (disconnect())
 *   opening/live/recovering/suspended ─ended─▶ idle                          (the gateway ended the session)
 */
import type { SessionState } from "../../protocol/common.ts";

export type Phase = "idle" | "creating" | "opening" | "live" | "recovering" | "suspended" | "closing";
export type PhaseEvent = "connect" | "created" | "welcomed" | "socketLost" | "retry" | "suspend" | "reconnect" | "close" | "ended" | "failed";

const TRANSITIONS: Record<Phase, Partial<Record<PhaseEvent, Phase>>> = {
  idle: { connect: "creating" },
  creating: { created: "opening", failed: "idle", close: "closing" },
  opening: { welcomed: "live", socketLost: "recovering", suspend: "suspended", close: "closing", ended: "idle", failed: "idle" },
  live: { socketLost: "recovering", suspend: "suspended", close: "closing", ended: "idle", failed: "idle" },
  recovering: { retry: "opening", suspend: "suspended", close: "closing", ended: "idle", failed: "idle" },
  suspended: { reconnect: "opening", close: "closing", ended: "idle", failed: "idle" },
  closing: { ended: "idle", failed: "idle" },
};

export function nextPhase(phase: Phase, event: PhaseEvent): Phase | undefined {
  return TRANSITIONS[phase][event];
}

export type ClientStatus = "disconnected" | "connecting" | "waiting" | "ready";

export interface StatusInputs {
  phase: Phase;
  /** The session's state as the gateway last said, if a socket has been welcomed. */
  sessionState: SessionState | undefined;
  /** The current peer connection is connected. */
  mediaUp: boolean;
  /** The session was ready before: coming back is "connecting", not "waiting". */
  wasReady: boolean;
}

/** disconnected → connecting → waiting (queued, or negotiating) → ready, as the official client reports them. */
export function statusOf({ phase, sessionState, mediaUp, wasReady }: StatusInputs): ClientStatus {
  switch (phase) {
    case "idle":
    case "suspended":
    case "closing":
      return "disconnected";
    case "creating":
    case "recovering":
      return "connecting";
    case "opening":
      return wasReady ? "connecting" : "waiting";
    case "live":
      if (sessionState === "ACTIVE" && mediaUp) return "ready";
      if (sessionState === "RECONNECTING" || wasReady) return "connecting";
      return "waiting";
  }
}
