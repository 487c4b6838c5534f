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

  constructor(sql: SqlStorage, limits: MessageLimits) {
    this.#sql = sql;
    this.#limits = limits;
    sql.exec("CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, frame TEXT NOT NULL)");
  }

  /** `frame` is the serialized client frame, stored ready to send again. `lastSeq` is the last stored seq. */
  store(seq: number, lastSeq: number, frame: string): StoreResult {
    if (seq <= lastSeq) return "duplicate";
    if (seq > lastSeq + 1) return "gap";
    const { count, bytes } = this.#sql
      .exec<{ count: number; bytes: number }>("SELECT count(*) AS count, coalesce(sum(length(frame)), 0) AS bytes FROM messages")
      .one();
    if (count + 1 > this.#limits.maxStored || bytes + frame.length > this.#limits.maxStoredBytes) return "full";
    this.#sql.exec("INSERT INTO messages (seq, frame) VALUES (?, ?)", seq, frame);
    return "stored";
  }

  /** Frames the client has not acknowledged, oldest first. */
  unacknowledged(): string[] {
    return this.#sql.exec<{ frame: string }>("SELECT frame FROM messages ORDER BY seq").toArray().map((row) => row.frame);
  }

  acknowledge(seq: number): void {
    this.#sql.exec("DELETE FROM messages WHERE seq <= ?", seq);
  }

  clear(): void {
    this.#sql.exec("DELETE FROM messages");
  }
}
