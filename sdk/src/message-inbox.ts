/**
 * Model messages coming through the gateway: delivered to the application exactly once and in order (the gateway
 * resends unacknowledged ones after a reconnect, so duplicates are expected and dropped by seq), and acknowledged
 * cumulatively — in batches, because the gateway and the runtime keep every message until it is acknowledged.
 */
import type { ClientFrame } from "../../protocol/signaling.ts";

export type Scope = "application" | "runtime";

export interface InboxOptions {
  deliver(scope: Scope, data: unknown, seq: number): void;
  /** Sends the `ack` frame; false if there is no socket (the next socket's welcome resends from our last ack). */
  send(frame: ClientFrame): boolean;
  /** Acknowledge after this many new messages… */
  ackEvery?: number;
  /** …or once no new message came for this long. */
  ackAfterMs?: number;
}

export type Receipt = "delivered" | "duplicate" | "gap";

export class MessageInbox {
  readonly #options: Required<InboxOptions>;
  /** Highest seq delivered to the application. */
  #last = 0;
  #acked = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: InboxOptions) {
    this.#options = { ackEvery: 16, ackAfterMs: 50, ...options };
  }

  get lastSeq(): number {
    return this.#last;
  }

  /**
   * Takes message `seq`. A gap (a seq past the next one) is not delivered: the caller reconnects, and the gateway
   * sends everything after our acknowledgement again, in order.
   */
  receive(seq: number, scope: Scope, data: unknown): Receipt {
    if (seq <= this.#last) return "duplicate";
    if (seq > this.#last + 1) return "gap";
    this.#last = seq;
    this.#options.deliver(scope, data, seq);
    if (this.#last - this.#acked >= this.#options.ackEvery) this.flush();
    else this.#schedule();
    return "delivered";
  }

  /** Acknowledges everything delivered so far. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#last <= this.#acked) return;
    if (this.#options.send({ type: "ack", message_seq: this.#last })) this.#acked = this.#last;
  }

  /** A new socket: what was acknowledged on the old one may not have arrived; say it again. */
  resetAcknowledged(): void {
    this.#acked = 0;
    this.flush();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    this.#timer ??= setTimeout(() => this.flush(), this.#options.ackAfterMs);
  }
}
