/**
 * One Durable Object per session. It owns the session's lifecycle (see lifecycle.ts), relays SDP and ICE between
 * the client and its runtime, keeps commands and model messages until the other side has them, and keeps every
 * deadline (queue wait, connect, 30 s grace, maximum length, retention) as a stored time behind one alarm.
 *
 * Sockets are hibernatable: per-socket facts live in their attachments, everything else in SQLite storage, so
 * the object can be evicted at any moment and pick up exactly where it was. The one exception is on purpose:
 * model messages sent to a connected client are kept only in memory (see message-log.ts), because the runtime
 * keeps each of them until this object acknowledges it, which it does only once the message is safe.
 *
 * This class keeps the lifecycle and the relay policy; its collaborators each have a file (docs/sessions.md lists
 * them): socket-links.ts, client-link.ts, client-token.ts, runtime-link.ts, settlement.ts, uploads.ts, waiters.ts,
 * views.ts, record.ts. It is still over 500 lines because the RPC surface (every method the Worker calls must be on
 * the class), the collaborators' wiring in the constructor and the REST signaling methods are here; the REST
 * signaling (offers, connections, answers, candidates) and the alarm's dispatch are the next to move out.
 */
import { DurableObject } from "cloudflare:workers";
import type { ErrorCode } from "../../protocol/errors.ts";
import { meterIdleMs, sessionSettings, type SessionSettings } from "../../src/config.ts";
import { ApiError } from "../../src/errors.ts";
import { accountLimits, modelPool, type SlotRequest } from "../../src/objects.ts";
import { priceTable, usdPerSecond } from "../../src/metering/prices.ts";
import { LIMITS, type CommandState, type IceCandidate, type SessionState } from "../../protocol/common.ts";
import type { SessionResponse } from "../../protocol/sessions.ts";
import { KEEPALIVE_PING, KEEPALIVE_PONG } from "../../protocol/signaling.ts";
import { Clock } from "../clock.ts";
import { closeReason, completeClose } from "../sockets.ts";
import type { Assignment } from "../pool/model-pool.ts";
import { ClientLink } from "./client-link.ts";
import { ClientToken } from "./client-token.ts";
import { CommandLog } from "./command-log.ts";
import { EventLog, type SessionEvent } from "./event-log.ts";
import { isEnded, nextState, type LifecycleEvent } from "./lifecycle.ts";
import { MessageLog } from "./message-log.ts";
import { meterTransition, newMeter, openSegmentAt, PendingSegments } from "./meter.ts";
import { Negotiation, type Offer } from "./negotiation.ts";
import {
  fail,
  LEDGER_BATCH_MS,
  ok,
  RECORD_KEY,
  RETRY_MS,
  type CreateSessionInput,
  type NewUpload,
  type Result,
  type SessionMeterView,
  type SessionRecord,
  type SocketAttachment,
  type UploadFacts,
} from "./record.ts";
import { RuntimeLink } from "./runtime-link.ts";
import { Settlement } from "./settlement.ts";
import { SocketLinks } from "./socket-links.ts";
import { UploadLog, type UploadClaim } from "./upload-log.ts";
import { SessionUploads } from "./uploads.ts";
import { sessionView, statusFrame } from "./views.ts";
import { Waiters } from "./waiters.ts";

