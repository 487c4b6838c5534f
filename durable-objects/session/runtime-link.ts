/**
 * The runtime's session socket: accepting it, its hello (and the deadline for it), and every frame it sends —
 * answers and candidates relayed to the client, command acknowledgements, model messages (numbered per run, kept
 * until safe, asked for again after a gap or a refusal), peer state, release.
 *
 * Hibernation-safe: the socket's facts are in its attachment (socket-links.ts) and the record. What is kept here
 * in memory only saves a frame: the last `message_ack` and `resend_messages` sent on the current socket, and
 * whether messages were refused since; after a wake-up the runtime's next gap or hello says the same again.
 */
import { LIMITS, type IceServer, type PeerState } from "../../protocol/common.ts";
import { decodeFrame } from "../../protocol/frames.ts";
import { RuntimeSessionFrame } from "../../protocol/runtime.ts";
import type { ServerFrame } from "../../protocol/signaling.ts";
import { ApiError } from "../../src/errors.ts";
import { iceServersFor } from "../../src/ice-servers.ts";
import { sendIfOpen } from "../sockets.ts";
import type { SessionHost } from "./host.ts";
import { isEnded } from "./lifecycle.ts";
import { CLOSE_NO_HELLO, RUNTIME_HELLO_MS, type GatewayFrame, type SocketAttachment } from "./record.ts";
import { sendRuntimeError } from "./socket-links.ts";

/** What the runtime link needs from its session object besides the shared host: the runtime's resend, and waking long-polls. */
export interface RuntimeLinkHost extends SessionHost {
  /** After a runtime (re)connects: everything it has not acknowledged, and the waiting commands if ready. */
  resendToRuntime(): void;
  /** Long-polling requests check again (an answer came). */
  wake(): void;
}

export class RuntimeLink {
  readonly #host: RuntimeLinkHost;
  /** The last `message_ack` sent on the current runtime socket. */
  runtimeAcked = 0;
  /** Messages were refused (buffer full): the runtime holds them, and is asked again once there is room. */
  refused = false;
  /** The last `resend_messages` sent, so the messages still in flight before it do not ask again. */
  #resendAsked: { connection: number; from: number } | undefined;

  constructor(host: RuntimeLinkHost) {
    this.#host = host;
  }

