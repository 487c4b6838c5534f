/**
 * An account's limits: the platform defaults (vars, src/config.ts `limitDefaults`) with the account's overrides
 * from the D1 table `account_limits` on top. A NULL column keeps the default.
 */
import type { LimitSettings } from "../config.ts";

/** The account's own values; null (or absent) = the default. */
export type LimitOverrides = { [K in keyof LimitSettings]?: number | null };

const COLUMNS = {
  concurrentSessions: "concurrent_sessions",
  sessionCreationsPerMinute: "session_creations_per_minute",
  accountSessionCreationsPerMinute: "account_session_creations_per_minute",
  tokenMintsPerMinute: "token_mints_per_minute",
  turnCredentialsPerMinute: "turn_credentials_per_minute",
  maxSessionSeconds: "max_session_seconds",
} as const satisfies Record<keyof LimitSettings, string>;

const FIELDS = Object.keys(COLUMNS) as (keyof LimitSettings)[];

type OverridesRow = Record<(typeof COLUMNS)[keyof LimitSettings], number | null>;

export function applyOverrides(defaults: LimitSettings, overrides: LimitOverrides): LimitSettings {
  const limits = { ...defaults };
  for (const field of FIELDS) {
    const value = overrides[field];
    if (value !== null && value !== undefined) limits[field] = value;
  }
  return limits;
}

export async function readOverrides(db: D1Database, accountId: string): Promise<LimitOverrides> {
  const row = await db
    .prepare(`SELECT ${Object.values(COLUMNS).join(", ")} FROM account_limits WHERE account_id = ?`)
    .bind(accountId)
    .first<OverridesRow>();
  if (!row) return {};
  return Object.fromEntries(FIELDS.map((field) => [field, row[COLUMNS[field]]])) as LimitOverrides;
}

/** Merges `changes` into the account's row (fields left out keep their value; null restores the default). */
export async function writeOverrides(db: D1Database, accountId: string, changes: LimitOverrides, now: number): Promise<LimitOverrides> {
  const merged = { ...(await readOverrides(db, accountId)), ...changes };
  const values = FIELDS.map((field) => merged[field] ?? null);
  const columns = Object.values(COLUMNS);
  await db
    .prepare(
      `INSERT INTO account_limits (account_id, ${columns.join(", ")}, updated_at) VALUES (?, ${columns.map(() => "?").join(", ")}, ?)
       ON CONFLICT (account_id) DO UPDATE SET ${columns.map((column) => `${column} = excluded.${column}`).join(", ")}, updated_at = excluded.updated_at`,
    )
    .bind(accountId, ...values, now)
    .run();
  return Object.fromEntries(FIELDS.map((field, i) => [field, values[i]])) as LimitOverrides;
}
