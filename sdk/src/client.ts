/**
 * The native client: a session through the gateway's REST API, then one signaling WebSocket per connection
 * (trickle ICE, status, commands, model messages) and one peer connection per generation (media only).
 * Its phases are the transition table in connection-state.ts; the pieces it coordinates each live in their own
 * module (commands, messages, media, stats, ICE restarts, recovery policy, token source).
 *
 * Over 500 lines, and one class on purpose: what is left here is the coordination itself. Every method below reads
 * or moves the phase, and each reacts to the others (a socket close starts recovery, a welcome ends it and attaches
 * the command queue, an ended status tears everything down); split across files it would be one state machine
 * spread over several, with its private state passed around.
 */
import { COMMAND_POLICIES, type Capabilities, type SessionState } from "../../protocol/common.ts";
import { ENDED_STATES } from "../../protocol/sessions.ts";
import { CLOSE_TOKEN_EXPIRED, type ServerFrame } from "../../protocol/signaling.ts";
import { type CommandHandle, CommandQueue, fitsInFrame } from "./command-queue.ts";
import { nextPhase, statusOf, type ClientStatus, type Phase, type PhaseEvent } from "./connection-state.ts";
import { Emitter } from "./emitter.ts";
import { IceRestarts } from "./ice-restarts.ts";
import { ReactorError, SDK_ERROR_CODES, sdkError, sessionEndedError } from "./errors.ts";
import type { ClientEvents, SendCommandOptions, SessionInfo } from "./events.ts";
import { Media } from "./media.ts";
import { MessageInbox } from "./message-inbox.ts";
import { isOffline, watchNetwork } from "./network-watch.ts";
import { readToken, resolveOptions, type ClientOptions, type ResolvedOptions, type TokenSource } from "./options.ts";
import { Recovery } from "./reconnect-policy.ts";
import { SessionApi } from "./rest.ts";
import { SignalingSocket } from "./signaling-socket.ts";
import { StatsSampler, type ClientStats } from "./stats-sampler.ts";
import { describeFile, putFile, splitFileRefs, FileRef, type UploadFileOptions } from "./uploads.ts";

/** A network change restarts ICE at most this often. */
const RESTART_INTERVAL_MS = 2000;
/** disconnect() waits this long for the gateway to confirm the end on the socket, then ends it over REST. */
const CLOSE_CONFIRM_MS = 3000;
/** After a network change, how long the signaling socket has to answer a ping before it is taken for dead. */
const NETWORK_CHANGE_PROBE_MS = 1000;

