/**
 * Model → client messages the client has not acknowledged yet. The runtime numbers messages 1, 2, 3… per session
 * and keeps each one until the gateway's `message_ack`; so the gateway only has to keep a message itself where the
 * runtime may already have forgotten it:
 *
 *   - client connected: the message is sent and kept in memory only (no storage write). The gateway does not
 *     acknowledge it to the runtime until the client has, so if this object loses its memory (eviction,
 *     hibernation) the runtime still has the message and resends it on request;
 *   - client away (socket closed, or never opened): the message is stored (one row), and may be acknowledged to
 *     the runtime at once. When the client's socket closes, what is only in memory is stored first.
 *
 * The session record's `messageSeq` is the *safe point*: every message up to it is stored here or acknowledged by
 * the client. It is the most the runtime is ever told with `message_ack`, and where this log starts after a
 * wake-up. It lags while the client is connected; that only means the runtime is asked to resend a little more.
 */
export interface MessageLimits {
  maxStored: number;
  maxStoredBytes: number;
}

export type AcceptResult = "accepted" | "duplicate" | "gap" | "full";

interface Unacked {
  seq: number;
  frame: string;
}

export class MessageLog {
  readonly #sql: SqlStorage;
  readonly #limits: MessageLimits;
  /** Count and size of what is stored, read once per wake-up and then kept in step with every change. */
  #totals: { count: number; bytes: number } | undefined;
  /** Highest seq accepted in order, or acknowledged by the client: the next message must be `last + 1`. */
  #last: number;
  /** Sent to the connected client and not acknowledged yet, oldest first. Only in memory. */
  #unacked: Unacked[] = [];
  #unackedBytes = 0;
  /** See `complete`. */
  #acceptedSinceWake = false;

  /** `safePoint`: the record's stored `messageSeq`. */
  constructor(sql: SqlStorage, limits: MessageLimits, safePoint: number) {
    this.#sql = sql;
    this.#limits = limits;
    this.#last = safePoint;
  }

  static readonly schema = "CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, frame TEXT NOT NULL);";

  /** Highest seq accepted (or acknowledged by the client); the runtime is asked to resend from `last + 1`. */
  get last(): number {
    return this.#last;
  }

  /**
   * Whether this object knows every message after the safe point that a client may have been sent. Not after a
   * wake-up: an earlier instance may have sent messages it kept only in memory. It does again once it has accepted
   * a message: the runtime sends in order and resends whole runs, so a message accepted at `last + 1` is either new
   * (nothing after it was ever sent) or the start of a resend that brings everything after it once more.
   */
  get complete(): boolean {
    return this.#acceptedSinceWake;
  }

  /**
   * A message from the runtime. `store`: the client is away, so write it (one row); otherwise it is kept in memory
   * until the client acknowledges it. Stored and in-memory messages together stay within the limits.
   */
  accept(seq: number, frame: string, store: boolean): AcceptResult {
    if (seq <= this.#last) return "duplicate";
    if (seq > this.#last + 1) return "gap";
    const totals = this.#stored();
    const count = totals.count + this.#unacked.length + 1;
    const bytes = totals.bytes + this.#unackedBytes + frame.length;
    if (count > this.#limits.maxStored || bytes > this.#limits.maxStoredBytes) return "full";
    if (store) {
      this.#insert(seq, frame);
    } else {
      this.#unacked.push({ seq, frame });
      this.#unackedBytes += frame.length;
    }
    this.#last = seq;
    this.#acceptedSinceWake = true;
    return "accepted";
  }

  /**
   * The client went away: what was only in memory is written (one transaction with the caller's other writes).
   * Returns whether there was anything to write.
   */
  storeUnacked(): boolean {
    if (this.#unacked.length === 0) return false;
    for (const { seq, frame } of this.#unacked) this.#insert(seq, frame);
    this.#unacked = [];
    this.#unackedBytes = 0;
    return true;
  }

  /** Frames the client has not acknowledged, oldest first: the stored ones, then (all newer) those only in memory. */
  unacknowledged(): { stored: string[]; inMemory: string[] } {
    const stored =
      this.#stored().count === 0
        ? []
        : this.#sql
            .exec<{ frame: string }>("SELECT frame FROM messages ORDER BY seq")
            .toArray()
            .map((row) => row.frame);
    return { stored, inMemory: this.#unacked.map((message) => message.frame) };
  }

  /**
   * The client acknowledged every message up to `seq` (cumulative). Returns the seq now known to be with the
   * client, and whether anything was freed. Deletes rows only when something is stored.
   *
   * The seq is at most `last`, except after a wake-up on a socket that was sent messages from memory
   * (`sentFromMemory`, noted on the socket): an earlier instance may have sent it more than this one remembers, so
   * the client's word is taken. Anywhere else a higher seq can only be a client's mistake (or lie); believed, it
   * would make this object drop the runtime's next messages as duplicates and tell the runtime to forget them.
   */
  acknowledge(seq: number, sentFromMemory: boolean): { upTo: number; freed: boolean; deletedRows: boolean } {
    const upTo = this.complete || !sentFromMemory ? Math.min(seq, this.#last) : seq;
    let freed = false;
    while (this.#unacked.length > 0 && this.#unacked[0]!.seq <= upTo) {
      this.#unackedBytes -= this.#unacked.shift()!.frame.length;
      freed = true;
    }
    let deletedRows = false;
    const totals = this.#stored();
    if (totals.count > 0) {
      for (const { bytes } of this.#sql.exec<{ bytes: number }>("DELETE FROM messages WHERE seq <= ? RETURNING length(frame) AS bytes", upTo)) {
        totals.count--;
        totals.bytes -= bytes;
        deletedRows = true;
      }
    }
    // After a wake-up the client may have been sent (and have acknowledged) more than this object remembers.
    if (upTo > this.#last) this.#last = upTo;
    return { upTo, freed: freed || deletedRows, deletedRows };
  }

  /** Everything is gone (the session's storage was deleted). */
  forget(): void {
    this.#totals = { count: 0, bytes: 0 };
    this.#unacked = [];
    this.#unackedBytes = 0;
    this.#last = 0;
    this.#acceptedSinceWake = false;
  }

  #insert(seq: number, frame: string): void {
    const totals = this.#stored();
    this.#sql.exec("INSERT INTO messages (seq, frame) VALUES (?, ?)", seq, frame);
    totals.count++;
    totals.bytes += frame.length;
  }

  #stored(): { count: number; bytes: number } {
    this.#totals ??= this.#sql
      .exec<{ count: number; bytes: number }>("SELECT count(*) AS count, coalesce(sum(length(frame)), 0) AS bytes FROM messages")
      .one();
    return this.#totals;
  }
}
