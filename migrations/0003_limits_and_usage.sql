-- Per-account limits. A NULL column means "the platform default" (vars LIMIT_* and SESSION_MAX_SECONDS); an
-- account without a row has every default. Written by PUT /admin/accounts/{account}/limits.
CREATE TABLE account_limits (
  account_id                    TEXT PRIMARY KEY,
  concurrent_sessions           INTEGER CHECK (concurrent_sessions >= 0),
  session_creations_per_minute  INTEGER CHECK (session_creations_per_minute >= 0),
  token_mints_per_minute        INTEGER CHECK (token_mints_per_minute >= 0),
  turn_credentials_per_minute   INTEGER CHECK (turn_credentials_per_minute >= 0),
  max_session_seconds           INTEGER CHECK (max_session_seconds >= 1),
  updated_at                    INTEGER NOT NULL
);

-- The billing ledger: one row per span a session spent holding a GPU (ACTIVE or RECONNECTING), written by the
-- session's Durable Object when the span ends. (session_id, segment_no) makes every write idempotent: a segment
-- written again after a retry or an eviction is ignored. Times are Unix ms; the price is the one in force when the
-- segment was written, so later price changes never rewrite history.
CREATE TABLE usage_segments (
  session_id      TEXT NOT NULL,
  segment_no      INTEGER NOT NULL,
  account_id      TEXT NOT NULL,
  api_key_id      TEXT NOT NULL,
  model           TEXT NOT NULL,
  state           TEXT NOT NULL CHECK (state IN ('ACTIVE', 'RECONNECTING')),
  started_at      INTEGER NOT NULL,
  ended_at        INTEGER NOT NULL CHECK (ended_at >= started_at),
  idle_ms         INTEGER NOT NULL CHECK (idle_ms >= 0),
  usd_per_second  REAL NOT NULL CHECK (usd_per_second >= 0),
  PRIMARY KEY (session_id, segment_no)
);

CREATE INDEX usage_segments_by_account ON usage_segments(account_id, started_at);