export class Client {
  readonly #options: ResolvedOptions;
  readonly #api: SessionApi;
  readonly #events = new Emitter<ClientEvents>();
  readonly #stats: StatsSampler;
  #phase: Phase = "idle";
  #status: ClientStatus = "disconnected";
  #token: TokenSource | undefined;
  #sessionId: string | undefined;
  #info: SessionInfo | undefined;
  #capabilities: Capabilities | undefined;
  #wasReady = false;
  #socket: SignalingSocket | undefined;
  #socketToken = "";
  /** The current socket's welcome, until the status that follows it. */
  #welcome: { nextCommandSeq: number } | undefined;
  #commands = new CommandQueue();
  #inbox: MessageInbox;
  #media: Media;
  #lastStats: ClientStats | undefined;
  #lastError: ReactorError | undefined;
  #recovery: Recovery | undefined;
  readonly #iceRestarts = new IceRestarts({
    intervalMs: RESTART_INTERVAL_MS,
    media: () => this.#media,
    canRestart: () => this.#phase === "live" && this.#socket?.open === true,
  });
  #stopWatching: (() => void) | undefined;
  #waiters: { resolve(): void; reject(error: ReactorError): void }[] = [];
  #closeTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: ClientOptions) {
    this.#options = resolveOptions(options);
    this.#api = new SessionApi(this.#options.apiUrl, this.#options.fetch);
    this.#stats = new StatsSampler(this.#options.statsIntervalMs, (stats) => {
      this.#lastStats = stats;
      this.#events.emit("statsUpdate", stats);
    });
    this.#inbox = this.#newInbox();
    this.#media = this.#newMedia();
  }

  // ── Public API ─────────────────────────────────────────────────────────────────────────────────────────────

  on<K extends keyof ClientEvents>(event: K, listener: ClientEvents[K]): void {
    this.#events.on(event, listener);
  }

  off<K extends keyof ClientEvents>(event: K, listener: ClientEvents[K]): void {
    this.#events.off(event, listener);
  }

  /**
   * Creates a session and opens its signaling connection. Resolves once the gateway has welcomed the connection to
   * a live session (status "waiting": queued, or negotiating media); "ready" follows as a statusChanged event.
   * Rejects with the ReactorError that stopped it. `token` may be a function, called for every new connection.
   */
  async connect(token: TokenSource): Promise<void> {
    if (typeof token !== "string" && typeof token !== "function") throw new TypeError("connect(token): a JWT or a function returning one");
    if (!this.#move("connect")) throw sdkError("ALREADY_CONNECTED");
    this.#token = token;
    this.#resetSession();
    this.#media.warmUp();
    const live = this.#untilLive();
    void this.#createSession();
    return live;
  }

  /**
   * Ends the session (the default) and resolves once the gateway has confirmed it; or, with `recoverable`, only
   * drops the connection and keeps the session for reconnect() within its grace window.
   */
  async disconnect(recoverable = false): Promise<void> {
    if (recoverable) return this.#suspend();
    const from = this.#phase;
    if (!this.#move("close")) return;
    const ended = new Promise<void>((resolve) => this.#waiters.push({ resolve, reject: () => resolve() }));
    if (from !== "creating") this.#requestEnd(); // while creating, #createSession ends what it created
    return ended;
  }

  /** Reconnects to the current session (after disconnect(true), or to retry now during automatic recovery). */
  async reconnect(): Promise<void> {
    if (this.#phase === "live" || this.#phase === "opening") return this.#untilLive();
    if (this.#phase !== "suspended" && this.#phase !== "recovering") throw sdkError("NOT_CONNECTED");
    const live = this.#untilLive();
    this.#recovery ??= new Recovery();
    this.#recovery.cancel();
    void this.#attempt();
    return live;
  }

  /**
   * Sends a command to the model. It is numbered and delivered exactly once, in order, across reconnects; while
   * the session is not ready it follows `whileWaiting`. The handle's state follows the gateway's reports. FileRef
   * values of `data` (from uploadFile) go in the command's `uploads` section; the gateway checks each of them.
   */
  sendCommand(type: string, data?: unknown, options: SendCommandOptions = {}): CommandHandle {
    const policy = options.whileWaiting ?? "buffer";
    if (typeof type !== "string" || type.length === 0 || type.length > 128) throw new TypeError("sendCommand: type must be 1 to 128 characters");
    if (!COMMAND_POLICIES.includes(policy)) throw new TypeError(`sendCommand: whileWaiting must be one of ${COMMAND_POLICIES.join(", ")}`);
    if (this.#phase === "idle" || this.#phase === "closing") return this.#commands.refuse(type, policy, "NOT_CONNECTED");
    const split = splitFileRefs(data);
    if (!fitsInFrame(split)) return this.#commands.refuse(type, policy, "FRAME_TOO_LARGE");
    return this.#commands.submit(type, split.data, policy, split.uploads);
  }

  /**
   * Closes the signaling socket and the peer connection abruptly, as a network loss would: automatic recovery
   * takes over (new socket within the grace window, new peer connection, pending commands resent).
   */
  dropConnection(): void {
    if (this.#phase !== "live" && this.#phase !== "opening") return;
    this.#media.closeAll();
    this.#socket?.close(3000, "connection dropped");
    this.#onSocketClosed({ code: 1006, reason: "connection dropped", welcomed: true });
  }

  /** Starts a new peer connection generation on the same session (what a network change triggers). */
  restartIce(): void {
    this.#iceRestarts.request();
  }

  /**
   * Uploads a file to the session (docs/uploads.md) and returns its FileRef, to pass as a command parameter:
   * `sendCommand("set_image", { image: ref })`. Works once the session exists (waiting or ready). Rejects with the
   * gateway's code (UPLOAD_TOO_LARGE, UPLOAD_TYPE_NOT_ALLOWED…) or NETWORK_ERROR; `onProgress` reports the bytes sent.
   */
  async uploadFile(file: Blob, options: UploadFileOptions = {}): Promise<FileRef> {
    const { name, mimeType, size } = describeFile(file, options);
    const sessionId = this.#sessionId;
    if (!sessionId || this.#phase === "closing") throw sdkError("NOT_CONNECTED");
    const slot = await this.#api.createUpload(await this.#nextToken(), sessionId, { name, size, mime_type: mimeType });
    await putFile(slot, file, mimeType, { fetch: this.#options.fetch, onProgress: options.onProgress });
    return new FileRef(slot.presigned_id, name, mimeType, size);
  }

  getStatus(): ClientStatus {
    return this.#status;
  }

  getSessionId(): string | undefined {
    return this.#sessionId;
  }

  getSessionInfo(): SessionInfo | undefined {
    return this.#info;
  }

  getCapabilities(): Capabilities | undefined {
    return this.#capabilities;
  }

  getStats(): ClientStats | undefined {
    return this.#lastStats;
  }

  getLastError(): ReactorError | undefined {
    return this.#lastError;
  }

  // ── Session creation and end ───────────────────────────────────────────────────────────────────────────────

  async #createSession(): Promise<void> {
    try {
      const jwt = await this.#nextToken();
      const session = await this.#api.createSession(jwt, this.#options.modelName);
      if (this.#phase !== "creating") {
        // disconnect() came first: end what was just created.
        await this.#api.endSession(jwt, session.session_id, "client_closed").catch(() => undefined);
        return this.#finishEnded();
      }
      this.#setSessionId(session.session_id);
      this.#move("created");
      this.#openSocket(jwt);
    } catch (error) {
      this.#fail(asReactorError(error));
    }
  }

  /** Asks the gateway to end the session: on the socket if there is one (confirmed by the final status), else REST. */
  #requestEnd(): void {
    if (this.#socket?.welcomed && this.#socket.send({ type: "close", reason: "client_closed" })) {
      this.#closeTimer = setTimeout(() => void this.#endByRest(), CLOSE_CONFIRM_MS);
    } else {
      void this.#endByRest();
    }
  }

  async #endByRest(): Promise<void> {
    const sessionId = this.#sessionId;
    try {
      if (sessionId) await this.#api.endSession(await this.#nextToken(), sessionId, "client_closed");
    } catch (error) {
      this.#emitError(asReactorError(error));
    }
    this.#finishEnded();
  }

  /** The session is over (ended by us or by the gateway): everything stops, pending commands are dropped. */
  #finishEnded(): void {
    this.#teardown();
    this.#commands.dropAll("SESSION_ENDED");
    this.#move("ended");
    this.#setSessionId(undefined);
  }

  /** A failure that ends this client's use of the session. */
  #fail(error: ReactorError): void {
    this.#lastError = error;
    this.#emitError(error);
    const sessionId = this.#sessionId;
    this.#teardown();
    this.#commands.dropAll(error.code);
    this.#move("failed");
    this.#setSessionId(undefined);
    // Gave up on a session that may still be queued or in its grace window: do not leave it holding a place.
    if (sessionId && error.code !== "SESSION_REPLACED")
      void this.#nextToken()
        .then((jwt) => this.#api.endSession(jwt, sessionId, "client_gave_up"))
        .catch(() => undefined);
  }

  #suspend(): void {
    if (!this.#move("suspend")) return;
    this.#dropLinks();
    // The grace window runs from the drop: now, or earlier if the connection was already lost.
    this.#recovery = new Recovery(this.#recovery?.since);
  }

  // ── Signaling socket ───────────────────────────────────────────────────────────────────────────────────────

  #openSocket(jwt: string): void {
    this.#welcome = undefined;
    // `generation`: the peer connection this client still holds (0: none), so that the gateway does not count the
    // runtime's view of another one as "the peer connection is up" (ACTIVE) while this client negotiates a new one.
    const base = `${this.#options.apiUrl.replace(/^http/, "ws")}/v1/sessions/${encodeURIComponent(this.#sessionId!)}/signal`;
    const url = `${base}?generation=${this.#media.heldGeneration}`;
    this.#socketToken = jwt;
    const socket: SignalingSocket = new SignalingSocket({
      url,
      token: jwt,
      WebSocket: this.#options.WebSocket,
      keepAliveMs: this.#options.keepAliveMs,
      // A token function renews the socket's token in place before it expires (else the gateway closes it, 4001).
      ...(typeof this.#token === "function" && { renewToken: () => this.#nextToken() }),
      handlers: {
        frame: (frame) => socket === this.#socket && this.#onFrame(frame),
        invalid: (error) => socket === this.#socket && this.#emitError(error),
        closed: (info) => socket === this.#socket && this.#onSocketClosed(info),
      },
    });
    this.#socket = socket;
  }

  #onFrame(frame: ServerFrame): void {
    if (this.#phase === "closing" && frame.type !== "status") return;
    switch (frame.type) {
      case "welcome":
        return this.#onWelcome(frame.session_id, frame.next_command_seq);
      case "status":
        return this.#onStatus(frame);
      case "ice_servers":
        return this.#media.setIceServers(frame.ice_servers);
      case "answer":
        return this.#media.onAnswer(frame.generation, frame.sdp);
      case "ice":
        return this.#media.onRemoteCandidate(frame.generation, frame.candidate);
      case "command_status":
        return this.#commands.onStatus(frame.seq, frame.state, frame.error);
      case "message":
        if (this.#inbox.receive(frame.seq, frame.scope, frame.data) === "gap") this.#reopenSocket();
        return;
      case "error":
        return this.#onGatewayError(frame);
      case "pong":
        return;
    }
  }

  /** The welcome is always followed by a status: the connection is live once that status says the session is. */
  #onWelcome(sessionId: string, nextCommandSeq: number): void {
    if (sessionId !== this.#sessionId) {
      return this.#emitError(
        sdkError("INVALID_RESPONSE", { component: "api", message: `Welcomed to session ${sessionId}, expected ${this.#sessionId}.` }),
      );
    }
    this.#welcome = { nextCommandSeq };
  }

  #onStatus(frame: Extract<ServerFrame, { type: "status" }>): void {
    const previous = this.#info?.state;
    this.#info = {
      state: frame.state,
      ...(frame.reason !== undefined && { reason: frame.reason }),
      ...(frame.queue_position !== undefined && { queuePosition: frame.queue_position }),
      ...(frame.deadline !== undefined && { graceDeadline: frame.deadline }),
    };
    this.#events.emit("sessionInfo", this.#info);
    if (ENDED_STATES.includes(frame.state)) return this.#onSessionEnded(frame.state, frame.reason);
    const wasLive = this.#phase === "live";
    if (this.#welcome) this.#goLive(this.#welcome.nextCommandSeq);
    // The session says our media is down while our own link looks connected: the GPU's side of the path is gone
    // (e.g. our NAT gave us a new port while the link was quiet, and the runtime still sends to the old one, where
    // nothing listens). Only a new generation mends that; our ICE, which still gets answers, never will.
    // Only on the move from ACTIVE, seen live: a RECONNECTING that greets a new socket is the gateway catching up.
    const mediaLost = previous === "ACTIVE" && frame.state === "RECONNECTING" && frame.reason === "client_disconnected";
    if (wasLive && mediaLost && this.#media.connected) this.#iceRestarts.request();
    if (frame.capabilities) {
      this.#capabilities = frame.capabilities;
      this.#media.setTracks(frame.capabilities.tracks);
    }
    this.#updateStatus();
  }

  #goLive(nextCommandSeq: number): void {
    this.#welcome = undefined;
    if (!this.#move("welcomed")) return;
    this.#recovery?.cancel();
    this.#recovery = undefined;
    this.#media.onWelcome();
    this.#commands.attach((frame) => this.#socket?.send(frame) ?? false, nextCommandSeq);
    this.#inbox.resetAcknowledged();
    this.#stopWatching ??= watchNetwork(() => this.#onNetworkChange());
  }

  /**
   * Back online, or on another network. A socket waiting out its backoff reconnects now: the wait was for the
   * network, which is back. A live socket must answer a ping at once or is replaced (its TCP connection may have
   * gone with the old address); a live connection renews its peer connection only if the path is gone
   * (ice-restarts.ts).
   */
  #onNetworkChange(): void {
    if (isOffline()) return; // a change to no network at all: the `online` that follows is the one to act on
    if (this.#phase === "recovering") {
      this.#recovery?.cancel();
      void this.#attempt();
      return;
    }
    if (this.#phase !== "live") return;
    this.#socket?.probe(NETWORK_CHANGE_PROBE_MS);
    this.#iceRestarts.checkPath();
  }

  #onSessionEnded(state: SessionState, reason: string | undefined): void {
    clearTimeout(this.#closeTimer);
    if (this.#phase !== "closing") {
      this.#lastError = sessionEndedError(state, reason);
      this.#emitError(this.#lastError);
    }
    this.#finishEnded();
  }

  #onGatewayError(frame: Extract<ServerFrame, { type: "error" }>): void {
    const ref = (frame.ref ?? {}) as { seq?: unknown; expected?: unknown; generation?: unknown };
    switch (frame.code) {
      case "COMMAND_SEQ_GAP":
        if (typeof ref.expected === "number") this.#commands.resendFrom(ref.expected);
        return;
      case "COMMAND_REPLAYED": // a resend overlapped what the gateway had: nothing lost
      case "SESSION_ENDED": // the final status says why
        return;
      case "STALE_GENERATION":
        if (typeof ref.generation === "number") this.#media.onStaleGeneration(ref.generation);
        return;
    }
    this.#emitError(
      new ReactorError({
        code: frame.code,
        message: frame.message,
        recoverable: frame.recoverable,
        retryAfter: frame.retry_after,
        component: "api",
        ref: frame.ref,
      }),
    );
  }

  #onSocketClosed(info: { code: number; reason: string; welcomed: boolean }): void {
    this.#socket = undefined;
    this.#commands.detach();
    if (this.#phase === "closing") {
      clearTimeout(this.#closeTimer);
      return void this.#endByRest(); // closed before the gateway confirmed the end
    }
    if (info.code === 4000) return this.#fail(sdkError("SESSION_REPLACED", { component: "api" }));
    // The token expired on the open socket. A token function gives a fresh one (the reconnect below asks it); a
    // fixed token cannot open another socket.
    if (info.code === CLOSE_TOKEN_EXPIRED && typeof this.#token !== "function") {
      return this.#fail(
        new ReactorError({
          code: "TOKEN_EXPIRED",
          message: "The token expired; pass connect() a token function to renew it.",
          recoverable: false,
          component: "api",
        }),
      );
    }
    if (!this.#move("socketLost")) return;
    this.#recovery ??= new Recovery();
    if (this.#recovery.attempt === 0) {
      this.#emitError(
        sdkError("DISCONNECTED", { recoverable: true, component: "api", message: `${SDK_ERROR_CODES.DISCONNECTED} (${info.code} ${info.reason})` }),
      );
    }
    if (info.welcomed) this.#scheduleAttempt();
    else void this.#probeThenRetry();
  }

  /** A message gap: reconnecting makes the gateway send everything after our acknowledgement again, in order. */
  #reopenSocket(): void {
    this.#socket?.close(1000, "message gap");
    this.#onSocketClosed({ code: 1000, reason: "message gap", welcomed: true });
  }

  // ── Recovery ───────────────────────────────────────────────────────────────────────────────────────────────

  #scheduleAttempt(): void {
    const recovery = this.#recovery!;
    const deadline = this.#info?.graceDeadline ?? recovery.since + this.#options.graceMs;
    if (!recovery.schedule(this.#options.reconnectPolicy, deadline, () => void this.#attempt())) {
      this.#fail(sdkError("RECONNECT_TIMEOUT", { component: "api" }));
    }
  }

  async #attempt(): Promise<void> {
    if (!this.#move(this.#phase === "suspended" ? "reconnect" : "retry")) return;
    this.#media.warmUp();
    let jwt: string;
    try {
      jwt = await this.#nextToken();
    } catch (error) {
      this.#emitError(asReactorError(error));
      if (this.#move("socketLost")) this.#scheduleAttempt();
      return;
    }
    if (this.#phase === "opening") this.#openSocket(jwt);
  }

  /**
   * The socket closed before its welcome. A browser does not say why an upgrade failed, so ask over REST: a
   * refused token or a session that is gone ends recovery with the precise code; anything else is retried.
   */
  async #probeThenRetry(): Promise<void> {
    try {
      const info = await this.#api.sessionInfo(this.#socketToken, this.#sessionId!);
      if (this.#phase !== "recovering") return;
      if (ENDED_STATES.includes(info.state)) return this.#onSessionEnded(info.state, undefined);
    } catch (error) {
      if (this.#phase !== "recovering") return;
      const reactorError = asReactorError(error);
      if (!reactorError.recoverable) return this.#fail(reactorError);
    }
    this.#scheduleAttempt();
  }

  // ── Plumbing ───────────────────────────────────────────────────────────────────────────────────────────────

  #move(event: PhaseEvent): boolean {
    const to = nextPhase(this.#phase, event);
    if (to === undefined) return false;
    this.#phase = to;
    if (to === "live" || to === "idle" || to === "suspended") this.#settleWaiters(to);
    this.#updateStatus();
    return true;
  }

  #untilLive(): Promise<void> {
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  #settleWaiters(phase: Phase): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    const error = this.#lastError ?? sdkError("NOT_CONNECTED", { message: "The connection was closed." });
    for (const waiter of waiters) {
      if (phase === "live") waiter.resolve();
      else waiter.reject(error);
    }
  }

  #updateStatus(): void {
    const status = statusOf({ phase: this.#phase, sessionState: this.#info?.state, mediaUp: this.#media.connected, wasReady: this.#wasReady });
    if (status === "ready") this.#wasReady = true;
    if (status === this.#status) return;
    this.#status = status;
    this.#events.emit("statusChanged", status);
  }

  #setSessionId(sessionId: string | undefined): void {
    if (sessionId === this.#sessionId) return;
    this.#sessionId = sessionId;
    this.#events.emit("sessionIdChanged", sessionId);
  }

  #nextToken(): Promise<string> {
    return readToken(this.#token);
  }

  #emitError(error: ReactorError): void {
    this.#events.emit("error", error);
  }

  /** A new session: fresh commands, messages and media. */
  #resetSession(): void {
    this.#commands = new CommandQueue();
    this.#inbox = this.#newInbox();
    this.#media = this.#newMedia();
    this.#info = undefined;
    this.#capabilities = undefined;
    this.#wasReady = false;
    this.#lastError = undefined;
    this.#lastStats = undefined;
    this.#recovery = undefined;
  }

  /** Socket and peer connections closed, timers stopped; the session's state is kept (for reconnect). */
  #dropLinks(): void {
    this.#socket?.close(1000, "client disconnected");
    this.#socket = undefined;
    this.#commands.detach();
    this.#media.closeAll();
    this.#stats.follow(undefined);
    this.#recovery?.cancel();
    this.#iceRestarts.cancel();
  }

  #teardown(): void {
    this.#dropLinks();
    this.#inbox.stop();
    clearTimeout(this.#closeTimer);
    this.#stopWatching?.();
    this.#stopWatching = undefined;
    this.#recovery = undefined;
  }

  #newInbox(): MessageInbox {
    return new MessageInbox({
      deliver: (scope, data, seq) => this.#events.emit(scope === "application" ? "message" : "runtimeMessage", data, { seq }),
      send: (frame) => this.#socket?.send(frame) ?? false,
    });
  }

  #newMedia(): Media {
    const media: Media = new Media({
      RTCPeerConnection: this.#options.RTCPeerConnection,
      iceTransportPolicy: this.#options.iceTransportPolicy,
      send: (frame) => this.#socket?.send(frame) ?? false,
      onTrack: (name, track, stream) => this.#events.emit("trackReceived", name, track, stream),
      onChange: () => {
        if (media !== this.#media) return;
        const link = media.current;
        this.#stats.follow(link && !link.closed ? { pc: link.pc, generation: link.generation } : undefined);
        this.#updateStatus();
      },
      // Offline, a new generation could gather no path: the `online` event renews it (see #onNetworkChange).
      onInterrupted: () => media === this.#media && !isOffline() && this.restartIce(),
      onError: (error) => media === this.#media && this.#emitError(error),
    });
    return media;
  }
}

function asReactorError(error: unknown): ReactorError {
  if (error instanceof ReactorError) return error;
  return sdkError("NETWORK_ERROR", { recoverable: true, component: "api", message: String(error) });
}
