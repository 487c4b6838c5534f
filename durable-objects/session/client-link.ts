/**
 * The native client's signaling socket: accepting it (and what a returning client is sent again: status, command
 * outcomes, the answer and candidates, unacknowledged messages), every frame it sends (offers, candidates,
 * commands, acknowledgements, token renewal, close), and the ICE servers pushed to it.
 *
 * Hibernation-safe: nothing is kept here; the socket's facts are in its attachment, the rest in the record and logs.
 */
import { PROTOCOL_VERSION, type Command, type CommandPolicy } from "../../protocol/common.ts";
import { ERROR_CODES, type ErrorCode } from "../../protocol/errors.ts";
import { decodeFrame } from "../../protocol/frames.ts";
import { ClientFrame, type ServerFrame } from "../../protocol/signaling.ts";
import { ApiError } from "../../src/errors.ts";
import { iceServersFor } from "../../src/ice-servers.ts";
import type { IssuedIceServers } from "../../src/turn/provider.ts";
import { closeReason, sendIfOpen } from "../sockets.ts";
import type { ClientToken } from "./client-token.ts";
import type { SessionHost } from "./host.ts";
import { isEnded } from "./lifecycle.ts";
import { meterCommand, newMeter } from "./meter.ts";
import { ACK_WRITE_EVERY, type SocketAttachment } from "./record.ts";
import type { RuntimeLink } from "./runtime-link.ts";
import type { Signaling } from "./signaling.ts";
import { sendError } from "./socket-links.ts";
import type { SessionUploads } from "./uploads.ts";

/** What the client link needs from its session object besides the shared host: the other collaborators it drives. */
export interface ClientLinkHost extends SessionHost {
  readonly runtime: RuntimeLink;
  readonly token: ClientToken;
  readonly uploadRpc: SessionUploads;
  readonly signaling: Signaling;
  /** Commands seen since the last one past METER_IDLE_SECONDS count the session as used (meter.ts). */
  readonly idleSpanMs: number;
  /** The record's `messageSeq` as last written. */
  writtenMessageSeq(): number;
  /** Commands go straight to the runtime (ACTIVE, and the runtime up). */
  deliverable(): boolean;
  sendStatus(): void;
}

export class ClientLink {
  readonly #host: ClientLinkHost;

  constructor(host: ClientLinkHost) {
    this.#host = host;
  }

