/**
 * The API key format and the key records of the admin API (POST/GET /admin/keys) and `npm run keys`. A key is the
 * long-lived secret a developer's backend holds: `rk_` + 43 url-safe characters (32 random bytes); imported keys
 * may be longer. Only its SHA-256 is stored (lib/api-keys.ts).
 */

export const API_KEY_PREFIX = "rk_";
export const API_KEY_PATTERN = /^rk_[A-Za-z0-9_-]{43,128}$/;
export const ACCOUNT_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export interface ApiKeyRecord {
  id: string;
  account_id: string;
  name: string;
  prefix: string;
  created_at: number;
  revoked_at: number | null;
}

export interface CreatedApiKey extends ApiKeyRecord {
  /** The full key. It exists only in this response: it is never stored or shown again. */
  key: string;
}

/** True for anything shaped like an API key, even a malformed one (so it is refused with the right code). */
export function looksLikeApiKey(value: string): boolean {
  return value.startsWith(API_KEY_PREFIX);
}