export type { CreateSessionInput, NewUpload, Result, SessionMeterView, UploadFacts } from "./record.ts";
export { CLOSE_NO_HELLO, RUNTIME_HELLO_MS } from "./record.ts";

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
  readonly #links: SocketLinks;
  readonly #settlement: Settlement;
  readonly #uploadRpc: SessionUploads;
  readonly #runtime: RuntimeLink;
  readonly #token: ClientToken;
  readonly #client: ClientLink;
  /** Long-polling requests waiting for the session to change (in memory on purpose: see waiters.ts). */
  readonly #waiters = new Waiters();
  /** The record's `messageSeq` as last written: `message_ack` never says more than what is stored. */
  #writtenMessageSeq: number;
  /** The record as this instance last wrote it (JSON). */
  #writtenRecord: string | undefined;
  /**
   * The pool's answer to this session's `enqueue`, while it is awaited (in memory on purpose: it lives exactly as
   * long as that call; an object never hibernates with a call in flight).
   */
  #enqueueing: Promise<void> | undefined;
  /** The alarm this instance last set (earliest deadline @ test-clock offset); undefined once it has fired. */
  #alarmSet: string | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#settings = sessionSettings(env);
    this.#clock = new Clock(ctx.storage, env);
    this.#links = new SocketLinks(ctx, () => this.#session!);
    // The collaborators below get what they use of this object. `env` is read at each use, not copied: the fault
    // tests swap an instance's bindings.
    const relay = this;
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
    this.#idleSpanMs = meterIdleMs(env);
    this.#negotiation = new Negotiation(ctx.storage);
    this.#runtime = new RuntimeLink({
      get env() {
        return relay.env;
      },
      record: () => this.#session,
      now: () => this.#clock.now(),
      events: this.#events,
      commands: this.#commands,
      messages: this.#messages,
      negotiation: this.#negotiation,
      links: this.#links,
      end: (event, reason, at) => this.#end(event, reason, at),
      reconcileLinks: () => this.#reconcileLinks(),
      commandStatus: (seq, state, error) => this.#commandStatus(seq, state, error),
      resendToRuntime: () => this.#resendToRuntime(),
      wake: () => this.#waiters.wake(),
      scheduleAlarm: () => this.#scheduleAlarm(),
      save: () => this.#save(),
      keepNothing: () => this.#keepNothing(),
    });
    this.#token = new ClientToken({
      get env() {
        return relay.env;
      },
      record: () => this.#session,
      now: () => this.#clock.now(),
      events: this.#events,
      scheduleAlarm: () => this.#scheduleAlarm(),
      onSocketGone: (ws, how) => this.#onSocketGone(ws, how),
    });
    this.#uploadRpc = new SessionUploads({
      uploads: this.#uploads,
      events: this.#events,
      now: () => this.#clock.now(),
      record: () => this.#session,
      keepNothing: () => this.#keepNothing(),
    });
    this.#client = new ClientLink({
      get env() {
        return relay.env;
      },
      record: () => this.#session,
      now: () => this.#clock.now(),
      events: this.#events,
      commands: this.#commands,
      messages: this.#messages,
      negotiation: this.#negotiation,
      links: this.#links,
      runtime: this.#runtime,
      token: this.#token,
      uploadRpc: this.#uploadRpc,
      idleSpanMs: this.#idleSpanMs,
      writtenMessageSeq: () => this.#writtenMessageSeq,
      deliverable: () => this.#deliverable(),
      startGeneration: (generation, sdp, trackMapping, trickle) => this.#startGeneration(generation, sdp, trackMapping, trickle),
      relayClientCandidate: (generation, candidate) => this.#relayClientCandidate(generation, candidate),
      commandStatus: (seq, state, error) => this.#commandStatus(seq, state, error),
      end: (event, reason, at) => this.#end(event, reason, at),
      reconcileLinks: () => this.#reconcileLinks(),
      sendStatus: () => this.#sendStatus(),
      scheduleAlarm: () => this.#scheduleAlarm(),
      save: () => this.#save(),
      keepNothing: () => this.#keepNothing(),
    });
    this.#settlement = new Settlement({
      get env() {
        return relay.env;
      },
      record: () => this.#session!,
      now: () => this.#clock.now(),
      uploads: this.#uploads,
      events: this.#events,
      pendingSegments: this.#pendingSegments,
      scheduleAlarm: () => this.#scheduleAlarm(),
      save: () => this.#save(),
    });
    // Keep-alive pings cost nothing: answered by the runtime without waking (or un-hibernating) this object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(KEEPALIVE_PING, KEEPALIVE_PONG));
  }

  // ── REST (RPC from the Worker's routes) ─────────────────────────────────────────────────────────────────────

  async create(input: CreateSessionInput): Promise<Result<SessionResponse>> {
    if (this.#session) return fail("SESSION_STATE_CONFLICT", "A session with that id already exists.");
    // The account's slot first: a refused creation leaves nothing behind (not even this object's tables).
    const { sessionId, accountId, model, tokenId, token } = input;
    const creation = { tokenId, tokenExpiresAt: token.expiresAt, maxSessions: token.maxSessions };
    const maxDurationMs = await this.#takeAccountSlot({ sessionId, accountId, model, epoch: 0, creation }, input.tokenMaxDurationMs);
    if (!maxDurationMs.ok) {
      if (!this.#session) this.#keepNothing();
      return maxDurationMs;
    }
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
      maxDurationMs: maxDurationMs.value,
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
    await this.#waiters.until(() => this.#session!.runtime !== null || isEnded(this.#session!.state), waitMs);
    return ok(this.#view());
  }

  async restart(accountId: string): Promise<Result<SessionResponse>> {
    const owned = this.#owned(accountId);
    if (!owned.ok) return owned;
    const session = this.#session!;
    if (session.state !== "INACTIVE") return ok(this.#view()); // already running or waiting: nothing to restart
    // A GPU release of the previous run still unconfirmed goes first: done later, it would free the new run's place.
    if (session.deadlines.release !== undefined) await this.#settlement.releasePoolSlot();
    if (session.deadlines.release !== undefined) return fail("INTERNAL", "The previous GPU is not released yet; try again.", 1);
    // A restarted session takes an account slot again (it counts as concurrent, not as a new creation).
    const epoch = (session.slotEpoch ?? 0) + 1;
    const request = { accountId: session.accountId, sessionId: session.id, model: session.model, epoch };
    const maxDurationMs = await this.#takeAccountSlot(request, session.tokenMaxDurationMs);
    if (!maxDurationMs.ok) return maxDurationMs;
    if (session.state !== "INACTIVE") {
      // Changed while the slot was taken: restarted by a concurrent request (which holds this same slot), or
      // closed (its release named the earlier epoch, so this one is freed here).
      if (isEnded(session.state)) await this.#settlement.releaseAccountSlot(epoch);
      return ok(this.#view());
    }
    session.slotEpoch = epoch;
    session.maxDurationMs = maxDurationMs.value;
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

  /**
   * Takes the account's session slot for run `request.epoch` of this session (0: its creation, which also counts
   * toward the creation rates and the token's cap). Allowed, it gives the run's maximum length (ms): the account's,
   * or the creating token's if shorter.
   */
  async #takeAccountSlot(request: SlotRequest, tokenMaxDurationMs: number | undefined): Promise<Result<number>> {
    const decision = await accountLimits(this.env, request.accountId).acquire(request);
    if (!decision.ok) return fail(decision.error.code, decision.error.message, decision.error.retryAfter);
    return ok(Math.min(decision.value.maxSessionSeconds * 1000, tokenMaxDurationMs ?? Infinity));
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
    await this.#waiters.until(settled, waitMs);
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

  // ── Uploads (uploads.ts) ────────────────────────────────────────────────────────────────────────────────────

  async createUpload(accountId: string, upload: NewUpload): Promise<Result<UploadFacts>> {
    const live = this.#ownedAndLive(accountId);
    if (!live.ok) return live;
    return this.#uploadRpc.create(upload);
  }

  async claimUpload(claim: UploadClaim): Promise<Result<UploadFacts>> {
    return this.#uploadRpc.claim(claim);
  }

  async completeUpload(uploadId: string, attempt: string): Promise<Result<true>> {
    return this.#uploadRpc.complete(uploadId, attempt);
  }

  async releaseUpload(uploadId: string, attempt: string): Promise<void> {
    this.#uploadRpc.release(uploadId, attempt);
  }

  async uploadForRuntime(runtimeId: string, uploadId: string): Promise<Result<UploadFacts>> {
    return this.#uploadRpc.forRuntime(runtimeId, uploadId);
  }

  // ── From the model's pool ───────────────────────────────────────────────────────────────────────────────────

  /** The pool gives this session a GPU. Returns false if the session no longer wants one (the pool frees it). */
  async assign(assignment: Assignment): Promise<boolean> {
    const session = this.#session;
    if (session?.state !== "WAITING" || session.runtime !== null) return false;
    session.runtime = assignment;
    session.queuePosition = null;
    session.deadlines.wait = this.#clock.now() + this.#settings.connectMs;
    this.#transition("assign", "assigned");
    this.#events.record(this.#clock.now(), "assigned", { runtime_id: assignment.runtimeId, model_version: assignment.modelVersion });
    void this.#client.pushIceServers();
    this.#save();
    return true;
  }

  /**
   * The pool tells a waiting session its place, and how many runtimes are connected: with none, its reason says it
   * waits for a runtime (`no_runtime_connected`), not for a free slot (`queued`).
   */
  async queuePosition(position: number, runtimes?: number): Promise<void> {
    const session = this.#session;
    if (session?.state !== "WAITING" || session.runtime !== null) return;
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
    if (url.pathname.endsWith("/runtime")) {
      await this.#enqueueing;
      return this.#runtime.accept(url.searchParams.get("runtime_id") ?? "");
    }
    const tokenExpiresAt = Number(request.headers.get("X-Token-Expires-At")) || undefined;
    // Issued before the socket is adopted, so the client gets its ICE servers in order, right after its status.
    const iceServers = this.#session?.runtime ? await this.#client.issueIceServers(tokenExpiresAt) : undefined;
    const held = request.headers.get("X-Held-Generation");
    return this.#client.accept(
      request.headers.get("X-Account-Id") ?? "",
      request.headers.get("Sec-WebSocket-Protocol"),
      tokenExpiresAt,
      iceServers,
      held === null ? undefined : Number(held),
    );
  }

  override async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    const attachment = ws.deserializeAttachment() as SocketAttachment | null;
    if (!attachment || !this.#session) return;
    if (attachment.role === "client") await this.#client.onFrame(ws, raw);
    else await this.#runtime.onFrame(ws, raw);
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
    if (due(deadlines.ledger) || due(deadlines.purge)) await this.#settlement.flushLedger();
    if (due(deadlines.uploads) || due(deadlines.purge)) await this.#settlement.deleteUploads();
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
      if (!this.#links.runtimeUp()) await this.#end("runtime_lost", "runtime_lost", deadlines.grace);
      else await this.#end("grace_expired", "client_reconnect_timeout", deadlines.grace);
    } else if (due(deadlines.wait)) {
      if (session.runtime) await this.#end("wait_expired", "client_never_connected");
      else await this.#end("wait_expired", (await this.#settlement.releasePoolSlot()) === 0 ? "no_runtime" : "no_capacity");
    }
    if (due(deadlines.tokenExpiry)) {
      deadlines.tokenExpiry = undefined; // set again below if the socket's token was renewed meanwhile
      const client = this.#links.socket("client");
      if (client && !(await this.#token.closeIfExpired(client))) {
        deadlines.tokenExpiry = (client.deserializeAttachment() as SocketAttachment).tokenDeadline;
      }
    }
    if (due(deadlines.hello)) {
      deadlines.hello = undefined;
      if (!isEnded(session.state)) this.#runtime.closeSilent();
    }
    if (due(deadlines.release)) await this.#settlement.releasePoolSlot();
    if (due(deadlines.accountRelease)) await this.#settlement.releaseAccountSlot();
    if (due(deadlines.iceRefresh)) {
      deadlines.iceRefresh = undefined; // set again by the push, if a client is there to get one
      if (!isEnded(session.state)) await this.#client.pushIceServers();
    }
    // An alarm that found nothing due (early, or repeated) must not lose the deadlines still ahead.
    this.#scheduleAlarm();
    this.#save();
  }

  #commandStatus(seq: number, state: CommandState, error?: ErrorCode): void {
    this.#links.toClient({ type: "command_status", seq, state, ...(error && { error }) });
  }

  /**
   * The client's socket closed: the messages it was sent and has not acknowledged, kept only in memory until now,
   * are stored so they are delivered when it returns. If this object woke up since they were sent, it no longer
   * has them: the runtime does, and is asked to resend them (stored as they come, the client being away).
   */
  #clientLeft(sentFromMemory: boolean): void {
    const session = this.#session!;
    if (this.#messages.storeUnacked()) session.messageSeq = this.#messages.last;
    else if (sentFromMemory && !this.#messages.complete) this.#runtime.requestResend();
  }

  // ── Links, grace and the lifecycle ──────────────────────────────────────────────────────────────────────────

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
    return session.peerConnected && (session.clientKind !== "native" || this.#links.socket("client") !== undefined);
  }

  /**
   * Moves the lifecycle along after a link changed: ready when both sides are up, grace when one drops, resume
   * when both are back. Also keeps the runtime-drop grace of a session that is assigned but not yet ready.
   */
  #reconcileLinks(): void {
    const session = this.#session!;
    const runtimeUp = this.#links.runtimeUp();
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
    return this.#session!.state === "ACTIVE" && this.#links.runtimeUp();
  }

  /** After a runtime (re)connects: everything it has not acknowledged, and the waiting commands if ready. */
  #resendToRuntime(): void {
    const deliverable = this.#deliverable();
    const waiting = new Set(deliverable ? this.#commands.waitingSeqs() : []);
    for (const { seq, command } of this.#commands.takeUnacknowledged(deliverable)) {
      this.#links.toRuntime({ type: "command", seq, command });
      if (waiting.has(seq)) this.#commandStatus(seq, "delivered");
    }
  }

  /** The session became ready: commands buffered meanwhile go out, in order. */
  #flushWaitingCommands(): void {
    for (const { seq, command } of this.#commands.flushWaiting()) {
      this.#links.toRuntime({ type: "command", seq, command });
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
    this.#waiters.wake();
    this.#scheduleAlarm();
    return true;
  }

  async #queue(): Promise<void> {
    const session = this.#session!;
    session.deadlines.wait = this.#clock.now() + this.#settings.queueWaitMs;
    this.#transition("queue", "queued");
    this.#save();
    // A slot free now comes in the answer; later ones come by the pool calling `assign`. A runtime told of this
    // slot may connect before the answer is here: its socket waits for it (see fetch).
    const enqueued = (async () => await this.#pool().enqueue(session.id))();
    this.#enqueueing = enqueued.then(
      () => undefined,
      () => undefined,
    );
    try {
      const { position, runtimes, assignment } = await enqueued;
      if (assignment) await this.assign(assignment);
      if (position !== null) {
        this.#events.record(this.#clock.now(), "queued", { position, runtimes });
        await this.queuePosition(position, runtimes);
      }
    } finally {
      this.#enqueueing = undefined;
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
    this.#links.toRuntime({ type: "end", reason });
    this.#links.socket("runtime")?.close(1000, "session ended");
    this.#links.socket("client")?.close(1000, closeReason(reason));
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
    await Promise.all([
      this.#settlement.releasePoolSlot(),
      this.#settlement.releaseAccountSlot(),
      this.#settlement.flushLedger(),
      this.#settlement.deleteUploads(),
    ]);
  }

  /** Opens and closes billing segments as the session enters and leaves billed states (see meter.ts). */
  #meterTransition(from: SessionState, to: SessionState, at: number): void {
    const session = this.#session!;
    const options = { idleSpanMs: this.#idleSpanMs, seesCommands: session.clientKind === "native" };
    session.meter ??= newMeter();
    const closed = meterTransition(session.meter, from, to, at, options);
    if (!closed) return;
    // Stored with the transition (same write); the alarm takes the batch to the D1 ledger, and again until it is there.
    this.#pendingSegments.add(closed);
    session.deadlines.ledger ??= this.#clock.now() + LEDGER_BATCH_MS;
  }

  #startGeneration(generation: number, sdp: string, trackMapping?: unknown, trickle = false): void {
    const session = this.#session!;
    const isReconnect = session.generation > 0;
    this.#resetGeneration(generation, { sdp, trackMapping, ...(trickle && { trickle }) });
    this.#events.record(this.#clock.now(), "offer", { generation, reconnect: isReconnect });
    this.#links.toRuntime({ type: "offer", generation, sdp, track_mapping: trackMapping, ...(trickle && { trickle: true }) });
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
    this.#links.toRuntime({ type: "ice", generation, candidate });
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
    return sessionView(this.#session!);
  }

  #sendStatus(): void {
    this.#links.toClient(statusFrame(this.#session!));
  }

  #pool() {
    return modelPool(this.env, this.#session!.model);
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
    if (session.messageSeq > this.#runtime.runtimeAcked && this.#links.runtimeUp()) {
      this.#runtime.runtimeAcked = session.messageSeq;
      const runSeq = session.messageSeq - (session.messageBase ?? 0);
      if (runSeq > 0) this.#links.toRuntime({ type: "message_ack", seq: runSeq });
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
}

// ── Small helpers ──────────────────────────────────────────────────────────────────────────────────────────────

const connectionId = (generation: number) => `conn_${generation}`;

function parseConnectionId(id: string): number | undefined {
  const match = /^conn_(\d{1,7})$/.exec(id);
  return match ? Number(match[1]) : undefined;
}
