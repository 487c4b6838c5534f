/**
 * One Durable Object per account: its quotas, and nothing else. It holds the account's session slots (concurrent
 * sessions, pooled across its API keys; waiting and connecting sessions hold one too), the log of session
 * creations (an exact sliding 60 s window, counted per model and for the whole account), the number of sessions each scoped token has created, the
 * log of token mints per API key, and the log of TURN credentials issued to the account.
 *
 * Exact under concurrency: every check and the write that takes the quota happen in one synchronous stretch of
 * this single-threaded object, with no await in between, so two requests can never both take the last slot.
 *
 * Slots are released by the session's own object on every way a session ends (it retries until the release is
 * confirmed). As a safety net for a slot whose session never came to exist (the creation request failed after the
 * slot was taken), the alarm asks each session now and then whether it still holds its slot.
 */
import { DurableObject } from "cloudflare:workers";
import { CLOCK_TOLERANCE_SECONDS, limitDefaults, type LimitSettings } from "../../src/config.ts";
import { applyOverrides, readOverrides } from "../../src/limits/account-settings.ts";
import { sessionRelay, type LimitDecision, type LimitRefusal, type SlotRequest } from "../../src/objects.ts";
import { fail, ok } from "../../protocol/result.ts";
import { Clock } from "../clock.ts";

export type { LimitDecision, LimitRefusal, SlotRequest } from "../../src/objects.ts";

export interface AccountLimitsStatus {
  limits: LimitSettings;
  sessions: { session_id: string; model: string; acquired_at: number }[];
  creations_last_minute: Record<string, number>;
}

const WINDOW_MS = 60_000;
/** How often a held slot's session is asked whether it still holds it (the safety net above). */
const AUDIT_INTERVAL_MS = 120_000;
/** Overrides read from D1 are trusted this long; PUT /admin/accounts/{id}/limits also drops them at once. */
const SETTINGS_TTL_MS = 60_000;

