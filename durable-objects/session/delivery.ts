/**
 * Commands and model messages between the two links, each delivered exactly once: commands go to the runtime once
 * the session is ready (those buffered meanwhile in order, those not acknowledged again after the runtime
 * reconnects) and their states to the client; the model messages' safe point goes to the runtime (`message_ack`)
 * once it is stored. What a command or a message is, and when the client acknowledges it, is the links' business
 * (client-link.ts, runtime-link.ts); the tables keep them (command-log.ts, message-log.ts).
 *
 * Hibernation-safe: everything is in the tables and the record; the last `message_ack` sent is runtime-link.ts's.
 */
import type { CommandState } from "../../protocol/common.ts";
import type { ErrorCode } from "../../protocol/errors.ts";
import type { SessionHost } from "./host.ts";
import type { RuntimeLink } from "./runtime-link.ts";

/** What delivery needs from its session object. */
export interface DeliveryHost extends Pick<SessionHost, "record" | "commands" | "messages" | "links"> {
  readonly runtime: RuntimeLink;
}

export class Delivery {
  readonly #host: DeliveryHost;

  constructor(host: DeliveryHost) {
    this.#host = host;
  }

  /** Tells the client a command's state. */
  commandStatus(seq: number, state: CommandState, error?: ErrorCode): void {
    this.#host.links.toClient({ type: "command_status", seq, state, ...(error && { error }) });
  }

  /** Commands go straight to the runtime: the session is ACTIVE and the runtime is up. */
  deliverable(): boolean {
    return this.#host.record()!.state === "ACTIVE" && this.#host.links.runtimeUp();
  }

  /** After a runtime (re)connects: everything it has not acknowledged, and the waiting commands if ready. */
  resendToRuntime(): void {
    const { commands, links } = this.#host;
    const deliverable = this.deliverable();
    const waiting = new Set(deliverable ? commands.waitingSeqs() : []);
    for (const { seq, command } of commands.takeUnacknowledged(deliverable)) {
      links.toRuntime({ type: "command", seq, command });
      if (waiting.has(seq)) this.commandStatus(seq, "delivered");
    }
  }

  /** The session became ready: commands buffered meanwhile go out, in order. */
  flushWaiting(): void {
    for (const { seq, command } of this.#host.commands.flushWaiting()) {
      this.#host.links.toRuntime({ type: "command", seq, command });
      this.commandStatus(seq, "delivered");
    }
  }

  /** The session ended: every command not yet acknowledged is dropped (SESSION_ENDED), and the client told so. */
  dropAll(): void {
    const { commands } = this.#host;
    const session = this.#host.record()!;
    for (const seq of commands.dropAll()) {
      session.counters.dropped++;
      commands.recordOutcome(seq, "dropped", "SESSION_ENDED");
      this.commandStatus(seq, "dropped", "SESSION_ENDED");
    }
  }

  /**
   * The messages the client was sent and has not acknowledged, kept only in memory until now, are stored (its socket
   * closed, or the session ended) so they are delivered when it returns. Returns whether any were.
   */
  keepUnacked(): boolean {
    const { messages } = this.#host;
    if (!messages.storeUnacked()) return false;
    this.#host.record()!.messageSeq = messages.last;
    return true;
  }

  /**
   * The client's socket closed: its unacknowledged messages are kept. If this object woke up since they were sent,
   * it no longer has them: the runtime does, and is asked to resend them (stored as they come, the client being away).
   */
  clientLeft(sentFromMemory: boolean): void {
    if (!this.keepUnacked() && sentFromMemory && !this.#host.messages.complete) this.#host.runtime.requestResend();
  }

  /**
   * The record was just written: messages up to its safe point may be forgotten by the runtime. The output gate holds
   * this frame until the write is durable, and drops it if the write fails.
   */
  ackSafePoint(): void {
    const { runtime, links } = this.#host;
    const session = this.#host.record()!;
    if (session.messageSeq <= runtime.runtimeAcked || !links.runtimeUp()) return;
    runtime.runtimeAcked = session.messageSeq;
    const runSeq = session.messageSeq - (session.messageBase ?? 0);
    if (runSeq > 0) links.toRuntime({ type: "message_ack", seq: runSeq });
  }
}
