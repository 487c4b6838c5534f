/**
 * The local secrets file (`.dev.vars`) that `npm start` hands to `wrangler dev`. A missing file is created with fresh
 * secrets; an existing one is kept as it is, with only missing entries appended.
 */
import { appendFile, readFile, writeFile } from "node:fs/promises";
import { parseEnv } from "node:util";
import { randomId } from "../../lib/encoding.ts";
import { generateSigningKey } from "../../lib/signing-keys.ts";
import { API_KEY_PATTERN } from "../../protocol/api-keys.ts";

/**
 * The API key `npm start` seeds for account `dev` unless DEV_API_KEY says otherwise. It is public (it is in the
 * README), so it must never be an active key on a deployed gateway.
 */
export const DEFAULT_DEV_API_KEY = "rk_dev_local-development-key-not-for-production-use";

export const REQUIRED_DEV_VARS = ["JWT_SIGNING_KEYS", "ADMIN_TOKEN", "RUNTIME_TOKENS", "UPLOAD_SIGNING_SECRET", "DEV_API_KEY"] as const;
type DevVarName = (typeof REQUIRED_DEV_VARS)[number];

export interface DevVars {
  path: string;
  created: boolean;
  /** Entries appended to an existing file because it lacked them. */
  added: DevVarName[];
  /** The file's values after the update. */
  values: Record<string, string>;
}

async function freshValue(name: DevVarName, devApiKey: string): Promise<string> {
  switch (name) {
    case "JWT_SIGNING_KEYS":
      return `'${JSON.stringify({ keys: [await generateSigningKey()] })}'`;
    case "ADMIN_TOKEN":
      return randomId(32);
    case "RUNTIME_TOKENS":
      return `rt_${randomId(32)}`; // what GPU runtimes present on their sockets (src/http/middleware/authenticate.ts)
    case "UPLOAD_SIGNING_SECRET":
      return randomId(32); // signs presigned upload URLs (src/uploads/signing.ts)
    case "DEV_API_KEY":
      return devApiKey;
  }
}

const HEADER = [
  "# Local secrets for `wrangler dev`, written by `npm start`. Never commit this file.",
  "# JWT_SIGNING_KEYS: private JWK set, newest first. ADMIN_TOKEN: guards /admin/*.",
  "# RUNTIME_TOKENS: credentials of GPU runtimes (comma-separated). UPLOAD_SIGNING_SECRET: signs upload URLs.",
  "# DEV_API_KEY: API key seeded for account dev.",
  "",
];

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** Makes sure `path` holds every required secret. `devApiKey` is used only when the file has no DEV_API_KEY yet. */
export async function ensureDevVars(path: string, devApiKey: string = DEFAULT_DEV_API_KEY): Promise<DevVars> {
  const existing = await readIfExists(path);
  const current = existing === undefined ? {} : (parseEnv(existing) as Record<string, string>);
  const added = REQUIRED_DEV_VARS.filter((name) => !current[name]);
  const lines = await Promise.all(added.map(async (name) => `${name}=${await freshValue(name, devApiKey)}`));
  if (existing === undefined) {
    await writeFile(path, [...HEADER, ...lines, ""].join("\n"), { mode: 0o600 });
  } else if (lines.length > 0) {
    const separator = existing === "" || existing.endsWith("\n") ? "" : "\n";
    await appendFile(path, `${separator}# Added by npm start:\n${lines.join("\n")}\n`);
  }
  const values = parseEnv(await readFile(path, "utf8")) as Record<string, string>;
  return { path, created: existing === undefined, added: existing === undefined ? [] : added, values };
}

/** Throws a readable error if `key` could never be an API key. */
export function checkDevApiKey(key: string, source: string): void {
  if (!API_KEY_PATTERN.test(key)) {
    throw new Error(
      `${source} is not a valid API key: it must be rk_ followed by 43 to 128 characters of A-Z, a-z, 0-9, _ and - ` +
        `(for example ${DEFAULT_DEV_API_KEY}).`,
    );
  }
}