export class AccountLimits extends DurableObject<Env> {
  readonly #clock: Clock;
  readonly #sql: SqlStorage;
  #settings: { limits: LimitSettings; loadedAt: number } | undefined;
  /** When the alarm is set for (test-clock time), as this object last set it. */
  #alarmAt: number | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#clock = new Clock(ctx.storage, env);
    this.#sql = ctx.storage.sql;
    this.#sql.exec(`
      CREATE TABLE IF NOT EXISTS slots (
        session_id TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        acquired_at INTEGER NOT NULL,
        checked_at INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS creations (id INTEGER PRIMARY KEY AUTOINCREMENT, model TEXT NOT NULL, at INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS creations_by_model ON creations(model, at);
      CREATE TABLE IF NOT EXISTS token_sessions (token_id TEXT PRIMARY KEY, sessions INTEGER NOT NULL, keep_until INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS mints (id INTEGER PRIMARY KEY AUTOINCREMENT, api_key_id TEXT NOT NULL, at INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS mints_by_key ON mints(api_key_id, at);
      CREATE TABLE IF NOT EXISTS turn_issues (id INTEGER PRIMARY KEY AUTOINCREMENT, subject TEXT NOT NULL, at INTEGER NOT NULL);
    `);
    void ctx.blockConcurrencyWhile(async () => {
      const alarm = await ctx.storage.getAlarm();
      this.#alarmAt = alarm === null ? null : alarm - Date.now() + this.#clock.now();
    });
  }

  // ── RPC ──────────────────────────────────────────────────────────────────────────────────────────────────────

  /** Takes a session slot for `request.sessionId`, if every limit allows it. Idempotent per session and epoch. */
  async acquire(request: SlotRequest): Promise<LimitDecision> {
    const limits = await this.#limits(request.accountId);
    // From here to the end: synchronous, so the checks and the writes that take the quota are one step.
    const now = this.#clock.now();
    if (this.#holdsSlot(request.sessionId, request.epoch, now)) return ok(limits);
    const refusal = this.#refusal(request, limits, now);
    if (refusal) return refusal;
    this.#sql.exec(
      "INSERT INTO slots (session_id, model, epoch, acquired_at, checked_at) VALUES (?, ?, ?, ?, ?)",
      request.sessionId,
      request.model,
      request.epoch,
      now,
      now,
    );
    if (request.creation) this.#recordCreation(request.model, request.creation, now);
    this.#ensureAlarm(now + Math.min(WINDOW_MS, AUDIT_INTERVAL_MS));
    return ok(limits);
  }

  /** The session's run `epoch` (or an earlier one) ended: its slot is free. Idempotent. */
  async release(sessionId: string, epoch: number): Promise<void> {
    this.#sql.exec("DELETE FROM slots WHERE session_id = ? AND epoch <= ?", sessionId, epoch);
  }

  /** Counts a token mint by `apiKeyId`, if the key's rate allows it. */
  async recordMint(accountId: string, apiKeyId: string): Promise<LimitDecision> {
    const limits = await this.#limits(accountId);
    const now = this.#clock.now();
    const retryAfter = this.#windowRetryAfter("mints", "api_key_id", apiKeyId, limits.tokenMintsPerMinute, now);
    if (retryAfter !== undefined) {
      return refuse("RATE_LIMITED", `This API key may mint ${limits.tokenMintsPerMinute} tokens per minute.`, retryAfter);
    }
    this.#sql.exec("INSERT INTO mints (api_key_id, at) VALUES (?, ?)", apiKeyId, now);
    this.#ensureAlarm(now + WINDOW_MS);
    return ok(limits);
  }

  /** Counts one TURN credential issued to the account (`subject` says for what), if its rate allows it. */
  async recordTurnIssue(accountId: string, subject: string): Promise<LimitDecision> {
    const limits = await this.#limits(accountId);
    const now = this.#clock.now();
    const retryAfter = this.#windowRetryAfter("turn_issues", null, null, limits.turnCredentialsPerMinute, now);
    if (retryAfter !== undefined) {
      return refuse("RATE_LIMITED", `The account may be issued ${limits.turnCredentialsPerMinute} TURN credentials per minute.`, retryAfter);
    }
    this.#sql.exec("INSERT INTO turn_issues (subject, at) VALUES (?, ?)", subject, now);
    this.#ensureAlarm(now + WINDOW_MS);
    return ok(limits);
  }

  async status(accountId: string): Promise<AccountLimitsStatus> {
    const limits = await this.#limits(accountId);
    const since = this.#clock.now() - WINDOW_MS;
    const creations = this.#sql
      .exec<{ model: string; n: number }>("SELECT model, count(*) AS n FROM creations WHERE at > ? GROUP BY model ORDER BY model", since)
      .toArray();
    return {
      limits,
      sessions: this.#sql
        .exec<{ session_id: string; model: string; acquired_at: number }>("SELECT session_id, model, acquired_at FROM slots ORDER BY acquired_at")
        .toArray(),
      creations_last_minute: Object.fromEntries(creations.map(({ model, n }) => [model, n])),
    };
  }

  /** The account's overrides changed in D1: read them again on the next request. */
  async reload(): Promise<void> {
    this.#settings = undefined;
  }

  // ── Housekeeping ─────────────────────────────────────────────────────────────────────────────────────────────

  override async alarm(): Promise<void> {
    this.#alarmAt = null;
    const now = this.#clock.now();
    this.#sql.exec("DELETE FROM creations WHERE at <= ?", now - WINDOW_MS);
    this.#sql.exec("DELETE FROM mints WHERE at <= ?", now - WINDOW_MS);
    this.#sql.exec("DELETE FROM turn_issues WHERE at <= ?", now - WINDOW_MS);
    this.#sql.exec("DELETE FROM token_sessions WHERE keep_until <= ?", now);
    await this.#auditSlots(now);
    const next = this.#nextHousekeeping();
    if (next !== null) this.#ensureAlarm(Math.max(next, now + 1000));
  }

  /** When the oldest entry leaves its window, a token's count may be forgotten, or a slot is due for its check. */
  #nextHousekeeping(): number | null {
    const times = [
      this.#scalar("SELECT min(at) + ? AS v FROM creations", WINDOW_MS),
      this.#scalar("SELECT min(at) + ? AS v FROM mints", WINDOW_MS),
      this.#scalar("SELECT min(at) + ? AS v FROM turn_issues", WINDOW_MS),
      this.#scalar("SELECT min(keep_until) AS v FROM token_sessions"),
      this.#scalar("SELECT min(checked_at) + ? AS v FROM slots", AUDIT_INTERVAL_MS),
    ].filter((time): time is number => time !== null);
    return times.length > 0 ? Math.min(...times) : null;
  }

  #scalar(query: string, ...bindings: number[]): number | null {
    return this.#sql.exec<{ v: number | null }>(query, ...bindings).one().v;
  }

  /** Slots not checked for a while: each session is asked whether it still holds its slot. */
  async #auditSlots(now: number): Promise<void> {
    const due = this.#sql
      .exec<{ session_id: string; epoch: number }>("SELECT session_id, epoch FROM slots WHERE checked_at <= ?", now - AUDIT_INTERVAL_MS)
      .toArray();
    for (const { session_id, epoch } of due) {
      const held = await this.#sessionHolds(session_id, epoch);
      if (held) this.#sql.exec("UPDATE slots SET checked_at = ? WHERE session_id = ?", this.#clock.now(), session_id);
      else this.#sql.exec("DELETE FROM slots WHERE session_id = ? AND epoch <= ?", session_id, epoch);
    }
  }

  async #sessionHolds(sessionId: string, epoch: number): Promise<boolean> {
    try {
      return await sessionRelay(this.env, sessionId).holdsAccountSlot(epoch);
    } catch (error) {
      console.error("slot audit: session did not answer; keeping its slot", sessionId, String(error));
      return true;
    }
  }

  #ensureAlarm(at: number): void {
    if (this.#alarmAt !== null && this.#alarmAt <= at) return;
    this.#alarmAt = at;
    // The alarm runs on real time; the test clock only decides what has expired when it fires.
    void this.ctx.storage.setAlarm(Date.now() + Math.max(0, at - this.#clock.now()));
  }

  // ── Checks ───────────────────────────────────────────────────────────────────────────────────────────────────

  /** The session already holds a slot (a retried request, or a restart whose earlier release is still due). */
  #holdsSlot(sessionId: string, epoch: number, now: number): boolean {
    const held = this.#sql.exec<{ epoch: number }>("SELECT epoch FROM slots WHERE session_id = ?", sessionId).toArray()[0];
    if (!held) return false;
    if (held.epoch < epoch)
      this.#sql.exec("UPDATE slots SET epoch = ?, acquired_at = ?, checked_at = ? WHERE session_id = ?", epoch, now, now, sessionId);
    return true;
  }

  /** Why `request` may not take a slot now, or undefined if it may. The token's cap first: waiting never helps it. */
  #refusal(request: SlotRequest, limits: LimitSettings, now: number): LimitDecision | undefined {
    const { creation } = request;
    if (creation && creation.maxSessions !== null && this.#tokenSessions(creation.tokenId) >= creation.maxSessions) {
      return refuse("TOKEN_SESSION_LIMIT", `This token may create ${creation.maxSessions} sessions, and has; mint a new token.`);
    }
    const held = this.#sql.exec<{ n: number }>("SELECT count(*) AS n FROM slots").one().n;
    if (held >= limits.concurrentSessions) {
      // No retry_after: nobody knows when one of the account's sessions will end. Its own code, so a client does
      // not mistake it for a rate limit and sleep on a number the gateway would have had to make up.
      return refuse(
        "CONCURRENCY_LIMIT",
        `The account has ${held} sessions (waiting or running) of the ${limits.concurrentSessions} it may have at once; end one first.`,
      );
    }
    if (!creation) return undefined;
    const perModel = this.#windowRetryAfter("creations", "model", request.model, limits.sessionCreationsPerMinute, now);
    if (perModel !== undefined) {
      return refuse("RATE_LIMITED", `The account may create ${limits.sessionCreationsPerMinute} sessions of ${request.model} per minute.`, perModel);
    }
    // Every model's creations together: the per-model window alone is multiplied by each model name a client uses.
    const perAccount = this.#windowRetryAfter("creations", null, null, limits.accountSessionCreationsPerMinute, now);
    if (perAccount === undefined) return undefined;
    return refuse(
      "RATE_LIMITED",
      `The account may create ${limits.accountSessionCreationsPerMinute} sessions per minute across all models.`,
      perAccount,
    );
  }

  #tokenSessions(tokenId: string): number {
    return this.#sql.exec<{ sessions: number }>("SELECT sessions FROM token_sessions WHERE token_id = ?", tokenId).toArray()[0]?.sessions ?? 0;
  }

  /**
   * Sliding window of the last 60 s in `table` (only rows whose `column` is `key`, when given): undefined if one
   * more entry fits under `limit`, else the seconds until enough entries have left the window for one to fit.
   * Entries older than the window are dropped.
   */
  #windowRetryAfter(
    table: "creations" | "mints" | "turn_issues",
    column: "model" | "api_key_id" | null,
    key: string | null,
    limit: number,
    now: number,
  ): number | undefined {
    const since = now - WINDOW_MS;
    const where = column === null ? "1 = 1" : `${column} = ?`;
    const keyed = column === null ? [] : [key!];
    this.#sql.exec(`DELETE FROM ${table} WHERE ${where} AND at <= ?`, ...keyed, since);
    const count = this.#sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table} WHERE ${where}`, ...keyed).one().n;
    if (count < limit) return undefined;
    if (limit === 0) return WINDOW_MS / 1000;
    // The entry whose leaving makes room: the (count - limit + 1)-th oldest.
    const { at } = this.#sql
      .exec<{ at: number }>(`SELECT at FROM ${table} WHERE ${where} ORDER BY at LIMIT 1 OFFSET ?`, ...keyed, count - limit)
      .one();
    return Math.max(1, Math.ceil((at + WINDOW_MS - now) / 1000));
  }

  #recordCreation(model: string, creation: NonNullable<SlotRequest["creation"]>, now: number): void {
    this.#sql.exec("INSERT INTO creations (model, at) VALUES (?, ?)", model, now);
    if (creation.maxSessions === null) return;
    // Kept while the token can still be presented (its expiry plus the verifier's clock tolerance).
    const keepUntil = (creation.tokenExpiresAt + CLOCK_TOLERANCE_SECONDS) * 1000 + WINDOW_MS;
    this.#sql.exec(
      `INSERT INTO token_sessions (token_id, sessions, keep_until) VALUES (?, 1, ?)
       ON CONFLICT (token_id) DO UPDATE SET sessions = sessions + 1`,
      creation.tokenId,
      keepUntil,
    );
  }

  /** The account's limits: defaults with its D1 overrides, cached briefly. A D1 failure falls back, never blocks. */
  async #limits(accountId: string): Promise<LimitSettings> {
    const now = this.#clock.now();
    if (this.#settings && now - this.#settings.loadedAt < SETTINGS_TTL_MS) return this.#settings.limits;
    const defaults = limitDefaults(this.env);
    try {
      this.#settings = { limits: applyOverrides(defaults, await readOverrides(this.env.DB, accountId)), loadedAt: now };
    } catch (error) {
      console.error("account limits: reading overrides failed; using the last known or the defaults", accountId, String(error));
      this.#settings = { limits: this.#settings?.limits ?? defaults, loadedAt: now };
    }
    return this.#settings.limits;
  }
}

function refuse(code: LimitRefusal["code"], message: string, retryAfter?: number): LimitDecision {
  return fail(code, message, retryAfter);
}