  accept(runtimeId: string): Response {
    const session = this.#host.record();
    if (!session) this.#host.keepNothing();
    if (!session) return new ApiError("SESSION_NOT_FOUND").toResponse();
    if (isEnded(session.state)) return new ApiError("SESSION_ENDED").toResponse();
    if (session.runtime?.runtimeId !== runtimeId) return new ApiError("RUNTIME_NOT_ASSIGNED").toResponse();
    const [runtime, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    const replacedGreeted = this.#host.links.runtimeUp();
    this.#host.links.adopt(server, "runtime", { awaitingHello: true });
    // Until it says hello the new socket is not a runtime: one that replaced a working socket is a runtime drop
    // (grace starts; its hello resumes), and one that never says hello is closed at this deadline.
    session.deadlines.hello = this.#host.now() + RUNTIME_HELLO_MS;
    if (replacedGreeted) {
      this.#host.events.record(this.#host.now(), "runtime_dropped", { how: "replaced by a new socket, not greeted yet" });
      this.#host.reconcileLinks();
    } else {
      this.#host.scheduleAlarm();
    }
    this.#host.save();
    return new Response(null, { status: 101, webSocket: runtime });
  }

  async onFrame(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    const decoded = decodeFrame(RuntimeSessionFrame, raw);
    if (!decoded.ok) return sendRuntimeError(ws, decoded.error.code, decoded.error.message);
    const frame = decoded.value;
    const session = this.#host.record()!;
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
          const issued = await iceServersFor(this.#host.env, { subject: session.id });
          // Issuing may have yielded: the session may have ended, or another socket replaced this one, meanwhile.
          if (isEnded(session.state)) return sendRuntimeError(ws, "SESSION_ENDED", `The session is ${session.state}.`);
          if ((ws.deserializeAttachment() as SocketAttachment).connection !== session.runtimeSocket) return;
          this.#onHello(ws, frame.command_seq, issued.iceServers);
        }
        break;
      case "answer":
        if (stale) {
          this.#host.events.record(this.#host.now(), "stale_answer_dropped", { generation: frame.generation });
          sendRuntimeError(ws, "STALE_GENERATION", undefined, { generation: frame.generation });
          break;
        }
        this.#host.negotiation.setAnswer(frame.sdp);
        this.#host.events.record(this.#host.now(), "answer", { generation: frame.generation });
        this.#host.links.toClient({ type: "answer", generation: frame.generation, sdp: frame.sdp });
        this.#host.wake();
        break;
      case "ice":
        if (stale) return sendRuntimeError(ws, "STALE_GENERATION", undefined, { generation: frame.generation });
        if (this.#host.negotiation.runtimeCandidates.length >= LIMITS.candidatesPerGeneration) return sendRuntimeError(ws, "ICE_CANDIDATE_LIMIT");
        this.#host.negotiation.addCandidate("runtime", frame.candidate);
        this.#host.links.toClient({ type: "ice", generation: frame.generation, candidate: frame.candidate });
        return; // the record is unchanged; the candidate is written with its batch
      case "peer_state":
        if (stale) return sendRuntimeError(ws, "STALE_GENERATION", undefined, { generation: frame.generation });
        this.#onPeerState(frame.state);
        break;
      case "command_ack": {
        const acknowledged = this.#host.commands.acknowledge(frame.seq);
        session.counters.acknowledged += acknowledged.length;
        for (const seq of acknowledged) this.#host.commandStatus(seq, "acknowledged");
        if (acknowledged.length === 0) return;
        break;
      }
      case "message":
        if (!this.#onModelMessage(ws, frame.seq, frame.scope, frame.data)) return; // nothing written
        break;
      case "release":
        await this.#host.end("runtime_lost", `runtime_released: ${frame.reason}`);
        break;
      case "frame_error":
        // The runtime missed a frame (say a `session` frame it could not take: its model never started). Going on
        // would leave the session ACTIVE, and billed, with nothing behind it.
        this.#host.events.record(this.#host.now(), "runtime_frame_error", { code: frame.code, frame_type: frame.frame_type, message: frame.message });
        await this.#host.end("runtime_lost", `runtime_frame_error: ${frame.code}${frame.frame_type ? ` (${frame.frame_type})` : ""}`);
        break;
    }
    this.#host.save();
  }

  #onHello(ws: WebSocket, processedSeq: number, iceServers: IceServer[]): void {
    const session = this.#host.record()!;
    this.#host.links.greet(ws);
    session.deadlines.hello = undefined;
    session.runtimeEverConnected = true;
    this.runtimeAcked = 0; // the record write at the end of this hello sends the safe point on the new socket
    this.refused = false; // the hello's message_seq asks for everything after it
    this.#host.events.record(this.#host.now(), "runtime_connected", { runtime_id: session.runtime!.runtimeId });
    const acknowledged = this.#host.commands.acknowledge(processedSeq);
    session.counters.acknowledged += acknowledged.length;
    for (const seq of acknowledged) this.#host.commandStatus(seq, "acknowledged");
    this.#host.links.toRuntime({
      type: "session",
      session_id: session.id,
      state: session.state,
      message_seq: this.#host.messages.last - (session.messageBase ?? 0), // in this run's numbering
      ...(session.extraArgs && { extra_args: session.extraArgs }),
      ice_servers: iceServers,
    });
    const { offer, answer, clientCandidates } = this.#host.negotiation;
    if (offer && answer === null) {
      this.#host.links.toRuntime({
        type: "offer",
        generation: session.generation,
        sdp: offer.sdp,
        track_mapping: offer.trackMapping,
        ...(offer.trickle && { trickle: true }),
      });
      for (const candidate of clientCandidates) this.#host.links.toRuntime({ type: "ice", generation: session.generation, candidate });
    }
    this.#host.resendToRuntime();
    this.#host.reconcileLinks();
  }

  /** The hello deadline passed: a runtime socket that still has not said hello is closed, and counts as gone. */
  closeSilent(): void {
    const session = this.#host.record()!;
    const live = this.#host.links.current("runtime");
    if (!live || live.greeted) return;
    session.runtimeSocket = null;
    live.ws.close(CLOSE_NO_HELLO, "no hello in time");
    this.#host.events.record(this.#host.now(), "runtime_dropped", { how: `no hello within ${RUNTIME_HELLO_MS / 1000} s` });
    this.#host.reconcileLinks();
  }

  #onPeerState(state: PeerState): void {
    const session = this.#host.record()!;
    const connected = state === "connected";
    if (connected === session.peerConnected) return;
    session.peerConnected = connected;
    this.#host.events.record(this.#host.now(), connected ? "peer_connected" : "peer_lost", { state, generation: session.generation });
    this.#host.reconcileLinks();
  }

  /**
   * A model message: sent on to a connected client and kept in memory (no write), or stored while the client is
   * away. Returns whether the record changed and must be written.
   */
  #onModelMessage(ws: WebSocket, runSeq: number, scope: "application" | "runtime", data: unknown): boolean {
    const session = this.#host.record()!;
    // Everything below is in the client's numbering; only what goes back to the runtime is in the run's.
    const base = session.messageBase ?? 0;
    const seq = base + runSeq;
    const frame = JSON.stringify({ type: "message", seq, scope, data } satisfies ServerFrame);
    const away = this.#host.links.socket("client") === undefined;
    const expected = this.#host.messages.last + 1;
    switch (this.#host.messages.accept(seq, frame, away)) {
      case "duplicate":
        return false;
      case "gap":
        // Sent before the runtime got our request to resend: the resend brings it again.
        if (this.#resendAskedFrom(expected)) return false;
        // After a wake-up a gap is how this object learns the runtime went on without it: nothing to report.
        if (this.#host.messages.complete) {
          sendRuntimeError(ws, "MESSAGE_SEQ_GAP", `Expected message ${expected - base}, got ${runSeq}.`, { seq: runSeq, expected: expected - base });
        }
        this.requestResend();
        return false;
      case "full":
        sendRuntimeError(ws, "MESSAGE_BUFFER_FULL", undefined, { seq: runSeq });
        // The runtime keeps it (not acknowledged); it is asked again once the client has made room.
        this.refused = true;
        this.#markResendAsked(expected);
        return false;
      case "accepted":
        session.counters.messages = Math.max(session.counters.messages, seq);
        if (!away) {
          this.#host.links.rawToClient(frame);
          this.#host.links.markSentFromMemory();
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
  requestResend(): void {
    const live = this.#host.links.current("runtime");
    if (!live?.greeted) return;
    const from = this.#host.messages.last + 1;
    this.#resendAsked = { connection: live.connection, from };
    this.refused = false;
    const runFrom = from - (this.#host.record()!.messageBase ?? 0);
    sendIfOpen(live.ws, JSON.stringify({ type: "resend_messages", from_seq: runFrom } satisfies GatewayFrame));
  }

  #resendAskedFrom(from: number): boolean {
    const asked = this.#resendAsked;
    return asked !== undefined && asked.from === from && asked.connection === this.#host.record()!.runtimeSocket;
  }

  #markResendAsked(from: number): void {
    const connection = this.#host.record()!.runtimeSocket;
    if (connection !== null) this.#resendAsked = { connection, from };
  }
}
