/**
 * One Durable Object per session. It owns the session's lifecycle (see lifecycle.ts), relays SDP and ICE between
 * the client and its runtime, keeps commands and model messages until the other side has them, and keeps every
 * deadline (queue wait, connect, 30 s grace, maximum length, retention) as a stored time behind one alarm.
 *
 * Sockets are hibernatable: per-socket facts live in their attachments, everything else in SQLite storage, so
 * the object can be evicted at any moment and pick up exactly where it was. The one exception is on purpose:
 * model messages sent to a connected client are kept only in memory (see message-log.ts), because the runtime
 * keeps each of them until this object acknowledges it, which it does only once the message is safe.
 */
import { DurableObject } from "cloudflare:workers";
import { randomId } from "../../src/auth/encoding.ts";
import { GATEWAY_VERSION, meterIdleMs, sessionSettings, type SessionSettings } from "../../src/config.ts";
import type { ErrorCode } from "../../src/errors.ts";
import { ApiError, ERROR_CODES } from "../../src/errors.ts";
import { iceServersFor } from "../../src/ice-servers.ts";
import type { IssuedIceServers } from "../../src/turn/provider.ts";
import { accountLimits } from "../../src/limits/enforce.ts";
import { writeSegments } from "../../src/metering/ledger.ts";
import { priceTable, usdPerSecond } from "../../src/metering/prices.ts";
import {
  LIMITS,
  PROTOCOL_VERSION,
  type Capabilities,
  type Command,
  type CommandPolicy,
  type FileRef,
  type CommandState,
  type IceCandidate,
  type IceServer,
  type PeerState,
  type SessionState,
} from "../../src/protocol/common.ts";
import { decodeFrame } from "../../src/protocol/frames.ts";
import { GatewaySessionFrame, RuntimeSessionFrame } from "../../src/protocol/runtime.ts";
import type { SessionResponse } from "../../src/protocol/sessions.ts";
import { ClientFrame, CLOSE_TOKEN_EXPIRED, KEEPALIVE_PING, KEEPALIVE_PONG, type ServerFrame } from "../../src/protocol/signaling.ts";
import { verifyClientToken } from "../../src/auth/tokens.ts";
import type { Infer } from "../../src/protocol/schema.ts";
import { deleteSessionUploads, uploadKey } from "../../src/uploads/store.ts";
import { Clock } from "../clock.ts";
import { closeReason, completeClose, sendIfOpen } from "../sockets.ts";
import type { Assignment } from "../pool/model-pool.ts";
import { CommandLog } from "./command-log.ts";
import { EventLog, type SessionEvent } from "./event-log.ts";
import { Negotiation, type Offer } from "./negotiation.ts";
import { isEnded, nextState, type LifecycleEvent } from "./lifecycle.ts";
import { MessageLog } from "./message-log.ts";
import { meterCommand, meterTransition, newMeter, openSegmentAt, PendingSegments, type MeterState, type Segment } from "./meter.ts";
import { UploadLog, type UploadClaim, type UploadRecord } from "./upload-log.ts";

export type Result<T> = { ok: true; value: T } | { ok: false; code: ErrorCode; message?: string; retryAfter?: number };
const ok = <T>(value: T): Result<T> => ({ ok: true, value });
const fail = <T = never>(code: ErrorCode, message?: string, retryAfter?: number): Result<T> => ({
  ok: false,
  code,
  message,
  ...(retryAfter !== undefined && { retryAfter }),
});

type GatewayFrame = Infer<typeof GatewaySessionFrame>;
type ClientKind = "rest" | "native";
type Role = "client" | "runtime";

interface SocketAttachment {
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

interface LiveSocket {
  ws: WebSocket;
  connection: number;
  greeted: boolean;
  sentFromMemory: boolean;
}

interface Deadlines {
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
interface SessionRecord {
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

export interface CreateSessionInput {
  sessionId: string;
  accountId: string;
  apiKeyId: string;
  tokenId: string;
  model: string;
  extraArgs?: Record<string, unknown>;
  /** The account's maximum session length (or the token's, if shorter); default SESSION_MAX_SECONDS. */
  maxDurationMs?: number;
  /** The creating token's max_session_duration_seconds, in ms: a restart keeps it. */
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

/** A session's billing as this object knows it: closed segments not yet in the D1 ledger, and the open one. */
export interface SessionMeterView {
  sessionId: string;
  model: string;
  state: SessionState;
  segments: (Segment & { usdPerSecond: number; open?: true })[];
}

const RECORD_KEY = "session";
const CLUSTER = "edge";
/** How soon a release or a ledger write that failed is tried again. */
const RETRY_MS = 1000;
/**
 * Segments closed while the session runs (a drop, a reconnect) reach the D1 ledger in batches this far apart: a
 * flapping connection costs one D1 write per batch, not one per flap. The session's end writes them at once.
 */
const LEDGER_BATCH_MS = 30_000;
/** A client's acknowledgement is written with the next record write, or at once when it has moved this far. */
const ACK_WRITE_EVERY = 64;
/** How long a new runtime session socket has to say hello before it is closed (it holds the session meanwhile). */
export const RUNTIME_HELLO_MS = 10_000;
/** Close code for a runtime session socket that did not say hello in time (the runtime may connect again). */
export const CLOSE_NO_HELLO = 4002;

export class SessionRelay extends DurableObject<Env> {
  readonly #settings: SessionSettings;
  readonly #clock: Clock;
  readonly #commands: CommandLog;
  readonly #messages: MessageLog;
  readonly #events: EventLog;
  readonly #pendingSegments: PendingSegments;
  readonly #uploads: UploadLog;
  readonly #idleSpanMs: number;
  #session: SessionRecord | undefined;
  readonly #negotiation: Negotiation;
  /** Sockets in use, remembered so a send costs no lookup; rebuilt from the attachments after hibernation. */
  readonly #live = new Map<Role, LiveSocket>();
  /** Long-polling requests waiting for the session to change. In memory on purpose: they die with the request. */
  readonly #waiters = new Set<() => void>();
  /** The record's `messageSeq` as last written: `message_ack` never says more than what is stored. */
  #writtenMessageSeq: number;
  /** The last `message_ack` sent on the current runtime socket. */
  #runtimeAcked = 0;
  /** The last `resend_messages` sent, so the messages still in flight before it do not ask again. */
  #resendAsked: { connection: number; from: number } | undefined;
  /** Messages were refused (buffer full): the runtime holds them, and is asked again once there is room. */
  #refused = false;
  /** The record as this instance last wrote it (JSON). */
  #writtenRecord: string | undefined;
  /** The alarm this instance last set (earliest deadline @ test-clock offset); undefined once it has fired. */
  #alarmSet: string | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#settings = sessionSettings(env as unknown as Record<string, unknown>);
    this.#clock = new Clock(ctx.storage, env);
    const sql = ctx.storage.sql;
    // Every table of the session in one statement batch: the object runs this each time it wakes.
    sql.exec([CommandLog.schema, MessageLog.schema, EventLog.schema, PendingSegments.schema, UploadLog.schema, Negotiation.schema].join("\n"));
    this.#commands = new CommandLog(sql, {
      maxWaiting: this.#settings.commandBufferCount,
      maxWaitingBytes: this.#settings.commandBufferBytes,
    });
    this.#session = ctx.storage.kv.get<SessionRecord>(RECORD_KEY);
    this.#writtenMessageSeq = this.#session?.messageSeq ?? 0;
    this.#messages = new MessageLog(
      sql,
      { maxStored: this.#settings.messageBufferCount, maxStoredBytes: this.#settings.messageBufferBytes },
      this.#writtenMessageSeq,
    );
    this.#events = new EventLog(sql);
    this.#pendingSegments = new PendingSegments(sql);
    this.#uploads = new UploadLog(sql);
    this.#idleSpanMs = meterIdleMs(env as unknown as Record<string, unknown>);
    this.#negotiation = new Negotiation(ctx.storage);
    // Keep-alive pings cost nothing: answered by the runtime without waking (or un-hibernating) this object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(KEEPALIVE_PING, KEEPALIVE_PONG));
  }

  // ── REST (RPC from the Worker's routes) ─────────────────────────────────────────────────────────────────────

