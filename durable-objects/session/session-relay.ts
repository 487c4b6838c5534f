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
 * This class keeps the lifecycle (links → states, grace, the end), the record write and the RPC surface (every
 * method the Worker calls must be on the class). Its collaborators each have a file (docs/sessions.md lists them)
 * and share one host (host.ts): socket-links.ts, client-link.ts, client-token.ts, runtime-link.ts, signaling.ts,
 * delivery.ts, placement.ts, settlement.ts, uploads.ts, alarm.ts, waiters.ts, views.ts, record.ts. It is a little
 * over 500 lines because that RPC surface (about 30 thin methods) and the host's wiring are here by necessity.
 */
import { DurableObject } from "cloudflare:workers";
import type { IceCandidate, SessionState } from "../../protocol/common.ts";
import type { SessionResponse } from "../../protocol/sessions.ts";
import { KEEPALIVE_PING, KEEPALIVE_PONG } from "../../protocol/signaling.ts";
import { meterIdleMs, sessionSettings, type SessionSettings } from "../../src/config.ts";
import { ApiError } from "../../src/errors.ts";
import { priceTable, usdPerSecond } from "../../src/metering/prices.ts";
import { Clock } from "../clock.ts";
import type { Assignment } from "../pool/model-pool.ts";
import { closeReason, completeClose } from "../sockets.ts";
import { Alarm, type AlarmHost } from "./alarm.ts";
import { ClientLink, type ClientLinkHost } from "./client-link.ts";
import { ClientToken, type ClientTokenHost } from "./client-token.ts";
import { Delivery, type DeliveryHost } from "./delivery.ts";
import type { EventLog, SessionEvent } from "./event-log.ts";
import { openTables } from "./host.ts";
import { isEnded, nextState, type LifecycleEvent } from "./lifecycle.ts";
import type { MessageLog } from "./message-log.ts";
import { meterTransition, newMeter, openSegmentAt, type PendingSegments } from "./meter.ts";
import type { Negotiation } from "./negotiation.ts";
import { Placement, type PlacementHost } from "./placement.ts";
import { fail, LEDGER_BATCH_MS, newRecord, ok, RECORD_KEY, type SessionRecord, type SocketAttachment } from "./record.ts";
import type { CreateSessionInput, NewUpload, Result, SessionMeterView, UploadFacts } from "./record.ts";
import { RuntimeLink, type RuntimeLinkHost } from "./runtime-link.ts";
import { Settlement, type SettlementHost } from "./settlement.ts";
import { Signaling, type SignalingHost } from "./signaling.ts";
import { SocketLinks } from "./socket-links.ts";
import type { UploadClaim } from "./upload-log.ts";
import { SessionUploads, type UploadsHost } from "./uploads.ts";
import { sessionView, statusFrame } from "./views.ts";
import { Waiters } from "./waiters.ts";

export { CLOSE_NO_HELLO, RUNTIME_HELLO_MS } from "./record.ts";

/** The one host every collaborator gets (each names the part it uses). */
type Host = DeliveryHost &
  ClientLinkHost &
  RuntimeLinkHost &
  ClientTokenHost &
  SignalingHost &
  PlacementHost &
  SettlementHost &
  UploadsHost &
  AlarmHost;

