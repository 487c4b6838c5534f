/**
 * The session's stored shapes and the numbers they are kept by: the record (one stored value, rewritten on every
 * change), its deadlines, the per-socket attachment, and the RPC inputs and outputs of SessionRelay.
 */
import { ERROR_CODES, type ErrorCode } from "../../protocol/errors.ts";
import { fail as protocolFail } from "../../protocol/result.ts";
import type { CreateSessionInput, Result } from "../../src/objects.ts";
import type { SessionState } from "../../protocol/common.ts";
import type { GatewaySessionFrame } from "../../protocol/runtime.ts";
import type { Infer } from "../../protocol/schema.ts";
import type { Assignment } from "../pool/model-pool.ts";
import { newMeter, type MeterState } from "./meter.ts";

export { ok } from "../../protocol/result.ts";
/** protocol/result.ts's `fail`, the message defaulting to the code table's (what the client would be told anyway). */
export const fail = <T = never>(code: ErrorCode, message?: string, retryAfter?: number): Result<T> =>
  protocolFail(code, message ?? ERROR_CODES[code].message, retryAfter);

export type GatewayFrame = Infer<typeof GatewaySessionFrame>;
export type ClientKind = "rest" | "native";
export type Role = "client" | "runtime";

export interface SocketAttachment {
  role: Role;
  /** Distinguishes this socket from the one it replaced, whose late close event must not count as a drop. */
  connection: number;
  /** A runtime socket until its `hello`: it gets nothing before the `session` frame, and does not count as up. */
  awaitingHello?: true;
  /**
   * A client socket that was sent model messages kept only in memory. Set once per socket (an attachment lives
   * with the socket, not in storage): after a wake-up it tells whether this socket may lack messages that only the
   * runtime still has.
   */
  sentFromMemory?: true;
  /** A client socket's token expiry (Unix seconds): TURN credentials pushed to it never outlive it. */
  tokenExpiresAt?: number;
  /**
   * When the socket is closed unless its token is renewed, on this object's clock: the token's remaining lifetime
   * when it was presented, from then (the same instant unless a test moved the clock).
   */
  tokenDeadline?: number;
}

export interface LiveSocket {
  ws: WebSocket;
  connection: number;
  greeted: boolean;
  sentFromMemory: boolean;
}

export interface Deadlines {
  wait?: number;
  grace?: number;
  maxDuration?: number;
  purge?: number;
  /** Retry of an unconfirmed slot release to the pool. */
  release?: number;
  /** Retry of an unconfirmed release of the account's session slot (AccountLimits). */
  accountRelease?: number;
  /** Closed billing segments wait in `pending_segments` for the D1 ledger. */
  ledger?: number;
  /** Fresh TURN credentials for the native client before the ones it has expire. */
  iceRefresh?: number;
  /** Retry of an unconfirmed deletion of the session's uploaded files (R2), after its end. */
  uploads?: number;
  /** The current runtime session socket has not said hello yet: it is closed at this time if it still has not. */
  hello?: number;
  /** The client socket's token expires (ms): the socket is closed then, unless a `token` frame renewed it. */
  tokenExpiry?: number;
}

/** Everything about a session except its logs. Stored as one value; small enough to rewrite on every change. */
export interface SessionRecord {
  id: string;
  accountId: string;
  apiKeyId: string;
  tokenId: string;
  model: string;
  extraArgs?: Record<string, unknown>;
  state: SessionState;
  reason: string | null;
  createdAt: number;
  activatedAt: number | null;
  runtime: Assignment | null;
  queuePosition: number | null;
  clientKind: ClientKind | null;
  clientSocket: number | null;
  runtimeSocket: number | null;
  runtimeEverConnected: boolean;
  peerConnected: boolean;
  /** Current peer connection generation; offers, answers and candidates of other generations are dropped. */
  generation: number;
  nextCommandSeq: number;
  /** The client has seen the final state of every command up to this seq (`commands_seen`); absent: none said. */
  commandsSeen?: number;
  /**
   * The model-message safe point: every message up to it is stored in the message log or acknowledged by the
   * client, so the runtime may be told to forget it. Not rewritten per message while the client is connected.
   */
  messageSeq: number;
  /**
   * Runtime message seqs are per run (each run's runtime numbers from 1); the client's continue across runs. This
   * is the client seq of the last message before the current run: runtime seq `r` is client seq `messageBase + r`.
   * Absent (0) for the first run and in records from before restarts kept the numbering.
   */
  messageBase?: number;
  counters: { commands: number; acknowledged: number; dropped: number; replaced: number; messages: number };
  deadlines: Deadlines;
  connections: number;
  releasePending: boolean;
  /** The account's maximum session length when the session was created or restarted (absent: SESSION_MAX_SECONDS). */
  maxDurationMs?: number;
  /** The creating token's cap on it (its max_session_duration_seconds), kept for restarts; absent: none. */
  tokenMaxDurationMs?: number;
  /** Which run of the session holds the account slot: 0 at creation, one more per restart. */
  slotEpoch?: number;
  /** Billing: the open segment and idle tracking (see meter.ts). Absent in records from before metering. */
  meter?: MeterState;
}

// The RPC inputs and outputs live in the contract module (src/objects.ts), which the routes import.
export type { CreateSessionInput, NewUpload, Result, SessionMeterView, UploadFacts } from "../../src/objects.ts";

/** A new session's record, as `create` stores it (before it is queued). */
export function newRecord(input: CreateSessionInput, createdAt: number, maxDurationMs: number): SessionRecord {
  const { sessionId: id, accountId, apiKeyId, tokenId, model, extraArgs, tokenMaxDurationMs } = input;
  return {
    id,
    accountId,
    apiKeyId,
    tokenId,
    model,
    extraArgs,
    state: "CREATED",
    reason: null,
    createdAt,
    activatedAt: null,
    runtime: null,
    queuePosition: null,
    clientKind: null,
    clientSocket: null,
    runtimeSocket: null,
    runtimeEverConnected: false,
    peerConnected: false,
    generation: 0,
    nextCommandSeq: 1,
    messageSeq: 0,
    counters: { commands: 0, acknowledged: 0, dropped: 0, replaced: 0, messages: 0 },
    deadlines: {},
    connections: 0,
    releasePending: false,
    maxDurationMs,
    tokenMaxDurationMs,
    slotEpoch: 0,
    meter: newMeter(),
  };
}

export const RECORD_KEY = "session";
export const CLUSTER = "edge";
/** How soon a release or a ledger write that failed is tried again. */
export const RETRY_MS = 1000;
/**
 * Segments closed while the session runs (a drop, a reconnect) reach the D1 ledger in batches this far apart: a
 * flapping connection costs one D1 write per batch, not one per flap. The session's end writes them at once.
 */
export const LEDGER_BATCH_MS = 30_000;
/** A client's acknowledgement is written with the next record write, or at once when it has moved this far. */
export const ACK_WRITE_EVERY = 64;
/** How long a new runtime session socket has to say hello before it is closed (it holds the session meanwhile). */
export const RUNTIME_HELLO_MS = 10_000;
/** Close code for a runtime session socket that did not say hello in time (the runtime may connect again). */
export const CLOSE_NO_HELLO = 4002;
