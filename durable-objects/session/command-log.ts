/**
 * Commands from the client to the model, stored in the session's SQLite until the runtime acknowledges them.
 * Delivery is in order and exactly once: the client numbers commands 1, 2, 3…; anything but the next number is a
 * replay or a gap; the runtime acknowledges cumulatively and skips seqs it has already processed after a resume.
 */
import type { Command, CommandPolicy } from "../../protocol/common.ts";

export interface CommandLimits {
  maxWaiting: number;
  maxWaitingBytes: number;
}

export interface StoredCommand {
  seq: number;
  command: Command;
}

export type AcceptResult =
  | { kind: "duplicate" }
  | { kind: "gap"; expected: number }
  | { kind: "stored"; state: "waiting" | "delivered"; replaced: number[] }
  | { kind: "dropped"; reason: "policy" | "buffer_full" };

type Row = { seq: number; body: string };

/** A command's state as the client must learn it: final ones are kept (see `outcomes`) until the client has seen them. */
export interface CommandOutcome {
  seq: number;
  state: "waiting" | "delivered" | "acknowledged" | "dropped" | "replaced";
  error?: string;
}

/** How many of the latest seqs a reconnecting client is told the state of (if it has not said it saw them). */
export const COMMAND_REPLAY_WINDOW = 1024;
const toStored = ({ seq, body }: Row): StoredCommand => ({ seq, command: JSON.parse(body) as Command });

export class CommandLog {
  readonly #sql: SqlStorage;
  readonly #limits: CommandLimits;

  constructor(sql: SqlStorage, limits: CommandLimits) {
    this.#sql = sql;
    this.#limits = limits;
  }

  /**
   * `commands`: the ones not acknowledged by the runtime yet. `command_outcomes`: seqs that will never reach the
   * model (dropped, replaced), kept until the client says it has seen their state (`commands_seen`), so a client
   * whose socket died before their `command_status` still learns it; a seq in neither table was acknowledged.
   */
  static readonly schema = `CREATE TABLE IF NOT EXISTS commands (
      seq INTEGER PRIMARY KEY,
      type TEXT NOT NULL,
      body TEXT NOT NULL,
      bytes INTEGER NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('waiting', 'delivered'))
    );
    CREATE TABLE IF NOT EXISTS command_outcomes (seq INTEGER PRIMARY KEY, state TEXT NOT NULL, error TEXT);`;

  /** Seq `seq` will never reach the model: remembered until the client has seen it (one row; drops are rare). */
  recordOutcome(seq: number, state: "dropped" | "replaced", error?: string): void {
    this.#sql.exec("INSERT OR REPLACE INTO command_outcomes (seq, state, error) VALUES (?, ?, ?)", seq, state, error ?? null);
  }

