-- An account-wide session creation rate next to the per-model one (issue: made-up model names multiplied the
-- per-model window). NULL = the platform default, LIMIT_ACCOUNT_SESSION_CREATIONS_PER_MINUTE.
ALTER TABLE account_limits ADD COLUMN account_session_creations_per_minute INTEGER CHECK (account_session_creations_per_minute >= 0);
