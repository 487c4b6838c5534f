/**
 * `npm run keys -- <command>`: manage API keys (local D1 by default, or a gateway's admin API with --url) and make
 * token signing keys.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { generateSigningKey } from "../lib/signing-keys.ts";
import type { ApiKeyRecord } from "../protocol/api-keys.ts";
import { MAX_TOKEN_LIFETIME_SECONDS } from "../protocol/http.ts";
import { SIGNING_ALGORITHMS, type SigningAlgorithm } from "../protocol/signing-keys.ts";
import { checkAccountId, checkKeyName, httpKeyStore, KeyStoreError, localKeyStore, type KeyStore } from "./lib/key-store.ts";
import { DEFAULT_STATE_DIR } from "./lib/paths.ts";

const HELP = `Manage API keys and token signing keys.

Usage: npm run keys -- <command> [options]

Commands:
  create --account <id> [--name <name>]   Create an API key; the full key is printed once, here only.
  list [--account <id>]                   List API keys (ids, prefixes, status; never the keys).
  revoke <key_id>                         Revoke an API key; it stops working at once.
  signing-key [--alg ES256|EdDSA]         Print a new private JWK for JWT_SIGNING_KEYS, with rotation steps.

Where keys live:
  (default)                 The local D1 database of \`npm start\` / \`wrangler dev\` (migrations are applied first).
  --state-dir <dir>         Another local state directory (wrangler's --persist-to); default .wrangler/state.
  --url <gateway>           A running gateway's admin API instead (or env GATEWAY_URL).
  --admin-token <token>     Its ADMIN_TOKEN (or env ADMIN_TOKEN); required with --url.

Other options:
  --json                    Print machine-readable JSON.
  -h, --help                Show this help.
  PORT (env)                The local gateway's port, as for \`npm start\` (default 8787): create prints a curl
                            for it, unless --url names another gateway.

Examples:
  npm run keys -- create --account acme --name backend
  npm run keys -- list --account acme
  npm run keys -- revoke key_0123456789abcdef
  GATEWAY_URL=https://gateway.example.com ADMIN_TOKEN=… npm run keys -- list
  npm run keys -- signing-key --alg EdDSA`;

const OPTIONS = {
  account: { type: "string" },
  name: { type: "string" },
  alg: { type: "string" },
  url: { type: "string" },
  "admin-token": { type: "string" },
  "state-dir": { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

type Options = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>["values"];

/** A mistake in how the command was called: printed with a pointer to --help, exit code 2. */
class UsageError extends Error {}

const COMMAND_OPTIONS: Record<string, (keyof typeof OPTIONS)[]> = {
  create: ["account", "name"],
  list: ["account"],
  revoke: [],
  "signing-key": ["alg"],
};
const STORE_OPTIONS: (keyof typeof OPTIONS)[] = ["url", "admin-token", "state-dir"];

function checkOptions(command: string, options: Options): void {
  const allowed = new Set<string>([...COMMAND_OPTIONS[command]!, "json", "help"]);
  if (command !== "signing-key") for (const name of STORE_OPTIONS) allowed.add(name);
  for (const name of Object.keys(options)) {
    if (!allowed.has(name)) throw new UsageError(`${command} does not take --${name}`);
  }
}

