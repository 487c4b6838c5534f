/**
 * The API key store on D1: only a key's SHA-256 is stored. These functions take a D1Database so the Worker and the
 * `npm run keys` CLI (through wrangler's platform proxy) share one code path. The key format and the record shapes
 * are protocol/api-keys.ts.
 */
import { ACCOUNT_ID_PATTERN, API_KEY_PATTERN, API_KEY_PREFIX, type ApiKeyRecord, type CreatedApiKey } from "../protocol/api-keys.ts";
import { randomId, sha256Hex } from "./encoding.ts";

const KEY_RANDOM_BYTES = 32;

export function generateApiKey(): string {
  return API_KEY_PREFIX + randomId(KEY_RANDOM_BYTES);
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

export async function createApiKey(db: D1Database, options: { accountId: string; name?: string; key?: string }): Promise<CreatedApiKey> {
  const key = options.key ?? generateApiKey();
  if (!API_KEY_PATTERN.test(key)) throw new TypeError("an API key must be rk_ followed by at least 43 url-safe characters");
  if (!ACCOUNT_ID_PATTERN.test(options.accountId)) throw new TypeError("an account id is 1-63 characters of a-z, 0-9, _ and -");
  const record: ApiKeyRecord = {
    id: `key_${randomId(12)}`,
    account_id: options.accountId,
    name: options.name ?? "default",
    prefix: key.slice(0, 10),
    created_at: nowSeconds(),
    revoked_at: null,
  };
  const hash = await sha256Hex(key);
  await db.batch([
    db.prepare("INSERT OR IGNORE INTO accounts (id, created_at) VALUES (?, ?)").bind(record.account_id, record.created_at),
    db
      .prepare("INSERT INTO api_keys (id, account_id, name, key_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?, ?)")
      .bind(record.id, record.account_id, record.name, hash, record.prefix, record.created_at),
  ]);
  return { ...record, key };
}

/** Makes sure `key` is a valid key of `accountId` (used to seed the dev key); returns false if it already was. */
export async function ensureApiKey(db: D1Database, accountId: string, key: string, name: string): Promise<boolean> {
  const existing = await findActiveApiKey(db, key);
  if (existing?.account_id === accountId) return false;
  if (existing) throw new Error(`that key already belongs to account ${existing.account_id}`);
  const hash = await sha256Hex(key);
  await db.prepare("DELETE FROM api_keys WHERE key_hash = ?").bind(hash).run(); // a revoked copy of it
  await createApiKey(db, { accountId, key, name });
  return true;
}

export async function findActiveApiKey(db: D1Database, key: string): Promise<ApiKeyRecord | null> {
  if (!API_KEY_PATTERN.test(key)) return null;
  return db
    .prepare("SELECT id, account_id, name, prefix, created_at, revoked_at FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL")
    .bind(await sha256Hex(key))
    .first<ApiKeyRecord>();
}

export async function listApiKeys(db: D1Database, accountId?: string): Promise<ApiKeyRecord[]> {
  const columns = "id, account_id, name, prefix, created_at, revoked_at";
  const statement = accountId
    ? db.prepare(`SELECT ${columns} FROM api_keys WHERE account_id = ? ORDER BY created_at, id`).bind(accountId)
    : db.prepare(`SELECT ${columns} FROM api_keys ORDER BY account_id, created_at, id`);
  const { results } = await statement.all<ApiKeyRecord>();
  return results;
}

/** Revokes a key at once; returns the revoked record, or null if no active key has that id. */
export async function revokeApiKey(db: D1Database, keyId: string): Promise<ApiKeyRecord | null> {
  return db
    .prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING id, account_id, name, prefix, created_at, revoked_at")
    .bind(nowSeconds(), keyId)
    .first<ApiKeyRecord>();
}
