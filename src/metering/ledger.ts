/**
 * The billing ledger in D1 (`usage_segments`): one row per span a session held a GPU. Writes are idempotent
 * (INSERT OR IGNORE on the session id and segment number), so a segment written again after a retry or an
 * eviction is never counted twice.
 */
import type { BilledState } from "../objects.ts";

export interface LedgerSegment {
  sessionId: string;
  segmentNo: number;
  accountId: string;
  apiKeyId: string;
  model: string;
  state: BilledState;
  startedAt: number;
  endedAt: number;
  idleMs: number;
  usdPerSecond: number;
}

export async function writeSegments(db: D1Database, segments: LedgerSegment[]): Promise<void> {
  if (segments.length === 0) return;
  const insert = db.prepare(
    `INSERT OR IGNORE INTO usage_segments
       (session_id, segment_no, account_id, api_key_id, model, state, started_at, ended_at, idle_ms, usd_per_second)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  await db.batch(
    segments.map((s) =>
      insert.bind(s.sessionId, s.segmentNo, s.accountId, s.apiKeyId, s.model, s.state, s.startedAt, s.endedAt, s.idleMs, s.usdPerSecond),
    ),
  );
}

type SegmentRow = {
  session_id: string;
  segment_no: number;
  account_id: string;
  api_key_id: string;
  model: string;
  state: BilledState;
  started_at: number;
  ended_at: number;
  idle_ms: number;
  usd_per_second: number;
};

export async function sessionSegments(db: D1Database, accountId: string, sessionId: string): Promise<LedgerSegment[]> {
  const { results } = await db
    .prepare("SELECT * FROM usage_segments WHERE session_id = ? AND account_id = ? ORDER BY segment_no")
    .bind(sessionId, accountId)
    .all<SegmentRow>();
  return results.map((row) => ({
    sessionId: row.session_id,
    segmentNo: row.segment_no,
    accountId: row.account_id,
    apiKeyId: row.api_key_id,
    model: row.model,
    state: row.state,
    startedAt: row.started_at,
    endedAt: row.ended_at,
    idleMs: row.idle_ms,
    usdPerSecond: row.usd_per_second,
  }));
}

export type GroupBy = "model" | "day";

/** Sums over a set of segments, in ms and USD. */
export interface UsageSums {
  sessions: number;
  billedMs: number;
  activeMs: number;
  idleMs: number;
  reconnectingMs: number;
  costUsd: number;
}

const SUMS = `
  count(DISTINCT session_id) AS sessions,
  total(ended_at - started_at) AS billed_ms,
  total(CASE WHEN state = 'ACTIVE' THEN ended_at - started_at - idle_ms ELSE 0 END) AS active_ms,
  total(idle_ms) AS idle_ms,
  total(CASE WHEN state = 'RECONNECTING' THEN ended_at - started_at ELSE 0 END) AS reconnecting_ms,
  total((ended_at - started_at) * usd_per_second) / 1000.0 AS cost_usd`;

const GROUP_KEYS: Record<GroupBy, string> = {
  model: "model",
  // A segment counts on the UTC day it started.
  day: "strftime('%Y-%m-%d', started_at / 1000, 'unixepoch')",
};

type SumsRow = { sessions: number; billed_ms: number; active_ms: number; idle_ms: number; reconnecting_ms: number; cost_usd: number };

const toSums = (row: SumsRow): UsageSums => ({
  sessions: row.sessions,
  billedMs: row.billed_ms,
  activeMs: row.active_ms,
  idleMs: row.idle_ms,
  reconnectingMs: row.reconnecting_ms,
  costUsd: row.cost_usd,
});

/** The account's usage of segments that started in [fromMs, toMs), per group and in total. */
export async function usageSums(
  db: D1Database,
  accountId: string,
  fromMs: number,
  toMs: number,
  groupBy: GroupBy,
): Promise<{ groups: (UsageSums & { key: string })[]; total: UsageSums }> {
  const where = "FROM usage_segments WHERE account_id = ? AND started_at >= ? AND started_at < ?";
  const [grouped, total] = await db.batch<SumsRow & { key: string }>([
    db.prepare(`SELECT ${GROUP_KEYS[groupBy]} AS key, ${SUMS} ${where} GROUP BY key ORDER BY key`).bind(accountId, fromMs, toMs),
    db.prepare(`SELECT ${SUMS} ${where}`).bind(accountId, fromMs, toMs),
  ]);
  return {
    groups: grouped!.results.map((row) => ({ key: row.key, ...toSums(row) })),
    total: toSums(total!.results[0]!),
  };
}
