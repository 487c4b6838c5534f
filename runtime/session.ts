/**
 * One session served by this runtime: its socket to the session's object at the gateway, its peer connection with
 * the client (replaced on every new offer generation), and the model's handler for it. The runtime duties of
 * docs/sessions.md live here:
 *   - `hello { command_seq }` with the highest command handed to the model, on every (re)connection;
 *   - gateway commands run once each, in order (seqs already received are skipped), acknowledged cumulatively;
 *   - model messages go over the client's `data` channel when it is open, else through the gateway, numbered and
 *     kept until `message_ack` (MessageOutbox), resent on `session.message_seq` and `resend_messages`;
 *   - the client peer connection's state is reported per generation, and again after a reconnect;
 *   - `end` closes everything; a model failure sends `release`.
 */
import { LIMITS, type Command, type IceCandidate, type IceServer, type PeerState } from "../protocol/common.ts";
import { GatewaySessionFrame, type RuntimeSessionFrame } from "../protocol/runtime.ts";
import { parse } from "../protocol/schema.ts";
import type { BackoffOptions } from "../lib/backoff.ts";
import { checkCommand, commandError } from "./commands.ts";
import { decodeEnvelope, encodeEnvelope, FileUploaded, type ClientEnvelope } from "./envelope.ts";
import { errorText, scoped, type Log } from "./log.ts";
import { VideoOutput } from "./media/video-output.ts";
import type { AnyModel, CommandSpecs, MessageScope, ModelSession, SessionHandler } from "./model.ts";
import { MessageOutbox } from "./outbox.ts";
import { UploadReader } from "./uploads.ts";
import { PeerLink, type WebRtcOptions } from "./peer.ts";
import { describeFailure, ManagedSocket, socketUrl, type SocketFailure } from "./socket.ts";

type Phase = "connecting" | "serving" | "closed";
type PhaseEvent = "greeted" | "lost" | "close";

/** `connecting` until the gateway answers our hello, `serving` until the socket drops, `closed` for good. */
const PHASES: Record<Phase, Partial<Record<PhaseEvent, Phase>>> = {
  connecting: { greeted: "serving", lost: "connecting", close: "closed" },
  serving: { lost: "connecting", close: "closed" },
  closed: {},
};

/** Upgrade refusals that mean the session is gone for this runtime: retrying cannot help. */
const SESSION_GONE_STATUSES = new Set([403, 404, 409, 410]);
/** Closes that mean the same: 4000 another connection (not ours) took the session over, 4003 not assigned to us. */
const SESSION_GONE_CLOSE_CODES = new Set([4000, 4003]);

export interface ServedSessionOptions {
  sessionId: string;
  runtimeId: string;
  gatewayUrl: string;
  token: string;
  model: AnyModel;
  webrtc: WebRtcOptions;
  log: Log;
  backoff?: BackoffOptions;
  /** Called once, when the session is over for this runtime; `done` settles once the model has freed it. */
  onClosed(sessionId: string, reason: string, done: Promise<void>): void;
}

type GatewayFrame = GatewaySessionFrame;

export class ServedSession {
  readonly id: string;
  readonly #options: ServedSessionOptions;
  readonly #log: Log;
  readonly #socket: ManagedSocket<GatewayFrame, RuntimeSessionFrame>;
  readonly #outbox = new MessageOutbox();
  readonly #outputs = new Map<string, VideoOutput>();
  #phase: Phase = "connecting";
  #handler: Promise<SessionHandler | undefined> | undefined;
  /** Model calls run one after another, in arrival order. */
  #work: Promise<void> = Promise.resolve();
  /** Highest gateway command queued for the model (duplicates are skipped against it). */
  #receivedSeq = 0;
  /** Highest gateway command handed to the model (what `hello` reports). */
  #processedSeq = 0;
  #peer: PeerLink | undefined;
  #answer: { generation: number; sdp: string; candidates: (IceCandidate | null)[] } | undefined;
  /** A release that could not be sent yet (socket down): sent as soon as the socket is greeted again. */
  #pendingRelease: string | undefined;
  #lastPingAt: number | undefined;
  #closing: Promise<void> | undefined;
  /** ICE servers for this session's peer connections, as the gateway last said (TURN credentials are per session). */
  #iceServers: IceServer[] = [];
  /** Checks the client's file references with the gateway and streams their bytes (docs/uploads.md). */
  readonly #uploads: UploadReader;