function keyStore(options: Options): KeyStore {
  const url = options.url ?? process.env.GATEWAY_URL;
  if (url) {
    if (options["state-dir"]) throw new UsageError("--state-dir is for the local database; it cannot be combined with --url");
    if (!/^https?:\/\//.test(url)) throw new UsageError(`--url must be an http(s) URL, got "${url}"`);
    const token = options["admin-token"] ?? process.env.ADMIN_TOKEN;
    if (!token) throw new UsageError("the admin API needs the gateway's ADMIN_TOKEN: pass --admin-token or set ADMIN_TOKEN");
    return httpKeyStore(url, token);
  }
  if (options["admin-token"]) throw new UsageError("--admin-token is only used with --url (or GATEWAY_URL)");
  // `npm run` changes into the project; a relative --state-dir means relative to where the user typed the command.
  const stateDir = options["state-dir"] ? path.resolve(process.env.INIT_CWD ?? process.cwd(), options["state-dir"]) : DEFAULT_STATE_DIR;
  return localKeyStore(stateDir, { onMigrationLine: (line) => process.stderr.write(`[migrate] ${line}\n`) });
}

const date = (seconds: number) => new Date(seconds * 1000).toISOString().replace(/\.\d+Z$/, "Z");

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

function print(options: Options, json: unknown, human: string): void {
  console.log(options.json ? JSON.stringify(json, null, 2) : human);
}

/**
 * Where the key just made in local D1 is used: the gateway `npm start` runs on this machine, on its port (PORT, as
 * `npm start` reads it; 8787 by default).
 */
function localGatewayUrl(): string {
  const port = process.env.PORT?.trim();
  return `http://127.0.0.1:${port && /^\d{1,5}$/.test(port) ? port : "8787"}`;
}

async function create(options: Options): Promise<void> {
  const account = options.account;
  if (!account) throw new UsageError("create needs --account <id>");
  checkAccountId(account);
  if (options.name !== undefined) checkKeyName(options.name);
  const store = keyStore(options);
  const created = await store.create(account, options.name);
  const gateway = (options.url ?? process.env.GATEWAY_URL ?? localGatewayUrl()).replace(/\/+$/, "");
  print(
    options,
    created,
    [
      `Created API key ${created.id} for account ${created.account_id} (name "${created.name}") in ${store.description}.`,
      "",
      "  API KEY (shown only this once; it is stored as a hash and cannot be shown again):",
      "",
      `    ${created.key}`,
      "",
      "Keep it on your servers only. Trade it for a short-lived client token:",
      `  curl -X POST ${gateway}/tokens -H "Reactor-API-Key: ${created.key}"`,
    ].join("\n"),
  );
}

function describeKeys(keys: ApiKeyRecord[], account: string | undefined): string {
  if (keys.length === 0) return account ? `No API keys for account ${account}.` : "No API keys.";
  const rows = keys.map((key) => [
    key.id,
    key.account_id,
    key.name,
    `${key.prefix}…`,
    date(key.created_at),
    key.revoked_at === null || key.revoked_at === undefined ? "active" : `revoked ${date(key.revoked_at)}`,
  ]);
  return table([["ID", "ACCOUNT", "NAME", "PREFIX", "CREATED", "STATUS"], ...rows]);
}

async function list(options: Options): Promise<void> {
  if (options.account !== undefined) checkAccountId(options.account);
  const keys = await keyStore(options).list(options.account);
  print(options, { keys }, describeKeys(keys, options.account));
}

async function revoke(options: Options, keyId: string | undefined): Promise<void> {
  if (!keyId) throw new UsageError("revoke needs the key id, e.g. revoke key_0123456789abcdef (see `list`)");
  const store = keyStore(options);
  const revoked = await store.revoke(keyId);
  if (!revoked) throw new KeyStoreError(`no active API key has id ${keyId} in ${store.description} (already revoked, or a typo?)`);
  print(
    options,
    revoked,
    `Revoked ${revoked.id} (account ${revoked.account_id}, name "${revoked.name}"). It is refused from now on; ` +
      "tokens already minted with it stay valid until they expire.",
  );
}

async function signingKey(options: Options): Promise<void> {
  const alg = (options.alg ?? "ES256") as SigningAlgorithm;
  if (!SIGNING_ALGORITHMS.includes(alg)) throw new UsageError(`--alg must be one of ${SIGNING_ALGORITHMS.join(", ")}`);
  const jwk = await generateSigningKey(alg);
  const entry = JSON.stringify(jwk);
  const hours = MAX_TOKEN_LIFETIME_SECONDS / 3600;
  print(
    options,
    jwk,
    [
      `New ${alg} private signing key, kid ${jwk.kid}. It is a secret: keep it out of git, chat and logs.`,
      "",
      entry,
      "",
      "JWT_SIGNING_KEYS is a JWK set of private keys, newest first. The first key signs new tokens; every key in the",
      "set verifies the tokens it signed.",
      "",
      "First key of a gateway:",
      "  npx wrangler secret put JWT_SIGNING_KEYS      (paste the line below)",
      `  {"keys":[${entry}]}`,
      "  Locally, the same JSON goes in .dev.vars: JWT_SIGNING_KEYS='{\"keys\":[…]}'.",
      "",
      "Rotation:",
      `  1. Put the new key first and keep the current ones after it: {"keys":[${"<new key>"}, <current key>, …]}`,
      "     then `npx wrangler secret put JWT_SIGNING_KEYS`. New tokens are signed with the new key at once.",
      `  2. Keep the older keys until the tokens they signed have expired (at most ${hours} h after the rotation).`,
      "  3. Remove a key from the set (and put the secret again) to retire it: its tokens are refused from then on.",
    ].join("\n"),
  );
}

/** `parseArgs`, its complaints (unknown option, missing value) turned into a usage error. */
function parseCommandLine(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

async function main(argv: string[]): Promise<void> {
  const { values: options, positionals } = parseCommandLine(argv);
  const [command, ...rest] = positionals;
  if (options.help || command === "help" || command === undefined) {
    console.log(HELP);
    if (command === undefined && !options.help) process.exitCode = 2;
    return;
  }
  if (!(command in COMMAND_OPTIONS)) throw new UsageError(`unknown command "${command}"`);
  checkOptions(command, options);
  const allowedPositionals = command === "revoke" ? 1 : 0;
  if (rest.length > allowedPositionals) throw new UsageError(`unexpected argument "${rest[allowedPositionals]}"`);

  switch (command) {
    case "create":
      return create(options);
    case "list":
      return list(options);
    case "revoke":
      return revoke(options, rest[0]);
    case "signing-key":
      return signingKey(options);
  }
}

try {
  await main(process.argv.slice(2));
} catch (error) {
  if (error instanceof UsageError) {
    console.error(`error: ${error.message}\nRun \`npm run keys -- --help\` for usage.`);
    process.exitCode = 2;
  } else if (error instanceof KeyStoreError) {
    console.error(`error: ${error.message}`);
    process.exitCode = 1;
  } else {
    console.error("error:", error instanceof Error ? (error.stack ?? error.message) : error);
    process.exitCode = 1;
  }
}
