/** The session's timeline, for support: what happened, when, and why. Readable at GET /v1/sessions/{id}/events. */
export interface SessionEvent {
  at: number;
  type: string;
  detail?: unknown;
}

const MAX_EVENTS = 1000;
const PRUNE_EVERY = 100;

export class EventLog {
  readonly #sql: SqlStorage;
  /** Events recorded since this object last woke: pruning runs every PRUNE_EVERY of them, not per event. */
  #recorded = 0;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  static readonly schema = `CREATE TABLE IF NOT EXISTS events (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      at INTEGER NOT NULL,
      type TEXT NOT NULL,
      detail TEXT
    );`;

  record(at: number, type: string, detail?: unknown): void {
    this.#sql.exec("INSERT INTO events (at, type, detail) VALUES (?, ?, ?)", at, type, detail === undefined ? null : JSON.stringify(detail));
    // A session that flaps for hours keeps its most recent history, bounded.
    if (++this.#recorded % PRUNE_EVERY === 0) {
      this.#sql.exec("DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?", MAX_EVENTS);
    }
  }

  list(): SessionEvent[] {
    return this.#sql
      .exec<{ at: number; type: string; detail: string | null }>("SELECT at, type, detail FROM events ORDER BY id")
      .toArray()
      .map(({ at, type, detail }) => ({ at, type, ...(detail !== null && { detail: JSON.parse(detail) }) }));
  }
}
