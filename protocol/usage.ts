/** Bodies of the usage and limits API (GET /v1/usage, GET /v1/sessions/{id}/usage, GET /v1/limits, admin limits). */
import { SessionState } from "./common.ts";
import { array, boolean, integer, nullable, number, object, oneOf, optional, record, string, type Infer } from "./schema.ts";

const seconds = (description: string) => number({ min: 0, description: `${description} Seconds, to the ms.` });

/** Billed time splits into active, idle (both ACTIVE) and reconnecting (the grace window); cost is billed × price. */
const UsageFigures = object({
  billed_seconds: seconds("Time holding a GPU: ACTIVE (idle included) and RECONNECTING."),
  active_seconds: seconds("ACTIVE with commands coming in."),
  idle_seconds: seconds("ACTIVE with no command for METER_IDLE_SECONDS (still billed)."),
  reconnecting_seconds: seconds("RECONNECTING: the grace window after a drop (billed)."),
  cost_usd: number({ min: 0 }),
  cost_credits: number({ min: 0, description: "10,000 credits = 1 USD." }),
});
export type UsageFigures = Infer<typeof UsageFigures>;

const AccountUsageFigures = object({ sessions: integer({ min: 0, description: "Sessions with billed time." }), ...UsageFigures.shape });

export const UsageReport = object({
  account: string(),
  from: integer({ description: "Unix seconds (inclusive). Segments count by the time they started." }),
  to: integer({ description: "Unix seconds (exclusive)." }),
  group_by: oneOf(["model", "day"]),
  groups: array(object({ key: string({ description: "The model, or the UTC day (YYYY-MM-DD)." }), ...AccountUsageFigures.shape })),
  total: AccountUsageFigures,
});

export const UsageSegment = object({
  segment: integer({ min: 1 }),
  state: oneOf(["ACTIVE", "RECONNECTING"]),
  started_at: integer({ description: "Unix ms." }),
  ended_at: integer({ description: "Unix ms; for the open segment, now." }),
  billed_seconds: number({ min: 0 }),
  idle_seconds: number({ min: 0 }),
  usd_per_second: number({ min: 0 }),
  open: optional(boolean()),
});
export type UsageSegment = Infer<typeof UsageSegment>;

export const SessionUsage = object({
  session_id: string(),
  model: string(),
  state: optional(SessionState),
  segments: array(UsageSegment),
  ...UsageFigures.shape,
});
export type SessionUsage = Infer<typeof SessionUsage>;

const LimitValues = object({
  concurrent_sessions: integer({ min: 0, description: "Sessions at once (waiting and connecting included), across the account's API keys." }),
  session_creations_per_minute: integer({ min: 0, description: "Per model, over a sliding minute." }),
  account_session_creations_per_minute: integer({
    min: 0,
    description: "Across all the account's models, over a sliding minute (so made-up or many model names cannot multiply the per-model rate).",
  }),
  token_mints_per_minute: integer({ min: 0, description: "Per API key, over a sliding minute." }),
  turn_credentials_per_minute: integer({
    min: 0,
    description: "TURN credentials issued to the account (ice_servers, turn-credentials), over a sliding minute.",
  }),
  max_session_seconds: integer({ min: 1, description: "From the first time a session is ACTIVE." }),
});
export type LimitValues = Infer<typeof LimitValues>;

export const LimitsResponse = object({
  account: string(),
  limits: LimitValues,
  sessions_in_use: integer({ min: 0 }),
  creations_last_minute: record(integer({ min: 0 })),
});

const Override = (max: number, min = 0) => optional(nullable(integer({ min, max })));

/** Fields left out keep their value; null restores the platform default. */
export const AccountLimitsRequest = object(
  {
    concurrent_sessions: Override(100_000),
    session_creations_per_minute: Override(1_000_000),
    account_session_creations_per_minute: Override(1_000_000),
    token_mints_per_minute: Override(1_000_000),
    turn_credentials_per_minute: Override(1_000_000),
    max_session_seconds: Override(7 * 24 * 3600, 1),
  },
  { strict: true },
);
export type AccountLimitsRequest = Infer<typeof AccountLimitsRequest>;

export const AccountLimitsResponse = object({
  account: string(),
  limits: LimitValues,
  overrides: object({
    concurrent_sessions: nullable(integer()),
    session_creations_per_minute: nullable(integer()),
    account_session_creations_per_minute: nullable(integer()),
    token_mints_per_minute: nullable(integer()),
    turn_credentials_per_minute: nullable(integer()),
    max_session_seconds: nullable(integer()),
  }),
});