  async create(input: CreateSessionInput): Promise<Result<SessionResponse>> {
    if (this.#session) return fail("SESSION_STATE_CONFLICT", "A session with that id already exists.");
    const now = this.#clock.now();
    this.#session = {
      id: input.sessionId,
      accountId: input.accountId,
      apiKeyId: input.apiKeyId,
      tokenId: input.tokenId,
      model: input.model,
      extraArgs: input.extraArgs,
      state: "CREATED",
      reason: null,
      createdAt: now,
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
      maxDurationMs: input.maxDurationMs,
      tokenMaxDurationMs: input.tokenMaxDurationMs,
      slotEpoch: 0,
      meter: newMeter(),
    };
    this.#events.record(now, "created", { model: input.model, api_key_id: input.apiKeyId });
    await this.#queue();
    return ok(this.#view());
  }

  /** The session as the official client sees it; waits up to `waitMs` for a GPU if none is assigned yet. */
  async view(accountId: string, waitMs = 0): Promise<Result<SessionResponse>> {
    const owned = this.#owned(accountId);
    if (!owned.ok) return owned;
    await this.#waitUntil(() => this.#session!.runtime !== null || isEnded(this.#session!.state), waitMs);
    return ok(this.#view());
  }

  async restart(accountId: string): Promise<Result<SessionResponse>> {
    const owned = this.#owned(accountId);
    if (!owned.ok) return owned;
    const session = this.#session!;
    if (session.state !== "INACTIVE") return ok(this.#view()); // already running or waiting: nothing to restart
    // A GPU release of the previous run still unconfirmed goes first: done later, it would free the new run's place.
    if (session.deadlines.release !== undefined) await this.#releaseSlot();
    if (session.deadlines.release !== undefined) return fail("INTERNAL", "The previous GPU is not released yet; try again.", 1);
    // A restarted session takes an account slot again (it counts as concurrent, not as a new creation).
    const epoch = (session.slotEpoch ?? 0) + 1;
    const decision = await accountLimits(this.env, session.accountId).acquire({
      accountId: session.accountId,
      sessionId: session.id,
      model: session.model,
      epoch,
    });
    if (!decision.ok) return fail(decision.code, decision.message, decision.retryAfter);
    if (session.state !== "INACTIVE") {
      // Changed while the slot was taken: restarted by a concurrent request (which holds this same slot), or
      // closed (its release named the earlier epoch, so this one is freed here).
      if (isEnded(session.state)) await this.#releaseAccountSlot(epoch);
      return ok(this.#view());
    }
    session.slotEpoch = epoch;
    session.maxDurationMs = Math.min(decision.limits.maxSessionSeconds * 1000, session.tokenMaxDurationMs ?? Infinity);
    // The new run's runtime numbers its messages from 1 (it is told `message_seq: 0`); the client's numbering goes
    // on after the last message of the previous runs. Everything up to that one is stored or acknowledged (the end
    // stored what was only in memory), so it is the safe point too.
    session.messageBase = this.#messages.last;
    session.messageSeq = Math.max(session.messageSeq, this.#messages.last);
    this.#resetConnection();
    session.deadlines.purge = undefined; // retention belonged to the previous end
    session.runtime = null;
    session.activatedAt = null;
    session.runtimeEverConnected = false;
    session.releasePending = false;
    this.#transition("restart", "restarted");
    await this.#queue();
    return ok(this.#view());
  }

  async terminate(accountId: string, reason = "client_closed"): Promise<Result<SessionResponse>> {
    const owned = this.#owned(accountId);
    if (!owned.ok) return owned;
    await this.#end("close", reason);
    return ok(this.#view());
  }

  /** Billing as this object knows it (segments not yet in the ledger, and the open one); the route adds the ledger's. */
  async usage(accountId: string): Promise<Result<SessionMeterView>> {
    const owned = this.#owned(accountId);
    if (!owned.ok) return owned;
    const session = this.#session!;
    const price = usdPerSecond(priceTable(this.env), session.model);
    const open = session.meter ? openSegmentAt(session.meter, this.#clock.now()) : null;
    return ok({
      sessionId: session.id,
      model: session.model,
      state: session.state,
      segments: [
        ...this.#pendingSegments.list().map((segment) => ({ ...segment, usdPerSecond: price })),
        ...(open ? [{ ...open, usdPerSecond: price, open: true as const }] : []),
      ],
    });
  }

  /** Asked by the account's limits object (its slot audit): does this session still hold its slot of run `epoch`? */
  async holdsAccountSlot(epoch: number): Promise<boolean> {
    const session = this.#session;
    return session !== undefined && !isEnded(session.state) && (session.slotEpoch ?? 0) === epoch;
  }

  async events(accountId: string): Promise<Result<{ session_id: string; events: SessionEvent[] }>> {
    const owned = this.#owned(accountId);
    if (!owned.ok) return owned;
    return ok({ session_id: this.#session!.id, events: this.#events.list() });
  }

  /** A new peer connection generation from a REST client. Returns its connection id. */
  async submitOffer(
    accountId: string,
    offer: { sdp: string; trackMapping?: unknown; connectionId?: string },
  ): Promise<Result<{ connection_id: string }>> {
    const owned = this.#ownedAndLive(accountId);
    if (!owned.ok) return owned;
    const session = this.#session!;
    let generation = session.generation + 1;
    if (offer.connectionId !== undefined) {
      // A connection created with POST connections reserves its generation; an offer on it negotiates that one.
      const current = this.#currentConnection(offer.connectionId);
      if (!current.ok) return current;
      generation = current.value;
    }
    session.clientKind ??= "rest";
    this.#startGeneration(generation, offer.sdp, offer.trackMapping);
    this.#save();
    return ok({ connection_id: connectionId(generation) });
  }

  async createConnection(accountId: string): Promise<Result<{ connection_id: string; track_map: unknown[] }>> {
    const owned = this.#ownedAndLive(accountId);
    if (!owned.ok) return owned;
    const session = this.#session!;
    session.clientKind ??= "rest";
    const generation = session.generation + 1;
    this.#resetGeneration(generation);
    this.#save();
    return ok({ connection_id: connectionId(generation), track_map: session.runtime?.capabilities.tracks ?? [] });
  }

  /** The runtime's answer for the current (or the named) connection; waits up to `waitMs` for it. */
  async answer(
    accountId: string,
    connection: string | undefined,
    waitMs: number,
  ): Promise<Result<{ sdp_answer: string; connection_id: string } | null>> {
    const owned = this.#owned(accountId);
    if (!owned.ok) return owned;
    if (connection !== undefined) {
      const current = this.#currentConnection(connection);
      if (!current.ok) return current;
    }
    const generation = this.#session!.generation;
    const settled = () => this.#negotiation.answer !== null || isEnded(this.#session!.state) || this.#session!.generation !== generation;
    await this.#waitUntil(settled, waitMs);
    const session = this.#session!;
    if (isEnded(session.state)) return fail("SESSION_ENDED", `The session is ${session.state}: ${session.reason}.`);
    if (generation !== session.generation) return fail("CONNECTION_SUPERSEDED");
    const { answer } = this.#negotiation;
    return ok(answer === null ? null : { sdp_answer: answer, connection_id: connectionId(generation) });
  }

  async addClientCandidates(
    accountId: string,
    connection: string,
    candidates: IceCandidate[],
    final: boolean,
  ): Promise<Result<{ connection_id: string }>> {
    const owned = this.#ownedAndLive(accountId);
    if (!owned.ok) return owned;
    const current = this.#currentConnection(connection);
    if (!current.ok) return current;
    const generation = current.value;
    const all: (IceCandidate | null)[] = final ? [...candidates, null] : candidates;
    // All of the request or none of it: a refused request must not have been half relayed.
    if (this.#negotiation.clientCandidates.length + all.length > LIMITS.candidatesPerGeneration) return fail("ICE_CANDIDATE_LIMIT");
    for (const candidate of all) this.#relayClientCandidate(generation, candidate);
    this.#save();
    return ok({ connection_id: connection });
  }

  // ── ICE servers for the native client ──────────────────────────────────────────────────────────────────────

  /** TURN credentials (or STUN) for the client's peer connection: tied to this session, bounded by its token. */
  #issueClientIceServers(tokenExpiresAt: number | undefined): Promise<IssuedIceServers> {
    return iceServersFor(this.env, { subject: this.#session!.id, notAfter: tokenExpiresAt, now: Math.floor(this.#clock.now() / 1000) });
  }

  /** Issues and pushes ICE servers to the connected native client (on assignment, and before they expire). */
  async #pushIceServers(): Promise<void> {
    const socket = this.#socket("client");
    if (!socket || !this.#session) return;
    const { tokenExpiresAt } = socket.deserializeAttachment() as SocketAttachment;
    const issued = await this.#issueClientIceServers(tokenExpiresAt);
    if (this.#socket("client") !== socket || isEnded(this.#session.state)) return; // replaced or ended meanwhile
    this.#sendIceServers(issued);
    this.#save();
  }

  /** Sends them, and schedules fresh ones at 80 % of their lifetime (the SDK applies them with an ICE restart). */
  #sendIceServers(issued: IssuedIceServers): void {
    const { iceServers, expiresAt } = issued;
    this.#sendToClient({ type: "ice_servers", ice_servers: iceServers, ...(expiresAt !== undefined && { expires_at: expiresAt }) });
    const now = this.#clock.now();
    this.#session!.deadlines.iceRefresh = expiresAt === undefined ? undefined : now + Math.max(1000, 0.8 * (expiresAt * 1000 - now));
    this.#scheduleAlarm();
  }

  // ── Uploads (docs/uploads.md): records here, bytes in R2, moved by the Worker's routes ───────────────────────

  /** A new upload of this session, pending until its PUT stores the bytes. */
  async createUpload(accountId: string, upload: NewUpload): Promise<Result<UploadFacts>> {
    const live = this.#ownedAndLive(accountId);
    if (!live.ok) return live;
    if (this.#uploads.count >= upload.maxPerSession) return fail("UPLOAD_LIMIT_REACHED");
    const now = this.#clock.now();
    const record = this.#uploads.create({ id: `upl_${randomId(16)}`, ...upload, createdAt: now, expiresAt: now + upload.urlTtlMs });
    this.#events.record(now, "upload_created", { upload_id: record.id, size: record.size, mime_type: record.mimeType });
    return ok(this.#uploadFacts(record));
  }

  /** A PUT takes the upload (one at a time, and only until one has succeeded). */
  async claimUpload(claim: UploadClaim): Promise<Result<UploadFacts>> {
    const live = this.#liveForUploads();
    if (!live.ok) return live;
    const refused = this.#uploads.claim(claim, this.#clock.now());
    if (refused) return fail(refused);
    return ok(this.#uploadFacts(this.#uploads.get(claim.uploadId)!));
  }

  /** The claiming PUT stored the bytes. Refused once the session has ended: the caller then deletes them. */
  async completeUpload(uploadId: string, attempt: string): Promise<Result<true>> {
    const live = this.#liveForUploads();
    if (!live.ok) return live;
    const now = this.#clock.now();
    const refused = this.#uploads.complete(uploadId, attempt, now);
    if (refused) return fail(refused);
    this.#events.record(now, "upload_complete", { upload_id: uploadId });
    return ok(true);
  }

  /** The claiming PUT failed and stored nothing. */
  async releaseUpload(uploadId: string, attempt: string): Promise<void> {
    this.#uploads.release(uploadId, attempt);
  }

  /** The bytes of a complete upload, for the runtime assigned to this session only. */
  async uploadForRuntime(runtimeId: string, uploadId: string): Promise<Result<UploadFacts>> {
    const live = this.#liveForUploads();
    if (!live.ok) return live;
    if (live.value.runtime?.runtimeId !== runtimeId) return fail("RUNTIME_NOT_ASSIGNED");
    const record = this.#uploads.get(uploadId);
    if (!record) return fail("UPLOAD_NOT_FOUND");
    if (record.state !== "complete") return fail("UPLOAD_NOT_COMPLETE");
    return ok(this.#uploadFacts(record));
  }

  /** The session while it lives; none (a guessed id: nothing is kept) or an ended one takes no upload traffic. */
  #liveForUploads(): Result<SessionRecord> {
    const session = this.#session;
    if (!session) {
      this.#keepNothing();
      return fail("SESSION_NOT_FOUND");
    }
    if (isEnded(session.state)) return fail("SESSION_ENDED", `The session is ${session.state}; its uploads are deleted.`);
    return ok(session);
  }

  #uploadFacts(record: UploadRecord): UploadFacts {
    const sessionId = this.#session!.id;
    const { id: uploadId, name, mimeType, size, expiresAt } = record;
    return { uploadId, sessionId, key: uploadKey(sessionId, uploadId), name, mimeType, size, expiresAt };
  }

  /** The first file reference of a command that does not check out, with why. */
  #refusedRef(uploads: Record<string, FileRef> | undefined): { param: string; code: ErrorCode } | undefined {
    for (const [param, ref] of Object.entries(uploads ?? {})) {
      const code = this.#uploads.checkRef(ref);
      if (code) return { param, code };
    }
    return undefined;
  }

  /** Deletes the session's files from R2 (after its end); retried by alarm until it succeeds. */
  async #deleteUploads(): Promise<void> {
    const session = this.#session!;
    try {
      if (this.#uploads.count > 0) {
        const deleted = await deleteSessionUploads(this.env.UPLOADS, session.id);
        this.#uploads.clear();
        this.#events.record(this.#clock.now(), "uploads_deleted", { objects: deleted });
      }
      session.deadlines.uploads = undefined;
    } catch (error) {
      console.error("upload deletion failed; retrying by alarm", session.id, String(error));
      session.deadlines.uploads = this.#clock.now() + RETRY_MS;
    } finally {
      this.#scheduleAlarm();
      this.#save();
    }
  }

  // ── From the model's pool ───────────────────────────────────────────────────────────────────────────────────

  /** The pool gives this session a GPU. Returns false if the session no longer wants one (the pool frees it). */
  async assign(assignment: Assignment): Promise<boolean> {
    const session = this.#session;
    if (!session || session.state !== "WAITING" || session.runtime !== null) return false;
    session.runtime = assignment;
    session.queuePosition = null;
    session.deadlines.wait = this.#clock.now() + this.#settings.connectMs;
    this.#transition("assign", "assigned");
    this.#events.record(this.#clock.now(), "assigned", { runtime_id: assignment.runtimeId, model_version: assignment.modelVersion });
    void this.#pushIceServers();
    this.#save();
    return true;
  }

  /**
   * The pool tells a waiting session its place, and how many runtimes are connected: with none, its reason says it
   * waits for a runtime (`no_runtime_connected`), not for a free slot (`queued`).
   */
  async queuePosition(position: number, runtimes?: number): Promise<void> {
    const session = this.#session;
    if (!session || session.state !== "WAITING" || session.runtime !== null) return;
    const reason = runtimes === undefined ? session.reason : runtimes === 0 ? "no_runtime_connected" : "queued";
    if (session.queuePosition === position && session.reason === reason) return;
    session.queuePosition = position;
    session.reason = reason;
    this.#save();
    this.#sendStatus();
  }

  async runtimeLost(reason: string): Promise<void> {
    if (this.#session && !isEnded(this.#session.state)) await this.#end("runtime_lost", reason);
  }

  // ── WebSockets: the native client's signaling socket and the runtime's session socket ────────────────────────

  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") return new ApiError("WEBSOCKET_REQUIRED").toResponse();
    const url = new URL(request.url);
    if (url.pathname.endsWith("/runtime")) return this.#acceptRuntime(url.searchParams.get("runtime_id") ?? "");
    const tokenExpiresAt = Number(request.headers.get("X-Token-Expires-At")) || undefined;
    // Issued before the socket is adopted, so the client gets its ICE servers in order, right after its status.
    const iceServers = this.#session?.runtime ? await this.#issueClientIceServers(tokenExpiresAt) : undefined;
    const held = request.headers.get("X-Held-Generation");
    return this.#acceptClient(request.headers.get("X-Account-Id") ?? "", request.headers.get("Sec-WebSocket-Protocol"), tokenExpiresAt, iceServers, held === null ? undefined : Number(held));
  }

  override async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    const attachment = ws.deserializeAttachment() as SocketAttachment | null;
    if (!attachment || !this.#session) return;
    if (attachment.role === "client") await this.#onClientFrame(ws, raw);
    else await this.#onRuntimeFrame(ws, raw);
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    completeClose(ws, code, reason);
    await this.#onSocketGone(ws, `closed ${code}${reason ? ` ${reason}` : ""}`);
  }

  override async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    await this.#onSocketGone(ws, `error ${String(error)}`);
  }

  // ── Deadlines ────────────────────────────────────────────────────────────────────────────────────────────────

  override async alarm(): Promise<void> {
    this.#alarmSet = undefined; // the alarm that fired is gone
    const session = this.#session;
    if (!session) return;
    const now = this.#clock.now();
    const due = (deadline: number | undefined) => deadline !== undefined && deadline <= now;
    const { deadlines } = session;

    // Billing segments reach the ledger before anything else, and before the session's storage may be purged.
    if (due(deadlines.ledger) || due(deadlines.purge)) await this.#flushLedger();
    if (due(deadlines.uploads) || due(deadlines.purge)) await this.#deleteUploads();
    if (due(deadlines.purge) && this.#pendingSegments.count === 0 && deadlines.uploads === undefined) {
      await this.ctx.storage.deleteAlarm();
      await this.ctx.storage.deleteAll();
      this.#alarmSet = undefined;
      this.#writtenRecord = undefined;
      this.#session = undefined;
      this.#negotiation.forget();
      this.#messages.forget();
      this.#writtenMessageSeq = 0;
      return;
    }
    // Ended at the deadline, not when the alarm ran: a late alarm bills nothing extra (grace bills exactly its 30 s).
    if (due(deadlines.maxDuration)) await this.#end("max_duration", "max_duration", deadlines.maxDuration);
    else if (due(deadlines.grace)) {
      // Whoever is still away decides the ending; a reconnect that beat this alarm has already cleared the deadline.
      if (!this.#runtimeUp()) await this.#end("runtime_lost", "runtime_lost", deadlines.grace);
      else await this.#end("grace_expired", "client_reconnect_timeout", deadlines.grace);
    } else if (due(deadlines.wait)) {
      if (session.runtime) await this.#end("wait_expired", "client_never_connected");
      else await this.#end("wait_expired", (await this.#releaseSlot()) === 0 ? "no_runtime" : "no_capacity");
    }
    if (due(deadlines.tokenExpiry)) {
      deadlines.tokenExpiry = undefined; // set again below if the socket's token was renewed meanwhile
      const client = this.#socket("client");
      if (client && !(await this.#closeIfTokenExpired(client))) {
        deadlines.tokenExpiry = (client.deserializeAttachment() as SocketAttachment).tokenDeadline;
      }
    }
    if (due(deadlines.hello)) {
      deadlines.hello = undefined;
      if (!isEnded(session.state)) this.#closeSilentRuntime();
    }
    if (due(deadlines.release)) await this.#releaseSlot();
    if (due(deadlines.accountRelease)) await this.#releaseAccountSlot();
    if (due(deadlines.iceRefresh)) {
      deadlines.iceRefresh = undefined; // set again by the push, if a client is there to get one
      if (!isEnded(session.state)) await this.#pushIceServers();
    }
    // An alarm that found nothing due (early, or repeated) must not lose the deadlines still ahead.
    this.#scheduleAlarm();
    this.#save();
  }

  // ── Client socket ────────────────────────────────────────────────────────────────────────────────────────────

  /** `heldGeneration`: the peer connection generation the client still holds (0: none), when it says. */
  #acceptClient(accountId: string, protocols: string | null, tokenExpiresAt: number | undefined, iceServers: IssuedIceServers | undefined, heldGeneration?: number): Response {
    const session = this.#session;
    if (!session) this.#keepNothing();
    if (!session || session.accountId !== accountId) return new ApiError("SESSION_NOT_FOUND").toResponse();
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    const replaced = this.#currentSocket("client");
    const tokenDeadline = tokenExpiresAt === undefined ? undefined : this.#tokenDeadline(tokenExpiresAt);
    this.#adoptSocket(server, "client", tokenExpiresAt === undefined ? {} : { tokenExpiresAt, tokenDeadline });
    session.deadlines.tokenExpiry = tokenDeadline;
    session.clientKind = "native";
    this.#events.record(this.#clock.now(), "client_connected", { kind: "native" });

    this.#sendToClient({
      type: "welcome",
      protocol: PROTOCOL_VERSION,
      session_id: session.id,
      next_command_seq: session.nextCommandSeq,
      message_seq: this.#messages.last,
    });
    this.#sendStatus();
    // The state of every command this client has not said it saw settled: a `command_status` lost with an earlier
    // socket (a drop, a buffer overflow, an acknowledgement) is never lost for good, and no dropped seq is left for a
    // later acknowledgement to seem to cover.
    for (const { seq, state, error } of this.#commands.statesAfter(session.commandsSeen ?? 0, session.nextCommandSeq)) {
      this.#sendToClient({ type: "command_status", seq, state, ...(error && { error }) });
    }
    if (isEnded(session.state)) {
      this.#save();
      server.close(1000, closeReason(session.reason ?? "ended"));
    } else {
      if (session.runtime && iceServers) this.#sendIceServers(iceServers);
      const { answer, runtimeCandidates } = this.#negotiation;
      if (answer !== null) {
        this.#sendToClient({ type: "answer", generation: session.generation, sdp: answer });
        for (const candidate of runtimeCandidates) {
          this.#sendToClient({ type: "ice", generation: session.generation, candidate });
        }
      }
      // Stored first, then those kept in memory (sent to a socket this one replaces): the client dedupes by seq.
      const { stored, inMemory } = this.#messages.unacknowledged();
      for (const frame of stored) sendIfOpen(server, frame);
      for (const frame of inMemory) sendIfOpen(server, frame);
      if (inMemory.length > 0) this.#markSentFromMemory();
      // The socket this one replaces closes without its close event counting: what `#clientLeft` does on a close
      // is done here. Its unacknowledged messages are still in memory and were just sent again, unless this object
      // woke up since it was sent them: then only the runtime has them. Refused messages are asked for again too.
      if ((replaced?.sentFromMemory && !this.#messages.complete) || this.#refused) this.#requestResend();
      // A client back without the current generation's peer connection (it closed it and will offer a new one):
      // the runtime's "connected" is about a connection that is gone, and must not make the session ACTIVE again.
      if (heldGeneration !== undefined && heldGeneration !== session.generation) session.peerConnected = false;
      this.#reconcileLinks();
      this.#save();
    }
    const headers = protocols?.split(",").some((p) => p.trim() === "reactor.v1") ? { "Sec-WebSocket-Protocol": "reactor.v1" } : undefined;
    return new Response(null, { status: 101, webSocket: client, headers });
  }

  async #onClientFrame(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    // A token that has expired authorizes nothing more, whatever the frame (the alarm closes an idle socket).
    if (await this.#closeIfTokenExpired(ws)) return;
    const decoded = decodeFrame(ClientFrame, raw);
    if (!decoded.ok) return sendError(ws, decoded.code, decoded.message);
    const frame = decoded.frame;
    const session = this.#session!;
    if (isEnded(session.state) && frame.type !== "ack" && frame.type !== "ping" && frame.type !== "commands_seen" && frame.type !== "token") {
      // Usually unreachable: the gateway closes the client's socket when the session ends (see #end), and nothing
      // can be sent after a close. Answered on the socket the frame came from, should it still be open.
      if (frame.type === "command") {
        // The next seq is used up, as any dropped command's is: the client's numbering stays the gateway's (a
        // restarted session takes its next command), and a reconnecting client is told this drop again.
        if (frame.seq === session.nextCommandSeq) {
          session.nextCommandSeq++;
          session.counters.commands++;
          session.counters.dropped++;
          this.#commands.recordOutcome(frame.seq, "dropped", "SESSION_ENDED");
          this.#save();
        }
        sendIfOpen(ws, JSON.stringify({ type: "command_status", seq: frame.seq, state: "dropped", error: "SESSION_ENDED" } satisfies ServerFrame));
      }
      return sendError(ws, "SESSION_ENDED", `The session is ${session.state}: ${session.reason}.`, frameRef(frame));
    }
    switch (frame.type) {
      case "offer":
        if (frame.generation <= session.generation) return sendError(ws, "STALE_GENERATION", undefined, { generation: frame.generation });
        this.#startGeneration(frame.generation, frame.sdp, undefined, true);
        break;
      case "ice": {
        if (frame.generation !== session.generation) return sendError(ws, "STALE_GENERATION", undefined, { generation: frame.generation });
        const error = this.#relayClientCandidate(frame.generation, frame.candidate);
        if (error) return sendError(ws, error, undefined, { generation: frame.generation });
        return; // the record is unchanged; the candidate is written with its batch
      }
      case "command":
        this.#acceptCommand(ws, frame.seq, frame.command, frame.policy ?? "buffer");
        break;
      case "ack": {
        const sentFromMemory = (ws.deserializeAttachment() as SocketAttachment).sentFromMemory === true;
        const { upTo, freed, deletedRows } = this.#messages.acknowledge(frame.message_seq, sentFromMemory);
        if (upTo > session.messageSeq) session.messageSeq = upTo;
        if (freed && this.#refused) this.#requestResend();
        // The new safe point goes out as `message_ack` with the next record write (a command, say); at once only
        // if rows were deleted anyway, or if the runtime would otherwise hold many messages for nothing.
        if (deletedRows || session.messageSeq - this.#writtenMessageSeq >= ACK_WRITE_EVERY) break;
        return;
      }
      case "commands_seen": {
        // Never past what was received: a seq not yet sent cannot have been seen settled.
        const seen = Math.min(frame.seq, session.nextCommandSeq - 1);
        if (seen <= (session.commandsSeen ?? 0)) return;
        session.commandsSeen = seen;
        // Written with the next record write unless rows go now; lost in an eviction, it only means a longer replay.
        if (this.#commands.forgetOutcomes(seen, session.nextCommandSeq)) break;
        return;
      }
      case "ping":
        sendIfOpen(ws, JSON.stringify({ type: "pong", t: frame.t } satisfies ServerFrame));
        return;
      case "token":
        await this.#renewToken(ws, frame.token);
        break;
      case "close":
        await this.#end("close", frame.reason ?? "client_closed");
        break;
    }
    this.#save();
  }

  /**
   * A `token` frame: verified exactly as the socket's bearer token was (signature, claims, expiry), and for the
   * same access: this session's account, and its model if the token is narrowed to models. Then it is the
   * socket's token: its expiry replaces the old one. A refused token changes nothing (the old one still runs).
   */
  async #renewToken(ws: WebSocket, token: string): Promise<void> {
    const session = this.#session!;
    let principal;
    try {
      principal = await verifyClientToken(this.env, token);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      return sendError(ws, error.code, error.message, { type: "token" });
    }
    if (principal.accountId !== session.accountId || (principal.models && !principal.models.includes(session.model))) {
      return sendError(ws, "TOKEN_NOT_FOR_SESSION", undefined, { type: "token" });
    }
    const attachment = ws.deserializeAttachment() as SocketAttachment;
    const tokenDeadline = this.#tokenDeadline(principal.expiresAt);
    ws.serializeAttachment({ ...attachment, tokenExpiresAt: principal.expiresAt, tokenDeadline } satisfies SocketAttachment);
    if (attachment.connection === session.clientSocket) session.deadlines.tokenExpiry = tokenDeadline;
    this.#scheduleAlarm();
    this.#events.record(this.#clock.now(), "client_token_renewed", { expires_at: principal.expiresAt });
    sendIfOpen(ws, JSON.stringify({ type: "token_accepted", expires_at: principal.expiresAt } satisfies ServerFrame));
  }

  /** A token expiring at `expiresAt` (Unix seconds, verified just now), as a deadline on this object's clock. */
  #tokenDeadline(expiresAt: number): number {
    return this.#clock.now() + (expiresAt * 1000 - Date.now());
  }

  /** Closes `ws` (CLOSE_TOKEN_EXPIRED) if its token has expired; it then counts as a client drop. */
  async #closeIfTokenExpired(ws: WebSocket): Promise<boolean> {
    const { tokenDeadline } = ws.deserializeAttachment() as SocketAttachment;
    if (tokenDeadline === undefined || tokenDeadline > this.#clock.now()) return false;
    if (ws.readyState === WebSocket.OPEN) ws.close(CLOSE_TOKEN_EXPIRED, "token expired");
    await this.#onSocketGone(ws, `closed ${CLOSE_TOKEN_EXPIRED} token expired`);
    return true;
  }

  #acceptCommand(ws: WebSocket, seq: number, command: Command, policy: CommandPolicy): void {
    const session = this.#session!;
    if (seq === session.nextCommandSeq && command.uploads) {
      const refused = this.#refusedRef(command.uploads);
      if (refused) return this.#refuseCommand(ws, seq, refused.code, `uploads.${refused.param}: ${ERROR_CODES[refused.code].message}`);
    }
    const deliverable = this.#deliverable();
    const result = this.#commands.accept(seq, session.nextCommandSeq, command, policy, deliverable);
    if (result.kind === "stored" || result.kind === "dropped") meterCommand((session.meter ??= newMeter()), this.#clock.now(), this.#idleSpanMs);
    switch (result.kind) {
      case "duplicate":
        return sendError(ws, "COMMAND_REPLAYED", `Command ${seq} was already received.`, { seq });
      case "gap":
        return sendError(ws, "COMMAND_SEQ_GAP", `Expected command ${result.expected}, got ${seq}.`, { seq, expected: result.expected });
      case "dropped":
        session.nextCommandSeq = seq + 1;
        session.counters.commands++;
        session.counters.dropped++;
        this.#commands.recordOutcome(seq, "dropped", result.reason === "buffer_full" ? "COMMAND_BUFFER_FULL" : "COMMAND_DROPPED");
        this.#commandStatus(seq, "dropped", result.reason === "buffer_full" ? "COMMAND_BUFFER_FULL" : "COMMAND_DROPPED");
        if (result.reason === "buffer_full") sendError(ws, "COMMAND_BUFFER_FULL", undefined, { seq });
        return;
      case "stored":
        session.nextCommandSeq = seq + 1;
        session.counters.commands++;
        session.counters.replaced += result.replaced.length;
        for (const replaced of result.replaced) {
          this.#commands.recordOutcome(replaced, "replaced");
          this.#commandStatus(replaced, "replaced");
        }
        if (result.state === "delivered") this.#sendToRuntime({ type: "command", seq, command });
        this.#commandStatus(seq, result.state);
    }
  }

  /** A command that will never reach the model (a file reference that does not check out): its seq is used up. */
  #refuseCommand(ws: WebSocket, seq: number, code: ErrorCode, message: string): void {
    const session = this.#session!;
    session.nextCommandSeq = seq + 1;
    session.counters.commands++;
    session.counters.dropped++;
    this.#events.record(this.#clock.now(), "command_refused", { seq, code });
    this.#commands.recordOutcome(seq, "dropped", code);
    this.#commandStatus(seq, "dropped", code);
    sendError(ws, code, message, { seq });
  }

  #commandStatus(seq: number, state: CommandState, error?: ErrorCode): void {
    this.#sendToClient({ type: "command_status", seq, state, ...(error && { error }) });
  }

  // ── Runtime socket ───────────────────────────────────────────────────────────────────────────────────────────

  #acceptRuntime(runtimeId: string): Response {
    const session = this.#session;
    if (!session) this.#keepNothing();
    if (!session) return new ApiError("SESSION_NOT_FOUND").toResponse();
    if (isEnded(session.state)) return new ApiError("SESSION_ENDED").toResponse();
    if (session.runtime?.runtimeId !== runtimeId) return new ApiError("RUNTIME_NOT_ASSIGNED").toResponse();
    const [runtime, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    const replacedGreeted = this.#runtimeUp();
    this.#adoptSocket(server, "runtime", { awaitingHello: true });
    // Until it says hello the new socket is not a runtime: one that replaced a working socket is a runtime drop
    // (grace starts; its hello resumes), and one that never says hello is closed at this deadline.
    session.deadlines.hello = this.#clock.now() + RUNTIME_HELLO_MS;
    if (replacedGreeted) {
      this.#events.record(this.#clock.now(), "runtime_dropped", { how: "replaced by a new socket, not greeted yet" });
      this.#reconcileLinks();
    } else {
      this.#scheduleAlarm();
    }
    this.#save();
    return new Response(null, { status: 101, webSocket: runtime });
  }

  async #onRuntimeFrame(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    const decoded = decodeFrame(RuntimeSessionFrame, raw);
    if (!decoded.ok) return sendRuntimeError(ws, decoded.code, decoded.message);
    const frame = decoded.frame;
    const session = this.#session!;
    if (isEnded(session.state)) return sendRuntimeError(ws, "SESSION_ENDED", `The session is ${session.state}.`);
    const attachment = ws.deserializeAttachment() as SocketAttachment;
    // Nothing counts before the hello proves which runtime this is (a `release` must not end the session). A
    // replaced socket that had said hello was the runtime: what it had in flight still counts.
    if (attachment.awaitingHello && frame.type !== "hello") return sendRuntimeError(ws, "HELLO_REQUIRED", undefined, { type: frame.type });
    const stale = "generation" in frame && frame.generation !== session.generation;
    switch (frame.type) {
      case "hello":
        if (attachment.connection !== session.runtimeSocket) return; // replaced
        if (frame.runtime_id !== session.runtime?.runtimeId) {
          sendRuntimeError(ws, "RUNTIME_NOT_ASSIGNED");
          ws.close(4003, "not assigned");
          return;
        }
        {
          const issued = await iceServersFor(this.env, { subject: session.id });
          // Issuing may have yielded: the session may have ended, or another socket replaced this one, meanwhile.
          if (isEnded(session.state)) return sendRuntimeError(ws, "SESSION_ENDED", `The session is ${session.state}.`);
          if ((ws.deserializeAttachment() as SocketAttachment).connection !== session.runtimeSocket) return;
          this.#onRuntimeHello(ws, frame.command_seq, issued.iceServers);
        }
        break;
      case "answer":
        if (stale) {
          this.#events.record(this.#clock.now(), "stale_answer_dropped", { generation: frame.generation });
          sendRuntimeError(ws, "STALE_GENERATION", undefined, { generation: frame.generation });
          break;
        }
        this.#negotiation.setAnswer(frame.sdp);
        this.#events.record(this.#clock.now(), "answer", { generation: frame.generation });
        this.#sendToClient({ type: "answer", generation: frame.generation, sdp: frame.sdp });
        this.#wake();
        break;
      case "ice":
        if (stale) return sendRuntimeError(ws, "STALE_GENERATION", undefined, { generation: frame.generation });
        if (this.#negotiation.runtimeCandidates.length >= LIMITS.candidatesPerGeneration) return sendRuntimeError(ws, "ICE_CANDIDATE_LIMIT");
        this.#negotiation.addCandidate("runtime", frame.candidate);
        this.#sendToClient({ type: "ice", generation: frame.generation, candidate: frame.candidate });
        return; // the record is unchanged; the candidate is written with its batch
      case "peer_state":
        if (stale) return sendRuntimeError(ws, "STALE_GENERATION", undefined, { generation: frame.generation });
        this.#onPeerState(frame.state);
        break;
      case "command_ack": {
        const acknowledged = this.#commands.acknowledge(frame.seq);
        session.counters.acknowledged += acknowledged.length;
        for (const seq of acknowledged) this.#commandStatus(seq, "acknowledged");
        if (acknowledged.length === 0) return;
        break;
      }
      case "message":
        if (!this.#onModelMessage(ws, frame.seq, frame.scope, frame.data)) return; // nothing written
        break;
      case "release":
        await this.#end("runtime_lost", `runtime_released: ${frame.reason}`);
        break;
      case "frame_error":
        // The runtime missed a frame (say a `session` frame it could not take: its model never started). Going on
        // would leave the session ACTIVE, and billed, with nothing behind it.
        this.#events.record(this.#clock.now(), "runtime_frame_error", { code: frame.code, frame_type: frame.frame_type, message: frame.message });
        await this.#end("runtime_lost", `runtime_frame_error: ${frame.code}${frame.frame_type ? ` (${frame.frame_type})` : ""}`);
        break;
    }
    this.#save();
  }

  #onRuntimeHello(ws: WebSocket, processedSeq: number, iceServers: IceServer[]): void {
    const session = this.#session!;
    const { awaitingHello: _greetedNow, ...attachment } = ws.deserializeAttachment() as SocketAttachment;
    ws.serializeAttachment(attachment satisfies SocketAttachment);
    this.#live.set("runtime", { ws, connection: attachment.connection, greeted: true, sentFromMemory: false });
    session.deadlines.hello = undefined;
    session.runtimeEverConnected = true;
    this.#runtimeAcked = 0; // the record write at the end of this hello sends the safe point on the new socket
    this.#refused = false; // the hello's message_seq asks for everything after it
    this.#events.record(this.#clock.now(), "runtime_connected", { runtime_id: session.runtime!.runtimeId });
    const acknowledged = this.#commands.acknowledge(processedSeq);
    session.counters.acknowledged += acknowledged.length;
    for (const seq of acknowledged) this.#commandStatus(seq, "acknowledged");
    this.#sendToRuntime({
      type: "session",
      session_id: session.id,
      state: session.state,
      message_seq: this.#messages.last - (session.messageBase ?? 0), // in this run's numbering
      ...(session.extraArgs && { extra_args: session.extraArgs }),
      ice_servers: iceServers,
    });
    const { offer, answer, clientCandidates } = this.#negotiation;
    if (offer && answer === null) {
      this.#sendToRuntime({ type: "offer", generation: session.generation, sdp: offer.sdp, track_mapping: offer.trackMapping, ...(offer.trickle && { trickle: true }) });
      for (const candidate of clientCandidates) this.#sendToRuntime({ type: "ice", generation: session.generation, candidate });
    }
    this.#resendToRuntime();
    this.#reconcileLinks();
  }

  /** The hello deadline passed: a runtime socket that still has not said hello is closed, and counts as gone. */
  #closeSilentRuntime(): void {
    const session = this.#session!;
    const live = this.#currentSocket("runtime");
    if (!live || live.greeted) return;
    session.runtimeSocket = null;
    live.ws.close(CLOSE_NO_HELLO, "no hello in time");
    this.#events.record(this.#clock.now(), "runtime_dropped", { how: `no hello within ${RUNTIME_HELLO_MS / 1000} s` });
    this.#reconcileLinks();
  }

  #onPeerState(state: PeerState): void {
    const session = this.#session!;
    const connected = state === "connected";
    if (connected === session.peerConnected) return;
    session.peerConnected = connected;
    this.#events.record(this.#clock.now(), connected ? "peer_connected" : "peer_lost", { state, generation: session.generation });
    this.#reconcileLinks();
  }

  /**
   * A model message: sent on to a connected client and kept in memory (no write), or stored while the client is
   * away. Returns whether the record changed and must be written.
   */
  #onModelMessage(ws: WebSocket, runSeq: number, scope: "application" | "runtime", data: unknown): boolean {
    const session = this.#session!;
    // Everything below is in the client's numbering; only what goes back to the runtime is in the run's.
    const base = session.messageBase ?? 0;
    const seq = base + runSeq;
    const frame = JSON.stringify({ type: "message", seq, scope, data } satisfies ServerFrame);
    const away = this.#clientSocket() === undefined;
    const expected = this.#messages.last + 1;
    switch (this.#messages.accept(seq, frame, away)) {
      case "duplicate":
        return false;
      case "gap":
        // Sent before the runtime got our request to resend: the resend brings it again.
        if (this.#resendAskedFrom(expected)) return false;
        // After a wake-up a gap is how this object learns the runtime went on without it: nothing to report.
        if (this.#messages.complete) {
          sendRuntimeError(ws, "MESSAGE_SEQ_GAP", `Expected message ${expected - base}, got ${runSeq}.`, { seq: runSeq, expected: expected - base });
        }
        this.#requestResend();
        return false;
      case "full":
        sendRuntimeError(ws, "MESSAGE_BUFFER_FULL", undefined, { seq: runSeq });
        // The runtime keeps it (not acknowledged); it is asked again once the client has made room.
        this.#refused = true;
        this.#markResendAsked(expected);
        return false;
      case "accepted":
        session.counters.messages = Math.max(session.counters.messages, seq);
        if (!away) {
          this.#sendRawToClient(frame);
          this.#markSentFromMemory();
          return false;
        }
        session.messageSeq = seq; // stored: safe, and acknowledged to the runtime with this write
        return true;
    }
  }

  /**
   * Asks the runtime to resend every message after the last one this object has. A runtime that is not up is
   * asked by the answer to its hello (`session.message_seq`), which says the same thing.
   */
  #requestResend(): void {
    const live = this.#currentSocket("runtime");
    if (!live?.greeted) return;
    const from = this.#messages.last + 1;
    this.#resendAsked = { connection: live.connection, from };
    this.#refused = false;
    const runFrom = from - (this.#session!.messageBase ?? 0);
    sendIfOpen(live.ws, JSON.stringify({ type: "resend_messages", from_seq: runFrom } satisfies GatewayFrame));
  }

  #resendAskedFrom(from: number): boolean {
    const asked = this.#resendAsked;
    return asked !== undefined && asked.from === from && asked.connection === this.#session!.runtimeSocket;
  }

  #markResendAsked(from: number): void {
    const connection = this.#session!.runtimeSocket;
    if (connection !== null) this.#resendAsked = { connection, from };
  }

  /**
   * The client's socket closed: the messages it was sent and has not acknowledged, kept only in memory until now,
   * are stored so they are delivered when it returns. If this object woke up since they were sent, it no longer
   * has them: the runtime does, and is asked to resend them (stored as they come, the client being away).
   */
  #clientLeft(sentFromMemory: boolean): void {
    const session = this.#session!;
    if (this.#messages.storeUnacked()) session.messageSeq = this.#messages.last;
    else if (sentFromMemory && !this.#messages.complete) this.#requestResend();
  }

  /** Notes on the client's socket that it was sent messages kept only in memory (once per socket). */
  #markSentFromMemory(): void {
    const live = this.#currentSocket("client");
    if (!live || live.sentFromMemory) return;
    live.sentFromMemory = true;
    const attachment = live.ws.deserializeAttachment() as SocketAttachment;
    live.ws.serializeAttachment({ ...attachment, sentFromMemory: true } satisfies SocketAttachment);
  }

  // ── Links, grace and the lifecycle ──────────────────────────────────────────────────────────────────────────

  #adoptSocket(ws: WebSocket, role: Role, extra: Partial<SocketAttachment> = {}): void {
    const session = this.#session!;
    const connection = ++session.connections;
    const previous = this.#socket(role);
    this.ctx.acceptWebSocket(ws, [role]);
    ws.serializeAttachment({ ...extra, role, connection } satisfies SocketAttachment);
    if (role === "client") session.clientSocket = connection;
    else session.runtimeSocket = connection;
    previous?.close(4000, "replaced by a newer connection");
  }

  async #onSocketGone(ws: WebSocket, how: string): Promise<void> {
    const attachment = ws.deserializeAttachment() as SocketAttachment | null;
    const session = this.#session;
    if (!attachment || !session) return;
    const current = attachment.role === "client" ? session.clientSocket : session.runtimeSocket;
    if (current !== attachment.connection) return; // a replaced socket
    if (attachment.role === "client") {
      session.clientSocket = null;
      session.deadlines.tokenExpiry = undefined;
    } else {
      session.runtimeSocket = null;
      session.deadlines.hello = undefined;
    }
    if (!isEnded(session.state)) {
      if (attachment.role === "client") this.#clientLeft(attachment.sentFromMemory === true);
      this.#events.record(this.#clock.now(), `${attachment.role}_dropped`, { how });
      this.#reconcileLinks();
    }
    this.#save();
  }

  #clientConnected(): boolean {
    const session = this.#session!;
    // The live socket, not the record: after the object was aborted with its sockets (a redeploy), the record still
    // names a client socket that is gone, and no close event will ever come for it.
    return session.peerConnected && (session.clientKind !== "native" || this.#socket("client") !== undefined);
  }

  /**
   * Moves the lifecycle along after a link changed: ready when both sides are up, grace when one drops, resume
   * when both are back. Also keeps the runtime-drop grace of a session that is assigned but not yet ready.
   */
  #reconcileLinks(): void {
    const session = this.#session!;
    const runtimeUp = this.#runtimeUp();
    const bothUp = runtimeUp && this.#clientConnected();
    const now = this.#clock.now();
    if (session.state === "WAITING" && session.runtime) {
      if (bothUp) {
        session.activatedAt ??= now;
        session.deadlines.wait = undefined;
        session.deadlines.grace = undefined;
        session.deadlines.maxDuration ??= now + (session.maxDurationMs ?? this.#settings.maxDurationMs);
        this.#transition("ready", "ready");
        this.#flushWaitingCommands();
      } else if (!runtimeUp && session.runtimeEverConnected) {
        session.deadlines.grace ??= now + this.#settings.graceMs;
      } else if (runtimeUp) {
        session.deadlines.grace = undefined;
      }
    } else if (session.state === "ACTIVE" && !bothUp) {
      session.deadlines.grace = now + this.#settings.graceMs;
      this.#transition("drop", runtimeUp ? "client_disconnected" : "runtime_disconnected");
    } else if (session.state === "RECONNECTING" && bothUp) {
      session.deadlines.grace = undefined;
      this.#transition("resume", "reconnected");
      this.#flushWaitingCommands();
    }
    this.#scheduleAlarm();
  }

  #deliverable(): boolean {
    return this.#session!.state === "ACTIVE" && this.#runtimeUp();
  }

  /** The runtime is up once it has said hello on its current session socket. */
  #runtimeUp(): boolean {
    return this.#greetedRuntime() !== undefined;
  }

  #greetedRuntime(): WebSocket | undefined {
    const live = this.#currentSocket("runtime");
    return live?.greeted ? live.ws : undefined;
  }