export class SessionRelay extends DurableObject<Env> {
  readonly #settings: SessionSettings;
  readonly #clock: Clock;
  readonly #messages: MessageLog;
  readonly #events: EventLog;
  readonly #pendingSegments: PendingSegments;
  readonly #idleSpanMs: number;
  #session: SessionRecord | undefined;
  readonly #negotiation: Negotiation;
  readonly #links: SocketLinks;
  readonly #runtime: RuntimeLink;
  readonly #token: ClientToken;
  readonly #client: ClientLink;
  readonly #signaling: Signaling;
  readonly #placement: Placement;
  readonly #settlement: Settlement;
  readonly #uploadRpc: SessionUploads;
  readonly #alarm: Alarm;
  readonly #delivery: Delivery;
  /** Long-polling requests waiting for the session to change (in memory on purpose: see waiters.ts). */
  readonly #waiters = new Waiters();
  /** The record's `messageSeq` as last written: `message_ack` never says more than what is stored. */
  #writtenMessageSeq: number;
  /** The record as this instance last wrote it (JSON). */
  #writtenRecord: string | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#settings = sessionSettings(env);
    this.#clock = new Clock(ctx.storage, env);
    this.#links = new SocketLinks(ctx, () => this.#session!);
    this.#session = ctx.storage.kv.get<SessionRecord>(RECORD_KEY);
    this.#writtenMessageSeq = this.#session?.messageSeq ?? 0;
    const tables = openTables(ctx.storage, this.#settings, this.#writtenMessageSeq);
    ({ messages: this.#messages, events: this.#events, pendingSegments: this.#pendingSegments, negotiation: this.#negotiation } = tables);
    this.#idleSpanMs = meterIdleMs(env);
    const relay = this;
    const host: Host = {
      ...tables,
      // Read at each use, not copied: the fault tests swap an instance's bindings.
      get env() {
        return relay.env;
      },
      record: () => this.#session,
      now: () => this.#clock.now(),
      settings: this.#settings,
      idleSpanMs: this.#idleSpanMs,
      links: this.#links,
      storage: ctx.storage,
      waiters: this.#waiters,
      // The collaborators reach each other through the host: built below, read when used.
      get runtime() {
        return relay.#runtime;
      },
      get token() {
        return relay.#token;
      },
      get client() {
        return relay.#client;
      },
      get signaling() {
        return relay.#signaling;
      },
      get settlement() {
        return relay.#settlement;
      },
      get uploadRpc() {
        return relay.#uploadRpc;
      },
      end: (event, reason, at) => this.#end(event, reason, at),
      transition: (event, reason) => this.#transition(event, reason),
      reconcileLinks: () => this.#reconcileLinks(),
      commandStatus: (seq, state, error) => this.#delivery.commandStatus(seq, state, error),
      resendToRuntime: () => this.#delivery.resendToRuntime(),
      deliverable: () => this.#delivery.deliverable(),
      writtenMessageSeq: () => this.#writtenMessageSeq,
      sendStatus: () => this.#sendStatus(),
      pushIceServers: () => void this.#client.pushIceServers(),
      onSocketGone: (ws, how) => this.#onSocketGone(ws, how),
      wake: () => this.#waiters.wake(),
      scheduleAlarm: () => this.#alarm.schedule(),
      save: () => this.#save(),
      keepNothing: () => this.#keepNothing(),
      purge: () => this.#purge(),
    };
    this.#runtime = new RuntimeLink(host);
    this.#token = new ClientToken(host);
    this.#client = new ClientLink(host);
    this.#signaling = new Signaling(host);
    this.#placement = new Placement(host);
    this.#settlement = new Settlement(host);
    this.#uploadRpc = new SessionUploads(host);
    this.#alarm = new Alarm(host);
    this.#delivery = new Delivery(host);
    // Keep-alive pings cost nothing: answered by the runtime without waking (or un-hibernating) this object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(KEEPALIVE_PING, KEEPALIVE_PONG));
  }

  // ── REST (RPC from the Worker's routes) ─────────────────────────────────────────────────────────────────────

  async create(input: CreateSessionInput): Promise<Result<SessionResponse>> {
    if (this.#session) return fail("SESSION_STATE_CONFLICT", "A session with that id already exists.");
    // The account's slot first: a refused creation leaves nothing behind (not even this object's tables).
    const { sessionId, accountId, model, tokenId, token } = input;
    const creation = { tokenId, tokenExpiresAt: token.expiresAt, maxSessions: token.maxSessions };
    const maxDurationMs = await this.#placement.takeAccountSlot({ sessionId, accountId, model, epoch: 0, creation }, input.tokenMaxDurationMs);
    if (!maxDurationMs.ok) {
      if (!this.#session) this.#keepNothing();
      return maxDurationMs;
    }
    if (this.#session) return fail("SESSION_STATE_CONFLICT", "A session with that id already exists.");
    const now = this.#clock.now();
    this.#session = newRecord(input, now, maxDurationMs.value);
    this.#events.record(now, "created", { model: input.model, api_key_id: input.apiKeyId });
    await this.#placement.enqueue();
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
    const maxDurationMs = await this.#placement.takeAccountSlot(request, session.tokenMaxDurationMs);
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
    this.#signaling.reset(session.generation);
    session.peerConnected = false;
    session.deadlines.purge = undefined; // retention belonged to the previous end
    session.runtime = null;
    session.activatedAt = null;
    session.runtimeEverConnected = false;
    session.releasePending = false;
    this.#transition("restart", "restarted");
    await this.#placement.enqueue();
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
    const { id: sessionId, model, state, meter } = this.#session!;
    const price = usdPerSecond(priceTable(this.env), model);
    const open = meter ? openSegmentAt(meter, this.#clock.now()) : null;
    const pending = this.#pendingSegments.list().map((segment) => ({ ...segment, usdPerSecond: price }));
    return ok({ sessionId, model, state, segments: [...pending, ...(open ? [{ ...open, usdPerSecond: price, open: true as const }] : [])] });
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

  // ── The REST signaling transport (signaling.ts) ─────────────────────────────────────────────────────────────

  async submitOffer(accountId: string, offer: { sdp: string; trackMapping?: unknown; connectionId?: string }) {
    const live = this.#ownedAndLive(accountId);
    return live.ok ? this.#signaling.submitOffer(offer) : live;
  }

  async createConnection(accountId: string) {
    const live = this.#ownedAndLive(accountId);
    return live.ok ? this.#signaling.createConnection() : live;
  }

  async answer(accountId: string, connection: string | undefined, waitMs: number) {
    const owned = this.#owned(accountId);
    return owned.ok ? this.#signaling.answer(connection, waitMs) : owned;
  }

  async addClientCandidates(accountId: string, connection: string, candidates: IceCandidate[], final: boolean) {
    const live = this.#ownedAndLive(accountId);
    return live.ok ? this.#signaling.addClientCandidates(connection, candidates, final) : live;
  }

  // ── Uploads (uploads.ts) ────────────────────────────────────────────────────────────────────────────────────

  async createUpload(accountId: string, upload: NewUpload): Promise<Result<UploadFacts>> {
    const live = this.#ownedAndLive(accountId);
    return live.ok ? this.#uploadRpc.create(upload) : live;
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

  // ── From the model's pool (placement.ts) ────────────────────────────────────────────────────────────────────

  async assign(assignment: Assignment): Promise<boolean> {
    return this.#placement.assign(assignment);
  }

  async queuePosition(position: number, runtimes?: number): Promise<void> {
    this.#placement.queuePosition(position, runtimes);
  }

  async runtimeLost(reason: string): Promise<void> {
    if (this.#session && !isEnded(this.#session.state)) await this.#end("runtime_lost", reason);
  }

  // ── WebSockets: the native client's signaling socket and the runtime's session socket ────────────────────────

  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") return new ApiError("WEBSOCKET_REQUIRED").toResponse();
    const url = new URL(request.url);
    if (url.pathname.endsWith("/runtime")) {
      // A runtime told of this session's slot may come before the pool's answer is applied here: it waits for it.
      await this.#placement.answered();
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

  // ── Deadlines (alarm.ts) ─────────────────────────────────────────────────────────────────────────────────────

  override async alarm(): Promise<void> {
    if (!(await this.#alarm.run())) return; // no session, or purged just now
    // An alarm that found nothing due (early, or repeated) must not lose the deadlines still ahead.
    this.#alarm.schedule();
    this.#save();
  }

  /** Retention is over and nothing is owed: the session's storage goes, and this instance forgets it. */
  async #purge(): Promise<void> {
    await this.ctx.storage.deleteAll();
    this.#writtenRecord = undefined;
    this.#session = undefined;
    this.#negotiation.forget();
    this.#messages.forget();
    this.#writtenMessageSeq = 0;
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
      if (attachment.role === "client") this.#delivery.clientLeft(attachment.sentFromMemory === true);
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
    // One instant for the deadlines and the billing segments: a grace that starts at `now` must bill exactly its 30 s.
    const now = this.#clock.now();
    if (session.state === "WAITING" && session.runtime) {
      if (bothUp) {
        session.activatedAt ??= now;
        session.deadlines.wait = undefined;
        session.deadlines.grace = undefined;
        session.deadlines.maxDuration ??= now + (session.maxDurationMs ?? this.#settings.maxDurationMs);
        this.#transition("ready", "ready", now);
        this.#delivery.flushWaiting();
      } else if (!runtimeUp && session.runtimeEverConnected) {
        session.deadlines.grace ??= now + this.#settings.graceMs;
      } else if (runtimeUp) {
        session.deadlines.grace = undefined;
      }
    } else if (session.state === "ACTIVE" && !bothUp) {
      session.deadlines.grace = now + this.#settings.graceMs;
      this.#transition("drop", runtimeUp ? "client_disconnected" : "runtime_disconnected", now);
    } else if (session.state === "RECONNECTING" && bothUp) {
      session.deadlines.grace = undefined;
      this.#transition("resume", "reconnected", now);
      this.#delivery.flushWaiting();
    }
    this.#alarm.schedule();
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
    this.#alarm.schedule();
    return true;
  }

  /**
   * Ends the session if `event` is allowed now: tells both sides why, drops what can no longer be delivered, and
   * frees its GPU slot and its account slot. `at` is when it ended for billing (a deadline, when one ended it).
   */
  async #end(event: LifecycleEvent, reason: string, at?: number): Promise<void> {
    const session = this.#session!;
    if (!this.#transition(event, reason, at)) return;
    const now = this.#clock.now();
    this.#delivery.dropAll();
    const { commands, acknowledged, dropped, replaced, messages } = session.counters;
    this.#events.record(now, "ended", { state: session.state, reason, commands, acknowledged, dropped, replaced, messages });
    // Messages the client was sent and has not acknowledged stay with the session, as if its socket had closed: an
    // INACTIVE session can be restarted, and its client then gets them before any newer one.
    this.#delivery.keepUnacked();
    this.#links.toRuntime({ type: "end", reason });
    this.#links.socket("runtime")?.close(1000, "session ended");
    this.#links.socket("client")?.close(1000, closeReason(reason));
    session.clientSocket = null;
    session.runtimeSocket = null;
    // The releases are retried by alarm until confirmed; the session's storage is kept until retention is over.
    await this.#settlement.settleEnd(now, now + this.#settings.retentionMs);
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

  // ── Plumbing ────────────────────────────────────────────────────────────────────────────────────────────────

  #owned(accountId: string): Result<true> {
    const session = this.#session;
    // Another account's session and a session that does not exist look the same from outside.
    if (!session) this.#keepNothing();
    if (!session || session.accountId !== accountId) return fail("SESSION_NOT_FOUND");
    return ok(true);
  }

  #ownedAndLive(accountId: string): Result<true> {
    const owned = this.#owned(accountId);
    if (!owned.ok) return owned;
    const { state, reason } = this.#session!;
    if (isEnded(state)) return fail("SESSION_ENDED", `The session is ${state}: ${reason}.`);
    return owned;
  }

  /**
   * No session lives here (a guessed id, or one purged): the object keeps no storage, not even the tables its
   * constructor made, so guessing ids leaves nothing behind.
   */
  #keepNothing(): void {
    void this.ctx.storage.deleteAll();
  }

  #view(): SessionResponse {
    return sessionView(this.#session!);
  }

  #sendStatus(): void {
    this.#links.toClient(statusFrame(this.#session!));
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
    this.#delivery.ackSafePoint();
  }
}
