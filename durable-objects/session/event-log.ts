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

  constructor(sql: SqlStorage) {
    this.#sql = sql;
    sql.exec(`CREATE TABLE IF NOT EXISTS events (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      at INTEGER NOT NULL,
      type TEXT NOT NULL,
      detail TEXT
    )`);
  }

  record(at: number, type: string, detail?: unknown): void {
    const { id } = this.#sql
      .exec<{ id: number }>(
        "INSERT INTO events (at, type, detail) VALUES (?, ?, ?) RETURNING id",
        at,
        type,
        detail === undefined ? null : JSON.stringify(detail),
      )
      .one();
    // A session that flaps for hours keeps its most recent history, bounded; pruned now and then, not per event.
    if (id % PRUNE_EVERY === 0) this.#sql.exec("DELETE FROM events WHERE id <= ?", id - MAX_EVENTS);
  }

  list(): SessionEvent[] {
    return this.#sql
      .exec<{ at: number; type: string; detail: string | null }>("SELECT at, type, detail FROM events ORDER BY id")
      .toArray()
      .map(({ at, type, detail }) => ({ at, type, ...(detail !== null && { detail: JSON.parse(detail) }) }));
  }
}