  /** `heldGeneration`: the peer connection generation the client still holds (0: none), when it says. */
  accept(
    accountId: string,
    protocols: string | null,
    tokenExpiresAt: number | undefined,
    iceServers: IssuedIceServers | undefined,
    heldGeneration?: number,
  ): Response {
    const session = this.#host.record();
    if (!session) this.#host.keepNothing();
    if (!session || session.accountId !== accountId) return new ApiError("SESSION_NOT_FOUND").toResponse();
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    const replaced = this.#host.links.current("client");
    const tokenDeadline = tokenExpiresAt === undefined ? undefined : this.#host.token.deadline(tokenExpiresAt);
    this.#host.links.adopt(server, "client", tokenExpiresAt === undefined ? {} : { tokenExpiresAt, tokenDeadline });
    session.deadlines.tokenExpiry = tokenDeadline;
    session.clientKind = "native";
    this.#host.events.record(this.#host.now(), "client_connected", { kind: "native" });

    this.#host.links.toClient({
      type: "welcome",
      protocol: PROTOCOL_VERSION,
      session_id: session.id,
      next_command_seq: session.nextCommandSeq,
      message_seq: this.#host.messages.last,
    });
    this.#host.sendStatus();
    // The state of every command this client has not said it saw settled: a `command_status` lost with an earlier
    // socket (a drop, a buffer overflow, an acknowledgement) is never lost for good, and no dropped seq is left for a
    // later acknowledgement to seem to cover.
    for (const { seq, state, error } of this.#host.commands.statesAfter(session.commandsSeen ?? 0, session.nextCommandSeq)) {
      this.#host.links.toClient({ type: "command_status", seq, state, ...(error && { error }) });
    }
    if (isEnded(session.state)) {
      this.#host.save();
      server.close(1000, closeReason(session.reason ?? "ended"));
    } else {
      if (session.runtime && iceServers) this.#sendIceServers(iceServers);
      const { answer, runtimeCandidates } = this.#host.negotiation;
      if (answer !== null) {
        this.#host.links.toClient({ type: "answer", generation: session.generation, sdp: answer });
        for (const candidate of runtimeCandidates) {
          this.#host.links.toClient({ type: "ice", generation: session.generation, candidate });
        }
      }
      // Stored first, then those kept in memory (sent to a socket this one replaces): the client dedupes by seq.
      const { stored, inMemory } = this.#host.messages.unacknowledged();
      for (const frame of stored) sendIfOpen(server, frame);
      for (const frame of inMemory) sendIfOpen(server, frame);
      if (inMemory.length > 0) this.#host.links.markSentFromMemory();
      // The socket this one replaces closes without its close event counting: what `#clientLeft` does on a close
      // is done here. Its unacknowledged messages are still in memory and were just sent again, unless this object
      // woke up since it was sent them: then only the runtime has them. Refused messages are asked for again too.
      if ((replaced?.sentFromMemory && !this.#host.messages.complete) || this.#host.runtime.refused) this.#host.runtime.requestResend();
      // A client back without the current generation's peer connection (it closed it and will offer a new one):
      // the runtime's "connected" is about a connection that is gone, and must not make the session ACTIVE again.
      if (heldGeneration !== undefined && heldGeneration !== session.generation) session.peerConnected = false;
      this.#host.reconcileLinks();
      this.#host.save();
    }
    const headers = protocols?.split(",").some((p) => p.trim() === "reactor.v1") ? { "Sec-WebSocket-Protocol": "reactor.v1" } : undefined;
    return new Response(null, { status: 101, webSocket: client, headers });
  }

  async onFrame(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    // A token that has expired authorizes nothing more, whatever the frame (the alarm closes an idle socket).
    if (await this.#host.token.closeIfExpired(ws)) return;
    const decoded = decodeFrame(ClientFrame, raw);
    if (!decoded.ok) return sendError(ws, decoded.error.code, decoded.error.message);
    const frame = decoded.value;
    const session = this.#host.record()!;
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
          this.#host.commands.recordOutcome(frame.seq, "dropped", "SESSION_ENDED");
          this.#host.save();
        }
        sendIfOpen(ws, JSON.stringify({ type: "command_status", seq: frame.seq, state: "dropped", error: "SESSION_ENDED" } satisfies ServerFrame));
      }
      return sendError(ws, "SESSION_ENDED", `The session is ${session.state}: ${session.reason}.`, frameRef(frame));
    }
    switch (frame.type) {
      case "offer":
        if (frame.generation <= session.generation) return sendError(ws, "STALE_GENERATION", undefined, { generation: frame.generation });
        this.#host.signaling.start(frame.generation, frame.sdp, undefined, true);
        break;
      case "ice": {
        if (frame.generation !== session.generation) return sendError(ws, "STALE_GENERATION", undefined, { generation: frame.generation });
        const error = this.#host.signaling.relayClientCandidate(frame.generation, frame.candidate);
        if (error) return sendError(ws, error, undefined, { generation: frame.generation });
        return; // the record is unchanged; the candidate is written with its batch
      }
      case "command":
        this.#acceptCommand(ws, frame.seq, frame.command, frame.policy ?? "buffer");
        break;
      case "ack": {
        const sentFromMemory = (ws.deserializeAttachment() as SocketAttachment).sentFromMemory === true;
        const { upTo, freed, deletedRows } = this.#host.messages.acknowledge(frame.message_seq, sentFromMemory);
        if (upTo > session.messageSeq) session.messageSeq = upTo;
        if (freed && this.#host.runtime.refused) this.#host.runtime.requestResend();
        // The new safe point goes out as `message_ack` with the next record write (a command, say); at once only
        // if rows were deleted anyway, or if the runtime would otherwise hold many messages for nothing.
        if (deletedRows || session.messageSeq - this.#host.writtenMessageSeq() >= ACK_WRITE_EVERY) break;
        return;
      }
      case "commands_seen": {
        // Never past what was received: a seq not yet sent cannot have been seen settled.
        const seen = Math.min(frame.seq, session.nextCommandSeq - 1);
        if (seen <= (session.commandsSeen ?? 0)) return;
        session.commandsSeen = seen;
        // Written with the next record write unless rows go now; lost in an eviction, it only means a longer replay.
        if (this.#host.commands.forgetOutcomes(seen, session.nextCommandSeq)) break;
        return;
      }
      case "ping":
        sendIfOpen(ws, JSON.stringify({ type: "pong", t: frame.t } satisfies ServerFrame));
        return;
      case "token":
        await this.#host.token.renew(ws, frame.token);
        break;
      case "close":
        await this.#host.end("close", frame.reason ?? "client_closed");
        break;
    }
    this.#host.save();
  }

  #acceptCommand(ws: WebSocket, seq: number, command: Command, policy: CommandPolicy): void {
    const session = this.#host.record()!;
    if (seq === session.nextCommandSeq && command.uploads) {
      const refused = this.#host.uploadRpc.refusedRef(command.uploads);
      if (refused) return this.#refuseCommand(ws, seq, refused.code, `uploads.${refused.param}: ${ERROR_CODES[refused.code].message}`);
    }
    const deliverable = this.#host.deliverable();
    const result = this.#host.commands.accept(seq, session.nextCommandSeq, command, policy, deliverable);
    if (result.kind === "stored" || result.kind === "dropped") {
      session.meter ??= newMeter();
      meterCommand(session.meter, this.#host.now(), this.#host.idleSpanMs);
    }
    switch (result.kind) {
      case "duplicate":
        return sendError(ws, "COMMAND_REPLAYED", `Command ${seq} was already received.`, { seq });
      case "gap":
        return sendError(ws, "COMMAND_SEQ_GAP", `Expected command ${result.expected}, got ${seq}.`, { seq, expected: result.expected });
      case "dropped":
        session.nextCommandSeq = seq + 1;
        session.counters.commands++;
        session.counters.dropped++;
        this.#host.commands.recordOutcome(seq, "dropped", result.reason === "buffer_full" ? "COMMAND_BUFFER_FULL" : "COMMAND_DROPPED");
        this.#host.commandStatus(seq, "dropped", result.reason === "buffer_full" ? "COMMAND_BUFFER_FULL" : "COMMAND_DROPPED");
        if (result.reason === "buffer_full") sendError(ws, "COMMAND_BUFFER_FULL", undefined, { seq });
        return;
      case "stored":
        session.nextCommandSeq = seq + 1;
        session.counters.commands++;
        session.counters.replaced += result.replaced.length;
        for (const replaced of result.replaced) {
          this.#host.commands.recordOutcome(replaced, "replaced");
          this.#host.commandStatus(replaced, "replaced");
        }
        if (result.state === "delivered") this.#host.links.toRuntime({ type: "command", seq, command });
        this.#host.commandStatus(seq, result.state);
    }
  }

  /** A command that will never reach the model (a file reference that does not check out): its seq is used up. */
  #refuseCommand(ws: WebSocket, seq: number, code: ErrorCode, message: string): void {
    const session = this.#host.record()!;
    session.nextCommandSeq = seq + 1;
    session.counters.commands++;
    session.counters.dropped++;
    this.#host.events.record(this.#host.now(), "command_refused", { seq, code });
    this.#host.commands.recordOutcome(seq, "dropped", code);
    this.#host.commandStatus(seq, "dropped", code);
    sendError(ws, code, message, { seq });
  }

  /** TURN credentials (or STUN) for the client's peer connection: tied to this session, bounded by its token. */
  issueIceServers(tokenExpiresAt: number | undefined): Promise<IssuedIceServers> {
    return iceServersFor(this.#host.env, { subject: this.#host.record()!.id, notAfter: tokenExpiresAt, now: Math.floor(this.#host.now() / 1000) });
  }

  /** Issues and pushes ICE servers to the connected native client (on assignment, and before they expire). */
  async pushIceServers(): Promise<void> {
    const socket = this.#host.links.socket("client");
    if (!socket || !this.#host.record()) return;
    const { tokenExpiresAt } = socket.deserializeAttachment() as SocketAttachment;
    const issued = await this.issueIceServers(tokenExpiresAt);
    if (this.#host.links.socket("client") !== socket || isEnded(this.#host.record()!.state)) return; // replaced or ended meanwhile
    this.#sendIceServers(issued);
    this.#host.save();
  }

  /** Sends them, and schedules fresh ones at 80 % of their lifetime (the SDK applies them with an ICE restart). */
  #sendIceServers(issued: IssuedIceServers): void {
    const { iceServers, expiresAt } = issued;
    this.#host.links.toClient({ type: "ice_servers", ice_servers: iceServers, ...(expiresAt !== undefined && { expires_at: expiresAt }) });
    const now = this.#host.now();
    this.#host.record()!.deadlines.iceRefresh = expiresAt === undefined ? undefined : now + Math.max(1000, 0.8 * (expiresAt * 1000 - now));
    this.#host.scheduleAlarm();
  }
}

function frameRef(frame: ClientFrame): unknown {
  return frame.type === "command" ? { seq: frame.seq } : { type: frame.type };
}