  /**
   * The state of every seq after `seenThrough` and before `nextSeq` (at most the last COMMAND_REPLAY_WINDOW), oldest
   * first: what a reconnecting client is told, so no final state is lost with a socket.
   */
  statesAfter(seenThrough: number, nextSeq: number): CommandOutcome[] {
    const from = Math.max(seenThrough, nextSeq - 1 - COMMAND_REPLAY_WINDOW);
    if (from >= nextSeq - 1) return [];
    const known = new Map<number, CommandOutcome>();
    for (const { seq, state } of this.#sql.exec<{ seq: number; state: "waiting" | "delivered" }>(
      "SELECT seq, state FROM commands WHERE seq > ?",
      from,
    )) {
      known.set(seq, { seq, state });
    }
    for (const { seq, state, error } of this.#sql.exec<{ seq: number; state: "dropped" | "replaced"; error: string | null }>(
      "SELECT seq, state, error FROM command_outcomes WHERE seq > ?",
      from,
    )) {
      known.set(seq, { seq, state, ...(error !== null && { error }) });
    }
    const states: CommandOutcome[] = [];
    for (let seq = from + 1; seq < nextSeq; seq++) states.push(known.get(seq) ?? { seq, state: "acknowledged" });
    return states;
  }

  /**
   * The client has seen the final state of every command up to `seq`: their outcomes are forgotten, and so are
   * any older than the replay window (a client that never says). Returns whether a row was deleted.
   */
  forgetOutcomes(seq: number, nextSeq: number): boolean {
    const upTo = Math.max(seq, nextSeq - 1 - COMMAND_REPLAY_WINDOW);
    return this.#sql.exec("DELETE FROM command_outcomes WHERE seq <= ?", upTo).rowsWritten > 0;
  }

  /**
   * Takes command `seq` from the client. `nextSeq` is the next number expected; `deliverable` says whether the
   * runtime can receive it now. The caller advances its `nextSeq` on `stored` and `dropped`.
   */
  accept(seq: number, nextSeq: number, command: Command, policy: CommandPolicy, deliverable: boolean): AcceptResult {
    if (seq < nextSeq) return { kind: "duplicate" };
    if (seq > nextSeq) return { kind: "gap", expected: nextSeq };
    const body = JSON.stringify(command);
    if (deliverable) {
      this.#insert(seq, command.type, body, "delivered");
      return { kind: "stored", state: "delivered", replaced: [] };
    }
    if (policy === "drop") return { kind: "dropped", reason: "policy" };
    // Room is counted without the commands a replace would remove, and they are removed only if it fits: a
    // replace that is refused leaves them waiting.
    const replacing = policy === "replace" ? command.type : null;
    const { count, bytes } = this.#waitingTotals(replacing);
    if (count + 1 > this.#limits.maxWaiting || bytes + body.length > this.#limits.maxWaitingBytes) {
      return { kind: "dropped", reason: "buffer_full" };
    }
    const replaced = replacing === null ? [] : this.#removeWaiting(replacing);
    this.#insert(seq, command.type, body, "waiting");
    return { kind: "stored", state: "waiting", replaced };
  }

  /**
   * What a (re)connected runtime must get: every delivered command it has not acknowledged, plus the waiting ones
   * when `includeWaiting` (those become delivered). Oldest first.
   */
  takeUnacknowledged(includeWaiting: boolean): StoredCommand[] {
    const rows = this.#sql
      .exec<Row>(
        includeWaiting ? "SELECT seq, body FROM commands ORDER BY seq" : "SELECT seq, body FROM commands WHERE state = 'delivered' ORDER BY seq",
      )
      .toArray();
    if (includeWaiting) this.#sql.exec("UPDATE commands SET state = 'delivered' WHERE state = 'waiting'");
    return rows.map(toStored);
  }

  /** The waiting commands, oldest first, now marked delivered: sent when the session becomes ready. */
  flushWaiting(): StoredCommand[] {
    return this.#sql
      .exec<Row>("UPDATE commands SET state = 'delivered' WHERE state = 'waiting' RETURNING seq, body")
      .toArray()
      .map(toStored)
      .sort((a, b) => a.seq - b.seq);
  }

  /** Seqs of the commands buffered while the session was not ready. */
  waitingSeqs(): number[] {
    return this.#sql
      .exec<{ seq: number }>("SELECT seq FROM commands WHERE state = 'waiting' ORDER BY seq")
      .toArray()
      .map((row) => row.seq);
  }

  /** The runtime has every command up to `seq`; returns the seqs newly acknowledged. */
  acknowledge(seq: number): number[] {
    return this.#sql
      .exec<{ seq: number }>("DELETE FROM commands WHERE seq <= ? AND state = 'delivered' RETURNING seq", seq)
      .toArray()
      .map((row) => row.seq)
      .sort((a, b) => a - b);
  }

  /** The session ended: everything still stored is dropped; returns those seqs. */
  dropAll(): number[] {
    return this.#sql
      .exec<{ seq: number }>("DELETE FROM commands RETURNING seq")
      .toArray()
      .map((row) => row.seq);
  }

  #insert(seq: number, type: string, body: string, state: "waiting" | "delivered"): void {
    this.#sql.exec("INSERT INTO commands (seq, type, body, bytes, state) VALUES (?, ?, ?, ?, ?)", seq, type, body, body.length, state);
  }

  #removeWaiting(type: string): number[] {
    return this.#sql
      .exec<{ seq: number }>("DELETE FROM commands WHERE type = ? AND state = 'waiting' RETURNING seq", type)
      .toArray()
      .map((row) => row.seq);
  }

  /** Count and size of the waiting commands, leaving out those of type `except` (`type IS NOT NULL` keeps all). */
  #waitingTotals(except: string | null): { count: number; bytes: number } {
    return this.#sql
      .exec<{ count: number; bytes: number }>(
        "SELECT count(*) AS count, coalesce(sum(bytes), 0) AS bytes FROM commands WHERE state = 'waiting' AND type IS NOT ?",
        except,
      )
      .one();
  }
}