  /** After a runtime (re)connects: everything it has not acknowledged, and the waiting commands if ready. */
  #resendToRuntime(): void {
    const deliverable = this.#deliverable();
    const waiting = new Set(deliverable ? this.#commands.waitingSeqs() : []);
    for (const { seq, command } of this.#commands.takeUnacknowledged(deliverable)) {
      this.#sendToRuntime({ type: "command", seq, command });
      if (waiting.has(seq)) this.#commandStatus(seq, "delivered");
    }
  }

  /** The session became ready: commands buffered meanwhile go out, in order. */
  #flushWaitingCommands(): void {
    for (const { seq, command } of this.#commands.flushWaiting()) {
      this.#sendToRuntime({ type: "command", seq, command });
      this.#commandStatus(seq, "delivered");
    }
  }

  /** Moves the lifecycle by `event`, if the table allows it; `at` is when it happened (default now), for billing. */
  #transition(event: LifecycleEvent, reason: string, at = this.#clock.now()): boolean {
    const session = this.#session!;
    const to = nextState(session.state, event);
    if (to === undefined) return false;
    const from = session.state;
    session.state = to;
    session.reason = reason;
    if (from !== to) {
      this.#events.record(this.#clock.now(), "state", { from, to, reason });
      this.#meterTransition(from, to, at);
    }
    this.#sendStatus();
    this.#wake();
    this.#scheduleAlarm();
    return true;
  }

  async #queue(): Promise<void> {
    const session = this.#session!;
    session.deadlines.wait = this.#clock.now() + this.#settings.queueWaitMs;
    this.#transition("queue", "queued");
    this.#save();
    // The pool assigns a free slot before answering (calling `assign` on this object), else returns the place.
    const { position, runtimes } = await this.#pool().enqueue(session.id);
    if (position !== null) {
      this.#events.record(this.#clock.now(), "queued", { position, runtimes });
      await this.queuePosition(position, runtimes);
    }
  }

  /**
   * Ends the session if `event` is allowed now: tells both sides why, drops what can no longer be delivered, and
   * frees its GPU slot and its account slot. `at` is when it ended for billing (a deadline, when one ended it).
   */
  async #end(event: LifecycleEvent, reason: string, at?: number): Promise<void> {
    const session = this.#session!;
    if (!this.#transition(event, reason, at)) return;
    const now = this.#clock.now();
    for (const seq of this.#commands.dropAll()) {
      session.counters.dropped++;
      this.#commands.recordOutcome(seq, "dropped", "SESSION_ENDED");
      this.#commandStatus(seq, "dropped", "SESSION_ENDED");
    }
    const { commands, acknowledged, dropped, replaced, messages } = session.counters;
    this.#events.record(now, "ended", { state: session.state, reason, commands, acknowledged, dropped, replaced, messages });
    // Messages the client was sent and has not acknowledged stay with the session, as if its socket had closed: an
    // INACTIVE session can be restarted, and its client then gets them before any newer one.
    if (this.#messages.storeUnacked()) session.messageSeq = this.#messages.last;
    this.#sendToRuntime({ type: "end", reason });
    this.#socket("runtime")?.close(1000, "session ended");
    this.#socket("client")?.close(1000, closeReason(reason));
    session.clientSocket = null;
    session.runtimeSocket = null;
    // The releases are retried by alarm until confirmed; their deadlines are written with the end itself, so an
    // eviction before they are confirmed cannot lose them.
    session.deadlines = {
      purge: now + this.#settings.retentionMs,
      release: now + RETRY_MS,
      accountRelease: now + RETRY_MS,
      ledger: session.deadlines.ledger,
      uploads: this.#uploads.count > 0 ? now + RETRY_MS : undefined,
    };
    session.releasePending = true;
    this.#save();
    await Promise.all([this.#releaseSlot(), this.#releaseAccountSlot(), this.#flushLedger(), this.#deleteUploads()]);
  }

  /** Frees the account's session slot (AccountLimits) held by run `epoch` of this session. */
  async #releaseAccountSlot(epoch = this.#session!.slotEpoch ?? 0): Promise<void> {
    const session = this.#session!;
    try {
      await accountLimits(this.env, session.accountId).release(session.id, epoch);
      session.deadlines.accountRelease = undefined;
    } catch (error) {
      console.error("account slot release failed; retrying by alarm", session.id, String(error));
      session.deadlines.accountRelease = this.#clock.now() + RETRY_MS;
    } finally {
      this.#scheduleAlarm();
      this.#save();
    }
  }

  /** Opens and closes billing segments as the session enters and leaves billed states (see meter.ts). */
  #meterTransition(from: SessionState, to: SessionState, at: number): void {
    const session = this.#session!;
    const options = { idleSpanMs: this.#idleSpanMs, seesCommands: session.clientKind === "native" };
    const closed = meterTransition((session.meter ??= newMeter()), from, to, at, options);
    if (!closed) return;
    // Stored with the transition (same write); the alarm takes the batch to the D1 ledger, and again until it is there.
    this.#pendingSegments.add(closed);
    session.deadlines.ledger ??= this.#clock.now() + LEDGER_BATCH_MS;
  }

  /** Writes the closed segments to the D1 ledger; on failure they stay pending and the alarm retries. */
  async #flushLedger(): Promise<void> {
    const session = this.#session!;
    const pending = this.#pendingSegments.list();
    try {
      if (pending.length > 0) {
        const price = usdPerSecond(priceTable(this.env), session.model);
        const { id: sessionId, accountId, apiKeyId, model } = session;
        await writeSegments(this.env.DB, pending.map((segment) => ({ ...segment, sessionId, accountId, apiKeyId, model, usdPerSecond: price })));
        this.#pendingSegments.written(pending.map((segment) => segment.segmentNo));
      }
      if (this.#pendingSegments.count === 0) session.deadlines.ledger = undefined;
    } catch (error) {
      console.error("ledger write failed; retrying by alarm", session.id, String(error));
      session.deadlines.ledger = this.#clock.now() + RETRY_MS;
    } finally {
      this.#scheduleAlarm();
      this.#save();
    }
  }

  /** Frees the GPU slot or queue place at the pool. Returns how many runtimes are connected (for the end reason). */
  async #releaseSlot(): Promise<number | undefined> {
    const session = this.#session!;
    try {
      const { runtimes } = await this.#pool().release(session.id);
      session.releasePending = false;
      session.deadlines.release = undefined;
      return runtimes;
    } catch (error) {
      console.error("pool release failed; retrying by alarm", session.id, String(error));
      session.deadlines.release = this.#clock.now() + RETRY_MS;
      this.#scheduleAlarm();
      return undefined;
    } finally {
      this.#save();
    }
  }

  #startGeneration(generation: number, sdp: string, trackMapping?: unknown, trickle = false): void {
    const session = this.#session!;
    const isReconnect = session.generation > 0;
    this.#resetGeneration(generation, { sdp, trackMapping, ...(trickle && { trickle }) });
    this.#events.record(this.#clock.now(), "offer", { generation, reconnect: isReconnect });
    this.#sendToRuntime({ type: "offer", generation, sdp, track_mapping: trackMapping, ...(trickle && { trickle: true }) });
  }

  #resetGeneration(generation: number, offer: Offer | null = null): void {
    this.#session!.generation = generation;
    this.#negotiation.reset(offer);
  }

  #resetConnection(): void {
    const session = this.#session!;
    this.#resetGeneration(session.generation);
    session.peerConnected = false;
  }

  #relayClientCandidate(generation: number, candidate: IceCandidate | null): ErrorCode | undefined {
    if (this.#negotiation.clientCandidates.length >= LIMITS.candidatesPerGeneration) return "ICE_CANDIDATE_LIMIT";
    this.#negotiation.addCandidate("client", candidate);
    this.#sendToRuntime({ type: "ice", generation, candidate });
    return undefined;
  }

  // ── Plumbing ────────────────────────────────────────────────────────────────────────────────────────────────

  #owned(accountId: string): Result<true> {
    const session = this.#session;
    // Another account's session and a session that does not exist look the same from outside.
    if (!session) this.#keepNothing();
    if (!session || session.accountId !== accountId) return fail("SESSION_NOT_FOUND");
    return ok(true);
  }

  /**
   * No session lives here (a guessed id, or one purged): the object keeps no storage, not even the tables its
   * constructor made, so guessing ids leaves nothing behind.
   */
  #keepNothing(): void {
    void this.ctx.storage.deleteAll();
  }

  /** The generation of connection id `id` if it is the current one: older ids are superseded, others unknown. */
  #currentConnection(id: string): Result<number> {
    const generation = parseConnectionId(id);
    const current = this.#session!.generation;
    if (generation === undefined || generation > current) return fail("CONNECTION_NOT_FOUND", `No connection ${id} on this session.`);
    if (generation < current) return fail("CONNECTION_SUPERSEDED");
    return ok(generation);
  }

  #ownedAndLive(accountId: string): Result<true> {
    const owned = this.#owned(accountId);
    if (!owned.ok) return owned;
    const { state, reason } = this.#session!;
    if (isEnded(state)) return fail("SESSION_ENDED", `The session is ${state}: ${reason}.`);
    return owned;
  }

  #view(): SessionResponse {
    const session = this.#session!;
    const assigned = session.runtime !== null && !isEnded(session.state);
    return {
      session_id: session.id,
      state: session.state,
      cluster: CLUSTER,
      model: { name: session.model, ...(session.runtime?.modelVersion && { version: session.runtime.modelVersion }) },
      server_info: { server_version: GATEWAY_VERSION },
      ...(assigned && {
        selected_transport: { protocol: "webrtc", version: "1.0" },
        capabilities: session.runtime!.capabilities,
      }),
      ...(session.reason && { reason: session.reason }),
      ...(session.queuePosition !== null && session.state === "WAITING" && { queue_position: session.queuePosition }),
    };
  }

  #sendStatus(): void {
    const session = this.#session!;
    this.#sendToClient({
      type: "status",
      state: session.state,
      ...(session.reason && { reason: session.reason }),
      ...(session.queuePosition !== null && session.state === "WAITING" && { queue_position: session.queuePosition }),
      ...(session.deadlines.grace !== undefined && { deadline: session.deadlines.grace }),
      ...(session.runtime && !isEnded(session.state) && { capabilities: session.runtime.capabilities }),
    });
  }

  /** The current socket of `role`: found among the hibernatable sockets once after a wake-up, then remembered. */
  #socket(role: Role): WebSocket | undefined {
    return this.#currentSocket(role)?.ws;
  }

  #currentSocket(role: Role): LiveSocket | undefined {
    const session = this.#session!;
    const current = role === "client" ? session.clientSocket : session.runtimeSocket;
    if (current === null) return undefined;
    const known = this.#live.get(role);
    if (known?.connection === current) return known;
    for (const ws of this.ctx.getWebSockets(role)) {
      const attachment = ws.deserializeAttachment() as SocketAttachment | null;
      if (attachment?.connection !== current) continue;
      const live = { ws, connection: current, greeted: !attachment.awaitingHello, sentFromMemory: attachment.sentFromMemory === true };
      this.#live.set(role, live);
      return live;
    }
    return undefined;
  }

  #clientSocket(): WebSocket | undefined {
    return this.#socket("client");
  }

  #sendToClient(frame: ServerFrame): void {
    this.#sendRawToClient(JSON.stringify(frame));
  }

  #sendRawToClient(frame: string): void {
    const ws = this.#clientSocket();
    if (ws) sendIfOpen(ws, frame);
  }

  /** Nothing goes to a runtime socket before its hello: the hello answer (`session`, then resends) comes first. */
  #sendToRuntime(frame: GatewayFrame): void {
    const ws = this.#greetedRuntime();
    if (ws) sendIfOpen(ws, JSON.stringify(frame));
  }

  #pool() {
    return this.env.MODEL_POOL.get(this.env.MODEL_POOL.idFromName(this.#session!.model));
  }

  #save(): void {
    const session = this.#session;
    if (!session) return;
    // Most relayed frames change nothing in the record: rewriting it anyway would be a storage write per frame.
    const record = JSON.stringify(session);
    if (record !== this.#writtenRecord) {
      this.ctx.storage.kv.put(RECORD_KEY, session);
      this.#writtenRecord = record;
      this.#negotiation.writeCandidates(); // in the same write, rather than another one later
    }
    this.#writtenMessageSeq = session.messageSeq;
    // Messages up to the safe point written just now may be forgotten by the runtime. The output gate holds this
    // frame until the write is durable, and drops it if the write fails.
    if (session.messageSeq > this.#runtimeAcked && this.#runtimeUp()) {
      this.#runtimeAcked = session.messageSeq;
      const runSeq = session.messageSeq - (session.messageBase ?? 0);
      if (runSeq > 0) this.#sendToRuntime({ type: "message_ack", seq: runSeq });
    }
  }

  #scheduleAlarm(): void {
    const deadlines = Object.values(this.#session!.deadlines).filter((value): value is number => value !== undefined);
    const earliest = deadlines.length === 0 ? null : Math.min(...deadlines);
    // Most changes leave the earliest deadline where it was: setting the same alarm again is a storage write.
    const alarm = `${earliest}@${this.#clock.now() - Date.now()}`;
    if (alarm === this.#alarmSet) return;
    this.#alarmSet = alarm;
    if (earliest === null) {
      void this.ctx.storage.deleteAlarm();
      return;
    }
    // The alarm runs on real time; the test clock only decides which deadlines have passed when it fires.
    void this.ctx.storage.setAlarm(Date.now() + Math.max(0, earliest - this.#clock.now()));
  }

  #wake(): void {
    for (const wake of this.#waiters) wake();
    this.#waiters.clear();
  }

  async #waitUntil(done: () => boolean, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!done() && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        this.#waiters.add(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

// ── Small helpers ──────────────────────────────────────────────────────────────────────────────────────────────

const connectionId = (generation: number) => `conn_${generation}`;

function parseConnectionId(id: string): number | undefined {
  const match = /^conn_(\d{1,7})$/.exec(id);
  return match ? Number(match[1]) : undefined;
}

function frameRef(frame: ClientFrame): unknown {
  return frame.type === "command" ? { seq: frame.seq } : { type: frame.type };
}

function errorFrame(code: ErrorCode, message?: string, ref?: unknown): string {
  const { recoverable, message: fallback } = ERROR_CODES[code];
  return JSON.stringify({
    type: "error",
    code,
    message: message ?? fallback,
    recoverable,
    ...(recoverable && { retry_after: 1 }),
    ...(ref !== undefined && { ref }),
  } satisfies ServerFrame);
}

function sendError(ws: WebSocket, code: ErrorCode, message?: string, ref?: unknown): void {
  sendIfOpen(ws, errorFrame(code, message, ref));
}

function sendRuntimeError(ws: WebSocket, code: ErrorCode, message?: string, ref?: unknown): void {
  sendIfOpen(ws, JSON.stringify({ type: "error", code, message: message ?? ERROR_CODES[code].message, ...(ref !== undefined && { ref }) } satisfies GatewayFrame));
}
