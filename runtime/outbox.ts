/**
 * A session's model messages on their way through the gateway, as docs/sessions.md requires of a runtime: numbered
 * 1, 2, 3… without gaps, each kept until a `message_ack` covers it, and sent again in order when the gateway asks —
 * after `session { message_seq }` every kept message newer than that, after `resend_messages { from_seq }` every
 * kept message from there on. It outlives the session socket: reconnects must not lose what was not acknowledged.
 */
export interface KeptMessage {
  seq: number;
  /** The frame exactly as sent (`{"type":"message","seq":…}`). */
  frame: string;
}

/** The gateway frames that concern the outbox (a subset of GatewaySessionFrame). */
export type OutboxFrame =
  | { type: "message_ack"; seq: number }
  | { type: "session"; message_seq: number }
  | { type: "resend_messages"; from_seq: number }
  | { type: string };

export class MessageOutbox {
  /** Kept messages, oldest first (seqs ascending). */
  readonly #kept: KeptMessage[] = [];
  #acknowledged = 0;
  #lastSeq = 0;

  /** Messages not yet acknowledged. */
  get size(): number {
    return this.#kept.length;
  }

  /** The highest seq handed out (or kept). */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** Numbers a new message, keeps it, and returns its frame to send. */
  add(scope: "application" | "runtime", data: unknown): KeptMessage {
    const seq = this.#lastSeq + 1;
    const frame = JSON.stringify({ type: "message", seq, scope, data });
    this.keep(seq, frame);
    return { seq, frame };
  }

  /** Keeps a message numbered elsewhere (scripted peers number their own); old or repeated seqs are ignored. */
  keep(seq: number, frame: string): void {
    if (seq <= this.#acknowledged || seq <= this.#lastSeq) return;
    this.#kept.push({ seq, frame });
    this.#lastSeq = seq;
  }

  /** Cumulative: forgets every message up to `seq`. */
  acknowledge(seq: number): void {
    if (seq <= this.#acknowledged) return;
    this.#acknowledged = seq;
    let drop = 0;
    while (drop < this.#kept.length && this.#kept[drop]!.seq <= seq) drop++;
    this.#kept.splice(0, drop);
  }

  /** The kept frames from `seq` on, in order. */
  from(seq: number): string[] {
    return this.#kept.filter((message) => message.seq >= seq).map((message) => message.frame);
  }

  /**
   * The gateway has every message up to `messageSeq` of this run. Kept newer ones go again, in order. If it has
   * more than this outbox ever numbered (this process lost a previous outbox of the session), new messages are
   * numbered after what it has: numbered from 1 again, they would be dropped as duplicates.
   */
  #onSession(messageSeq: number, send: (frame: string) => void): void {
    for (const kept of this.from(messageSeq + 1)) send(kept);
    if (messageSeq > this.#lastSeq) this.#lastSeq = messageSeq;
  }

  /** Applies a gateway frame: acknowledgements forget, `session` and `resend_messages` resend through `send`. */
  onGatewayFrame(frame: OutboxFrame, send: (frame: string) => void): void {
    if (frame.type === "message_ack" && "seq" in frame) this.acknowledge(frame.seq);
    else if (frame.type === "session" && "message_seq" in frame) this.#onSession(frame.message_seq, send);
    else if (frame.type === "resend_messages" && "from_seq" in frame) for (const kept of this.from(frame.from_seq)) send(kept);
  }
}
