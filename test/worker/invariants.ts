/**
 * What the gateway holds, read straight from its stores, for tests that must prove something did NOT change (an
 * attack stored nothing) or that nothing leaked (no GPU slot, no account slot, no billing segment lost or doubled).
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { ModelPool } from "../../durable-objects/pool/model-pool.ts";
import { limitsStub } from "./limits-helpers.ts";
import { poolStub, sessionStub } from "./scripted.ts";

/** A session object's stored record, its negotiation and its event count (undefined fields: nothing stored). */
export async function sessionStore(sessionId: string) {
  return runInDurableObject(sessionStub(sessionId), (_relay: unknown, state: DurableObjectState) => {
    const tables = state.storage.sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\'")
      .toArray()
      .map((row) => row.name);
    const count = (table: string) =>
      tables.includes(table) ? state.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table}`).one().n : 0;
    return {
      record: state.storage.kv.get<Record<string, unknown>>("session"),
      negotiation: state.storage.kv.get<Record<string, unknown>>("negotiation"),
      tables,
      events: count("events"),
      commands: count("commands"),
      messages: count("messages"),
      candidates: count("candidates"),
      pendingSegments: count("pending_segments"),
    };
  });
}

/** Whether a session object holds nothing at all: no record and no tables (a guessed id must leave no trace). */
export async function storesNothing(sessionId: string): Promise<boolean> {
  const store = await sessionStore(sessionId);
  return store.record === undefined && store.negotiation === undefined && store.tables.length === 0;
}

/**
 * An account's limits object: the slots it holds (which session, which run) and how many creations, mints and TURN
 * issues it ever logged (AUTOINCREMENT counters: pruning the sliding windows does not move them).
 */
export async function accountStore(account: string) {
  return runInDurableObject(limitsStub(account), (_limits: unknown, state: DurableObjectState) => {
    const sql = state.storage.sql;
    const sequence = Object.fromEntries(
      sql
        .exec<{ name: string; seq: number }>("SELECT name, seq FROM sqlite_sequence")
        .toArray()
        .map((row) => [row.name, row.seq]),
    );
    return {
      slots: sql.exec<{ session_id: string; epoch: number }>("SELECT session_id, epoch FROM slots ORDER BY session_id").toArray(),
      tokenSessions: sql.exec<{ token_id: string; sessions: number }>("SELECT token_id, sessions FROM token_sessions ORDER BY token_id").toArray(),
      creations: sequence.creations ?? 0,
      mints: sequence.mints ?? 0,
      turnIssues: sequence.turn_issues ?? 0,
    };
  });
}

/** The session ids holding a slot of the account. */
export async function accountSlots(account: string): Promise<string[]> {
  return (await accountStore(account)).slots.map((slot) => slot.session_id);
}

/** A model pool's assignments (session → runtime) and queue, in order. */
export async function poolStore(model: string) {
  return runInDurableObject(poolStub(model), (_pool: ModelPool, state: DurableObjectState) => {
    const sql = state.storage.sql;
    return {
      assignments: sql
        .exec<{ session_id: string; runtime_id: string }>("SELECT session_id, runtime_id FROM assignments ORDER BY session_id")
        .toArray(),
      queue: sql
        .exec<{ session_id: string }>("SELECT session_id FROM queue ORDER BY position")
        .toArray()
        .map((row) => row.session_id),
      runtimes: sql.exec<{ id: string; slots: number; connected: number }>("SELECT id, slots, connected FROM runtimes ORDER BY id").toArray(),
    };
  });
}

export type LedgerRow = { segment_no: number; state: string; started_at: number; ended_at: number; idle_ms: number };

/** The session's segments in the D1 ledger. */
export async function ledgerRows(sessionId: string): Promise<LedgerRow[]> {
  const { results } = await env.DB.prepare(
    "SELECT segment_no, state, started_at, ended_at, idle_ms FROM usage_segments WHERE session_id = ? ORDER BY segment_no",
  )
    .bind(sessionId)
    .all<LedgerRow>();
  return results;
}

/** The D1 rows that belong to `accounts`: accounts, API keys (revocation included), limit overrides and usage. */
export async function d1Rows(accounts: string[]) {
  const marks = accounts.map(() => "?").join(", ");
  const rows = async (sql: string) =>
    (
      await env.DB.prepare(sql)
        .bind(...accounts)
        .all()
    ).results;
  return {
    accounts: await rows(`SELECT id FROM accounts WHERE id IN (${marks}) ORDER BY id`),
    apiKeys: await rows(`SELECT id, account_id, revoked_at FROM api_keys WHERE account_id IN (${marks}) ORDER BY id`),
    limits: await rows(`SELECT * FROM account_limits WHERE account_id IN (${marks}) ORDER BY account_id`),
    usage: await rows(`SELECT session_id, segment_no FROM usage_segments WHERE account_id IN (${marks}) ORDER BY session_id, segment_no`),
  };
}
