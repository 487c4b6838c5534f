-- Accounts own API keys (and, later, sessions and usage). The id is a human-chosen slug such as "acme".
CREATE TABLE accounts (
  id          TEXT PRIMARY KEY,
  created_at  INTEGER NOT NULL
);

-- An API key is stored only as the SHA-256 of its full text; `prefix` (its first characters) is kept so a person
-- can tell keys apart in listings. `id` is public: it is carried in tokens and shown in listings.
CREATE TABLE api_keys (
  id          TEXT PRIMARY KEY,
  account_id  TEXT NOT NULL REFERENCES accounts(id),
  name        TEXT NOT NULL,
  key_hash    TEXT NOT NULL UNIQUE,
  prefix      TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  revoked_at  INTEGER
);

CREATE INDEX api_keys_by_account ON api_keys(account_id);
