/**
 * Where `npm run keys` manages API keys: the local D1 database (through the same functions the Worker uses), or a
 * running gateway's admin API.
 */
import { createApiKey, listApiKeys, revokeApiKey } from "../../lib/api-keys.ts";
import { ACCOUNT_ID_PATTERN, type ApiKeyRecord, type CreatedApiKey } from "../../protocol/api-keys.ts";
import { withLocalDb } from "./local-d1.ts";

export interface KeyStore {
  /** Where the keys live, for messages. */
  readonly description: string;
  create(accountId: string, name?: string): Promise<CreatedApiKey>;
  list(accountId?: string): Promise<ApiKeyRecord[]>;
  /** Null when no active key has that id. */
  revoke(keyId: string): Promise<ApiKeyRecord | null>;
}

/** An operation that failed for a reason the user can act on; the CLI prints the message alone. */
export class KeyStoreError extends Error {
  override name = "KeyStoreError";
}

export function checkAccountId(accountId: string): void {
  if (!ACCOUNT_ID_PATTERN.test(accountId)) {
    throw new KeyStoreError(`invalid account id "${accountId}": use 1-63 characters of a-z, 0-9, _ and -, starting with a letter or digit`);
  }
}

export function checkKeyName(name: string): void {
  if (name.length < 1 || name.length > 100) throw new KeyStoreError("a key name is 1 to 100 characters");
}

export function localKeyStore(stateDir: string, options: { onMigrationLine?: (line: string) => void } = {}): KeyStore {
  const run = <T>(work: (db: D1Database) => Promise<T>) => withLocalDb(stateDir, work, options);
  return {
    description: `local D1 in ${stateDir}`,
    create: (accountId, name) => run((db) => createApiKey(db, { accountId, name })),
    list: (accountId) => run((db) => listApiKeys(db, accountId)),
    revoke: (keyId) => run((db) => revokeApiKey(db, keyId)),
  };
}

interface ErrorBody {
  error?: { code?: string; message?: string };
}

export function httpKeyStore(gatewayUrl: string, adminToken: string): KeyStore {
  const base = gatewayUrl.replace(/\/+$/, "");

  async function call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
    let response: Response;
    try {
      response = await fetch(base + path, {
        method,
        headers: { Authorization: `Bearer ${adminToken}`, ...(body !== undefined && { "Content-Type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      const cause = (error as { cause?: { message?: string } }).cause?.message;
      throw new KeyStoreError(`could not reach ${base}: ${cause ?? (error as Error).message}`);
    }
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new KeyStoreError(`${method} ${base}${path} answered HTTP ${response.status} with a body that is not JSON: ${text.slice(0, 200)}`);
    }
    if (!response.ok && response.status !== 404) {
      const { code, message } = (json as ErrorBody).error ?? {};
      throw new KeyStoreError(`${method} ${path} failed: HTTP ${response.status} ${code ?? ""}${message ? `: ${message}` : ""}`);
    }
    return { status: response.status, json: json as T };
  }

  return {
    description: `the admin API of ${base}`,
    async create(accountId, name) {
      const { status, json } = await call<CreatedApiKey>("POST", "/admin/keys", { account: accountId, ...(name && { name }) });
      if (status === 404) throw new KeyStoreError(`${base} has no /admin/keys route: is this a Reactor gateway?`);
      return json;
    },
    async list(accountId) {
      const query = accountId ? `?account=${encodeURIComponent(accountId)}` : "";
      const { status, json } = await call<{ keys: ApiKeyRecord[] }>("GET", `/admin/keys${query}`);
      if (status === 404) throw new KeyStoreError(`${base} has no /admin/keys route: is this a Reactor gateway?`);
      return json.keys;
    },
    async revoke(keyId) {
      const { status, json } = await call<ApiKeyRecord>("DELETE", `/admin/keys/${encodeURIComponent(keyId)}`);
      return status === 404 ? null : json;
    },
  };
}