  constructor(options: ServedSessionOptions) {
    this.id = options.sessionId;
    this.#options = options;
    this.#log = scoped(options.log, `session ${options.sessionId}`);
    this.#uploads = new UploadReader(options);
    for (const track of options.model.tracks)
      if (track.kind === "video" && track.direction === "recvonly") this.#outputs.set(track.name, new VideoOutput(track.name));
    this.#socket = new ManagedSocket<GatewayFrame, RuntimeSessionFrame>({
      url: socketUrl(
        options.gatewayUrl,
        `/v1/runtime/sessions/${encodeURIComponent(options.sessionId)}?runtime_id=${encodeURIComponent(options.runtimeId)}`,
      ),
      token: options.token,
      schema: GatewaySessionFrame,
      log: this.#log,
      backoff: options.backoff,
      onOpen: () => this.#send({ type: "hello", runtime_id: options.runtimeId, command_seq: this.#processedSeq }),
      onFrame: (frame) => this.#onFrame(frame),
      // Skipping it silently could leave the session without a model (a `session` frame) while the gateway bills it.
      onBadFrame: (code, message, frameType) =>
        this.#send({ type: "frame_error", code: code.slice(0, 64), message: message.slice(0, 1024), ...(frameType && { frame_type: frameType }) }),
      onLost: (failure) => this.#onSocketLost(failure),
    });
  }

  /** What the agent and tests can see of the session. */
  get info() {
    return {
      id: this.id,
      phase: this.#phase,
      processedCommandSeq: this.#processedSeq,
      generation: this.#peer?.generation ?? 0,
      peerState: this.#peer?.connectionState,
      dataChannelOpen: this.#peer?.dataChannelOpen ?? false,
      unacknowledgedMessages: this.#outbox.size,
      lastClientPingAt: this.#lastPingAt,
      videoPackets: Object.fromEntries([...this.#outputs].map(([name, output]) => [name, output.packets])),
    };
  }

  start(): void {
    this.#socket.start();
  }

  /** Ends the session from this side: tells the gateway (`release`), then frees everything. */
  release(reason: string): Promise<void> {
    if (this.#phase === "closed") return this.#closing ?? Promise.resolve();
    if (!this.#send({ type: "release", reason })) this.#pendingRelease = reason;
    return this.#close(reason, { keepSocket: this.#pendingRelease !== undefined });
  }

  /** Drops the session socket abruptly, as a network loss would; it reconnects and resumes (tests, demos). */
  dropSocket(): void {
    this.#socket.drop();
  }

  // ── Gateway frames ─────────────────────────────────────────────────────────────────────────────────────────────

  #onFrame(frame: GatewayFrame): void {
    switch (frame.type) {
      case "session":
        return this.#onGreeted(frame);
      case "offer":
        return this.#onOffer(frame.generation, frame.sdp, frame.track_mapping, frame.trickle === true);
      case "ice":
        if (frame.generation === this.#peer?.generation) void this.#peer.addRemoteCandidate(frame.candidate);
        return;
      case "command":
        return this.#onGatewayCommand(frame.seq, frame.command);
      case "message_ack":
      case "resend_messages":
        return this.#outbox.onGatewayFrame(frame, (message) => this.#socket.send(message));
      case "end":
        this.#log("info", `ended by the gateway: ${frame.reason}`);
        void this.#close(frame.reason);
        return;
      case "error":
        this.#log("warn", `gateway error ${frame.code}: ${frame.message}${frame.ref === undefined ? "" : ` ${JSON.stringify(frame.ref)}`}`);
        return;
    }
  }

  #onGreeted(frame: Extract<GatewayFrame, { type: "session" }>): void {
    if (this.#pendingRelease !== undefined) {
      this.#send({ type: "release", reason: this.#pendingRelease });
      this.#socket.stop();
      return;
    }
    if (!this.#move("greeted")) return;
    this.#log("debug", "greeted by the gateway");
    if (frame.ice_servers) this.#iceServers = frame.ice_servers;
    // Kept messages the gateway does not have yet, in order, before any new one.
    this.#outbox.onGatewayFrame(frame, (message) => this.#socket.send(message));
    this.#handler ??= this.#startModel(frame.extra_args);
    // The peer connection may have changed state while the socket was down.
    const peer = this.#peer;
    if (peer && this.#answer?.generation === peer.generation)
      this.#send({ type: "peer_state", generation: peer.generation, state: peer.connectionState });
  }

  #onOffer(generation: number, sdp: string, trackMapping: unknown, trickle: boolean): void {
    const current = this.#peer;
    if (current && generation < current.generation) return; // the gateway drops stale generations too
    if (current && generation === current.generation) {
      // The gateway resends the offer when it never got our answer (our socket dropped): send it again.
      if (this.#answer?.generation === generation) this.#resendAnswer();
      return;
    }
    current?.close();
    this.#answer = undefined;
    this.#log("debug", `offer ${generation} received`);
    const peer = new PeerLink({
      generation,
      offer: sdp,
      trackMapping,
      trickle,
      tracks: this.#options.model.tracks,
      output: (name) => this.#outputs.get(name),
      // The gateway's servers for this session, and any the agent was configured with.
      webrtc: { ...this.#options.webrtc, iceServers: [...this.#iceServers, ...(this.#options.webrtc.iceServers ?? [])] },
      log: this.#log,
      onCandidate: (candidate) => this.#onLocalCandidate(peer, candidate),
      onState: (state) => this.#onPeerState(peer, state),
      onDataChannelMessage: (data) => this.#onDataChannelMessage(data),
      onDataChannelOpen: () => this.#onDataChannelOpen(peer),
      onDataChannelClosed: () => this.#onDataChannelClosed(peer),
    });
    this.#peer = peer;
    // Before the answer: the gateway learns that the current generation is not connected yet, so a client that
    // connects quickly never sees the previous generation's state (ACTIVE) reported as this one's.
    this.#send({ type: "peer_state", generation, state: peer.connectionState });
    peer.answer().then(
      (answer) => {
        if (this.#peer !== peer) return;
        this.#answer = { generation, sdp: answer, candidates: [] };
        this.#send({ type: "answer", generation, sdp: answer });
        peer.answerSent(); // its candidates follow the answer, never precede it
      },
      (error: unknown) => {
        if (this.#peer !== peer) return;
        this.#log("warn", `cannot answer offer ${generation}: ${errorText(error)}`);
        this.#send({ type: "peer_state", generation, state: "failed" });
      },
    );
  }

  #resendAnswer(): void {
    const answer = this.#answer!;
    this.#send({ type: "answer", generation: answer.generation, sdp: answer.sdp });
    for (const candidate of answer.candidates) this.#send({ type: "ice", generation: answer.generation, candidate });
  }

  #onLocalCandidate(peer: PeerLink, candidate: IceCandidate | null): void {
    if (this.#peer !== peer || this.#answer?.generation !== peer.generation) return;
    this.#answer.candidates.push(candidate);
    this.#send({ type: "ice", generation: peer.generation, candidate });
  }

  #onPeerState(peer: PeerLink, state: PeerState): void {
    if (this.#peer !== peer) return;
    this.#log("debug", `peer connection ${peer.generation}: ${state}`);
    this.#send({ type: "peer_state", generation: peer.generation, state });
  }

  #onDataChannelOpen(peer: PeerLink): void {
    this.#log("debug", `data channel open (generation ${peer.generation})`);
    this.#enqueue(async (handler) => {
      if (this.#peer === peer) await handler.onClientConnected?.();
    });
  }

  /**
   * The official client opens its data channel with its peer connection and never closes one without the other;
   * the channel closes the moment the client's connection does, while ICE takes ~30 s to notice. So a closed
   * channel means the client left: report it now (the gateway's grace starts) and stop sending it media.
   */
  #onDataChannelClosed(peer: PeerLink): void {
    if (this.#peer !== peer) return;
    this.#log("info", `the client closed its data channel: peer connection ${peer.generation} is gone`);
    this.#send({ type: "peer_state", generation: peer.generation, state: "disconnected" });
    peer.close();
  }

  #onGatewayCommand(seq: number, command: Command): void {
    if (seq <= this.#receivedSeq) {
      // Already queued or run (a resend after our socket dropped): acknowledge what is done, never run twice.
      if (this.#processedSeq > 0) this.#send({ type: "command_ack", seq: this.#processedSeq });
      return;
    }
    this.#receivedSeq = seq;
    this.#runCommand(command, seq);
  }

  // ── The client's data channel ─────────────────────────────────────────────────────────────────────────────────

  #onDataChannelMessage(raw: string | Buffer): void {
    const decoded = decodeEnvelope(raw);
    if (!decoded.ok) {
      this.#log("warn", `data channel message refused: ${decoded.error.message}`);
      this.#emit(commandError("", "MALFORMED_ENVELOPE", decoded.error.message), "application");
      return;
    }
    const { scope, data } = decoded.value;
    if (scope === "application") this.#runCommand(data);
    else this.#onRuntimeCommand(data);
  }

  /** Runtime-scope commands are the agent's own, never the model's. */
  #onRuntimeCommand(command: ClientEnvelope["data"]): void {
    switch (command.type) {
      case "ping":
        this.#lastPingAt = Date.now();
        return;
      case "requestCapabilities":
        // The official client's command panel reads `schema` as { parameter: JSON Schema }.
        this.#emit({ type: "modelCapabilities", data: { commands: capabilityList(this.#options.model) } }, "runtime");
        return;
      case "fileUploaded": {
        const file = parse(FileUploaded, command.data);
        if (!file.ok) return this.#emit(commandError("fileUploaded", "INVALID_COMMAND", file.error.message), "runtime");
        this.#enqueue(async (handler) => {
          if (!handler.onFileUploaded) return;
          const checked = await this.#uploads.resolve("fileUploaded", { file: file.value });
          if (!checked.ok) return this.#emit(checked.error, "runtime");
          try {
            await handler.onFileUploaded(checked.value.files.file!);
          } finally {
            checked.value.release();
          }
        });
        return;
      }
      default:
        this.#emit(commandError(command.type, "UNKNOWN_COMMAND", "Runtime commands: ping, requestCapabilities, fileUploaded."), "runtime");
    }
  }

  // ── The model ─────────────────────────────────────────────────────────────────────────────────────────────────

  #startModel(extraArgs: unknown): Promise<SessionHandler | undefined> {
    const session: ModelSession = {
      id: this.id,
      extraArgs,
      log: this.#log,
      video: (name) => {
        const output = this.#outputs.get(name);
        if (!output) throw new Error(`no video track "${name}" is declared (declared: ${[...this.#outputs.keys()].join(", ")})`);
        return output;
      },
      emit: (data, scope = "application") => this.#emit(data, scope, { fromModel: true }),
      release: (reason) => void this.release(reason),
    };
    const handler = (async () => {
      try {
        return await this.#options.model.onSession(session);
      } catch (error) {
        this.#log("error", `the model could not start the session: ${errorText(error)}`);
        void this.release(`model_failed: ${errorText(error)}`.slice(0, 256));
        return undefined;
      }
    })();
    return handler;
  }

  /** Validates a command against the model's schemas, runs it, answers failures with `command_error`. */
  #runCommand(command: Command, seq?: number): void {
    this.#enqueue(
      async (handler) => {
        const checked = checkCommand(this.#options.model.commands, command);
        if (!checked.ok) return this.#emit(checked.error, "application");
        const files = await this.#uploads.resolve(command.type, checked.value.uploads);
        if (!files.ok) return this.#emit(files.error, "application");
        try {
          await handler.onCommand({ ...checked.value, uploads: files.value.files } as never);
        } catch (error) {
          this.#emit(commandError(command.type, "COMMAND_FAILED", errorText(error)), "application");
        } finally {
          files.value.release();
        }
      },
      () => {
        if (seq === undefined) return;
        // Cumulative: every command up to seq has been handed to the model (or refused, which is delivery too).
        this.#processedSeq = seq;
        this.#send({ type: "command_ack", seq });
      },
    );
  }

  /** Runs `task` after every earlier model call; `after` runs even when there is no handler (the model failed). */
  #enqueue(task: (handler: SessionHandler) => Promise<void> | void, after?: () => void): void {
    this.#work = this.#work.then(async () => {
      const handler = this.#phase === "closed" ? undefined : await this.#handler;
      if (handler) {
        try {
          await task(handler);
        } catch (error) {
          this.#log("error", `model call failed: ${errorText(error)}`);
        }
      }
      after?.();
    });
  }

  /** A message for the client: over the data channel when open, else numbered through the gateway. */
  #emit(data: unknown, scope: MessageScope, options: { fromModel?: boolean } = {}): void {
    if (this.#phase === "closed") return;
    const envelope = encodeEnvelope(scope, data);
    if (envelope.length > LIMITS.frameBytes - 100) {
      const error = new RangeError(`a message is limited to ${LIMITS.frameBytes - 100} bytes of JSON, got ${envelope.length}`);
      if (options.fromModel) throw error;
      this.#log("error", error.message);
      return;
    }
    if (this.#peer?.send(envelope)) return;
    const { frame } = this.#outbox.add(scope, data);
    this.#socket.send(frame); // if the socket is down, `session.message_seq` brings it back after the reconnect
  }

  // ── Ending ────────────────────────────────────────────────────────────────────────────────────────────────────

  #onSocketLost(failure: SocketFailure): boolean {
    const gone =
      (failure.kind === "refused" && SESSION_GONE_STATUSES.has(failure.status)) ||
      (failure.kind === "closed" && SESSION_GONE_CLOSE_CODES.has(failure.code));
    if (gone) {
      this.#log("info", `the gateway no longer has this session for us (${describeFailure(failure)})`);
      void this.#close("session_gone");
      return false;
    }
    if (this.#phase === "closed") return this.#pendingRelease !== undefined; // reconnect only to deliver the release
    this.#move("lost");
    return true;
  }

  /** Stops the socket for good, even with a release still undelivered (the agent is shutting down). */
  disconnect(): void {
    this.#socket.stop();
  }

  #close(reason: string, options: { keepSocket?: boolean } = {}): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#move("close");
    this.#peer?.close();
    this.#peer = undefined;
    if (!options.keepSocket) this.#socket.stop();
    const handler = this.#handler;
    this.#closing = this.#work.then(async () => {
      const started = await handler;
      try {
        await started?.close(reason);
      } catch (error) {
        this.#log("error", `the model failed to close the session: ${errorText(error)}`);
      }
    });
    this.#options.onClosed(this.id, reason, this.#closing);
    return this.#closing;
  }

  #move(event: PhaseEvent): boolean {
    const next = PHASES[this.#phase][event];
    if (next === undefined) return false;
    this.#phase = next;
    return true;
  }

  #send(frame: RuntimeSessionFrame): boolean {
    return this.#socket.send(frame);
  }
}

/** `commands` of the `modelCapabilities` runtime message, in the shape the official client's UI reads. */
function capabilityList(model: AnyModel): { name: string; description: string; schema: Record<string, unknown> }[] {
  return Object.entries(model.commands as CommandSpecs).map(([name, spec]) => ({
    name,
    description: spec.description,
    schema: (spec.schema.json.properties as Record<string, unknown> | undefined) ?? {},
  }));
}
