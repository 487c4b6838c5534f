/** Shapes ledger figures into the usage API's answers: ms to seconds, USD and credits, rounded for display. */
import type { SessionUsage, UsageFigures, UsageSegment } from "../../protocol/usage.ts";
import type { UsageSums } from "./ledger.ts";
import type { BilledState } from "../objects.ts";
import { toCredits } from "./prices.ts";

const seconds = (ms: number) => Math.round(ms) / 1000;
const usd = (value: number) => Math.round(value * 1e8) / 1e8;
const credits = (usdValue: number) => Math.round(toCredits(usdValue) * 1e4) / 1e4;

export function usageFigures(sums: Omit<UsageSums, "sessions">): UsageFigures {
  return {
    billed_seconds: seconds(sums.billedMs),
    active_seconds: seconds(sums.activeMs),
    idle_seconds: seconds(sums.idleMs),
    reconnecting_seconds: seconds(sums.reconnectingMs),
    cost_usd: usd(sums.costUsd),
    cost_credits: credits(sums.costUsd),
  };
}

export const accountFigures = (sums: UsageSums) => ({ sessions: sums.sessions, ...usageFigures(sums) });

/** One segment of a session, priced. */
export interface PricedSegment {
  segmentNo: number;
  state: BilledState;
  startedAt: number;
  endedAt: number;
  idleMs: number;
  usdPerSecond: number;
  open?: boolean;
}

export function sessionUsage(session: { sessionId: string; model: string; state?: SessionUsage["state"] }, segments: PricedSegment[]): SessionUsage {
  const sums = { billedMs: 0, activeMs: 0, idleMs: 0, reconnectingMs: 0, costUsd: 0 };
  for (const segment of segments) {
    const ms = segment.endedAt - segment.startedAt;
    sums.billedMs += ms;
    sums.costUsd += (ms / 1000) * segment.usdPerSecond;
    if (segment.state === "RECONNECTING") sums.reconnectingMs += ms;
    else {
      sums.idleMs += segment.idleMs;
      sums.activeMs += ms - segment.idleMs;
    }
  }
  return {
    session_id: session.sessionId,
    model: session.model,
    ...(session.state && { state: session.state }),
    segments: segments.map(toSegment),
    ...usageFigures(sums),
  };
}

function toSegment(segment: PricedSegment): UsageSegment {
  return {
    segment: segment.segmentNo,
    state: segment.state,
    started_at: segment.startedAt,
    ended_at: segment.endedAt,
    billed_seconds: seconds(segment.endedAt - segment.startedAt),
    idle_seconds: seconds(segment.idleMs),
    usd_per_second: segment.usdPerSecond,
    ...(segment.open && { open: true }),
  };
}
