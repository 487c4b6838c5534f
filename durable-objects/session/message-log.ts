/**
 * Model → client messages, stored until the client acknowledges them, so a client that reconnects gets every
 * message exactly once, in order. The runtime numbers messages 1, 2, 3… per session.
 */
export interface MessageLimits {
  maxStored: number;
  maxStoredBytes: number;
}

export type StoreResult = "stored" | "duplicate" | "gap" | "full";

export class MessageLog {
  readonly #sql: SqlStorage;
  readonly #limits: MessageLimits;
  /** Count and size of what is stored, read once per wake-up and then kept in step with every change. */
  #totals: { count: number; bytes: number } | undefined;

  constructor(sql: SqlStorage, limits: MessageLimits) {
    this.#sql = sql;
    this.#limits = limits;
    sql.exec("CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, frame TEXT NOT NULL)");
  }

  /** `frame` is the serialized client frame, stored ready to send again. `lastSeq` is the last stored seq. */
  store(seq: number, lastSeq: number, frame: string): StoreResult {
    if (seq <= lastSeq) return "duplicate";
    if (seq > lastSeq + 1) return "gap";
    const totals = this.#stored();
    if (totals.count + 1 > this.#limits.maxStored || totals.bytes + frame.length > this.#limits.maxStoredBytes) return "full";
    this.#sql.exec("INSERT INTO messages (seq, frame) VALUES (?, ?)", seq, frame);
    totals.count++;
    totals.bytes += frame.length;
    return "stored";
  }

  /** Frames the client has not acknowledged, oldest first. */
  unacknowledged(): string[] {
    return this.#sql.exec<{ frame: string }>("SELECT frame FROM messages ORDER BY seq").toArray().map((row) => row.frame);
  }

  acknowledge(seq: number): void {
    const totals = this.#stored();
    for (const { bytes } of this.#sql.exec<{ bytes: number }>("DELETE FROM messages WHERE seq <= ? RETURNING length(frame) AS bytes", seq)) {
      totals.count--;
      totals.bytes -= bytes;
    }
  }

  #stored(): { count: number; bytes: number } {
    return (this.#totals ??= this.#sql
      .exec<{ count: number; bytes: number }>("SELECT count(*) AS count, coalesce(sum(length(frame)), 0) AS bytes FROM messages")
      .one());
  }
}
