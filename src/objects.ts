/**
 * The contract between the Worker and its Durable Objects: the one way to reach each object (a stub by name) and
 * the types its RPC methods take and return. Imports run one way: durable-objects/ imports this module (and other
 * Worker libraries in src/), src/ never imports durable-objects/; the classes meet the Worker only in the composition
 * root (worker.ts), which wrangler runs. The generated `Env` names the classes for the stubs' types.
 *
 * A method that can refuse returns protocol/result.ts's `Result`; `unwrap` turns a refusal into the ApiError the
 * client sees, so a route states what it needs and the refusal travels unchanged.
 */
import type { LimitSettings } from "./config.ts";
import type { Capabilities, SessionState } from "../protocol/common.ts";
import type { Failure, Result } from "../protocol/result.ts";

export type { Failure, Result } from "../protocol/result.ts";
export { unwrap } from "./errors.ts";

// One stub helper per object class; each object is named by what it serves.

/** The session's object, named by its session id. */
export const sessionRelay = (env: Env, sessionId: string) => env.SESSION_RELAY.getByName(sessionId);

/** The model's pool, named by the model. */
export const modelPool = (env: Env, model: string) => env.MODEL_POOL.getByName(model);

/** The account's quotas, named by the account id. */
export const accountLimits = (env: Env, accountId: string) => env.ACCOUNT_LIMITS.getByName(accountId);

// SessionRelay

export interface CreateSessionInput {
  sessionId: string;
  accountId: string;
  apiKeyId: string;
  tokenId: string;
  model: string;
  extraArgs?: Record<string, unknown>;
  /** The creating token's expiry and max_sessions: the session takes its account slot (SlotRequest.creation) with them. */
  token: { expiresAt: number; maxSessions: number | null };
  /** The creating token's max_session_duration_seconds, in ms: caps the account's maximum length, now and on restarts. */
  tokenMaxDurationMs?: number;
}

export interface NewUpload {
  name: string;
  mimeType: string;
  size: number;
  urlTtlMs: number;
  maxPerSession: number;
}

/** An upload as the routes need it: to sign its URL, to store or serve its bytes. */
export interface UploadFacts {
  uploadId: string;
  sessionId: string;
  key: string;
  name: string;
  mimeType: string;
  size: number;
  expiresAt: number;
}

/** What a PUT's signed URL says about the upload; the record must say the same. */
export interface UploadClaim {
  uploadId: string;
  size: number;
  mimeType: string;
  attempt: string;
}

/** The session states that are billed: time holding a GPU. */
export type BilledState = "ACTIVE" | "RECONNECTING";

/** A closed span of billed time (a ledger segment). */
export interface Segment {
  segmentNo: number;
  state: BilledState;
  startedAt: number;
  endedAt: number;
  idleMs: number;
}

/** A session's billing as its object knows it: closed segments not yet in the D1 ledger, and the open one. */
export interface SessionMeterView {
  sessionId: string;
  model: string;
  state: SessionState;
  segments: (Segment & { usdPerSecond: number; open?: true })[];
}

// ModelPool

export interface PoolSnapshot {
  model: string;
  runtimes: { id: string; model_version: string | null; slots: number; busy: number; connected: boolean }[];
  capabilities: Capabilities | null;
  free_slots: number;
  queue_length: number;
}

// AccountLimits

export interface SlotRequest {
  accountId: string;
  sessionId: string;
  model: string;
  /**
   * 0 when the session is created; each restart of the session takes the next epoch. A release names the epoch
   * it ends, so a late release of an earlier run never frees the slot of the current one.
   */
  epoch: number;
  /** Set when the session is new (not a restart): it counts toward the creation rate and the token's cap. */
  creation?: { tokenId: string; tokenExpiresAt: number; maxSessions: number | null };
}

/** Why an account's quota refuses: a rate window (with retryAfter), all concurrent sessions in use, a token's cap. */
export type LimitRefusal = Failure<"RATE_LIMITED" | "CONCURRENCY_LIMIT" | "TOKEN_SESSION_LIMIT">;
/** Allowed (with the account's limits), or refused. */
export type LimitDecision = Result<LimitSettings, LimitRefusal>;
