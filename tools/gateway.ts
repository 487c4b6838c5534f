/**
 * A real gateway for end-to-end tests: `wrangler dev` (workerd) on a free loopback port, with its own state
 * directory, secrets, config and static assets, migrations applied. Start it in beforeAll, stop it in afterAll.
 * Nothing of the checkout's local state is read or written (`.dev.vars`, `.wrangler/state`, public/build/).
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { cp, mkdtemp, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomId } from "../lib/encoding.ts";
import { generateSigningKey } from "../lib/signing-keys.ts";
import { stageDemoSite } from "../scripts/lib/build-assets.ts";
import { startDevServer, type DevServer } from "../scripts/lib/dev-server.ts";
import { MIGRATIONS_DIR, WRANGLER_CONFIG } from "../scripts/lib/paths.ts";
import { writeIsolatedConfig } from "../scripts/lib/wrangler-config.ts";
import { applyMigrations } from "../scripts/lib/wrangler.ts";
import { processesNamed } from "./procfs.ts";

export interface GatewayOptions {
  /** Worker secrets and vars (written to an env file); JWT_SIGNING_KEYS, ADMIN_TOKEN, RUNTIME_TOKENS default to fresh ones. */
  vars?: Record<string, string>;
  /** An existing state directory (`--persist-to`), kept on stop. Default: a fresh one, removed on stop. */
  stateDir?: string;
  /** Apply D1 migrations before starting (default true). */
  migrate?: boolean;
  /** Where its working directory (state, secrets) is made; default the OS temp directory. */
  workRoot?: string;
  /**
   * Another Worker's wrangler config (bench Workers), used as it is. Default: the gateway's wrangler.toml, copied into
   * the gateway's working directory (scripts/lib/wrangler-config.ts) so that no `.dev.vars` of the checkout is read.
   */
  configPath?: string;
  /**
   * The gateway's static assets, always a copy of public/ in its working directory (never the checkout's
   * public/build/): "bare" (default) without the demo page's built files, "demo" with them built into it.
   */
  assets?: "bare" | "demo";
  /** Default: a free port. */
  port?: number;
  /** The address it listens on (default 127.0.0.1; a topology's server address in tools/netns.ts). */
  host?: string;
  /** Sees every line the gateway prints (they are also kept for `output()`). */
  onLine?: (line: string) => void;
  /** How long to wait for /health (default 120 s: a loaded CI machine can be slow to boot workerd). */
  readyTimeoutMs?: number;
}

export interface TestGateway {
  url: string;
  port: number;
  stateDir: string;
  adminToken: string;
  /** The first of RUNTIME_TOKENS: what a GPU runtime presents on its sockets. */
  runtimeToken: string;
  /** The secrets and vars the Worker was given. */
  vars: Record<string, string>;
  /** The wrangler process (leader of the gateway's process group). */
  pid: number;
  /** The last lines the gateway printed, for failure messages. */
  output(): string;
  /** Stops every process of the gateway; removes the state directory unless it was given. Idempotent. */
  stop(): Promise<void>;
}

/** Fresh secrets a gateway needs to mint and verify tokens, serve /admin, accept GPU runtimes and sign upload URLs. */
export async function testSecrets(): Promise<{
  JWT_SIGNING_KEYS: string;
  ADMIN_TOKEN: string;
  RUNTIME_TOKENS: string;
  UPLOAD_SIGNING_SECRET: string;
}> {
  return {
    JWT_SIGNING_KEYS: JSON.stringify({ keys: [await generateSigningKey()] }),
    ADMIN_TOKEN: randomId(24),
    RUNTIME_TOKENS: `rt_${randomId(24)}`,
    UPLOAD_SIGNING_SECRET: randomId(32),
  };
}

/** Quotes a value for a dotenv file (single quotes keep JSON as it is). */
function dotenvLine(name: string, value: string): string {
  if (value.includes("'") || value.includes("\n")) throw new Error(`${name}: values with quotes or newlines are not supported`);
  return `${name}='${value}'`;
}

const MAX_OUTPUT_LINES = 400;

export async function startGateway(options: GatewayOptions = {}): Promise<TestGateway> {
  const workDir = await mkdtemp(path.join(options.workRoot ?? tmpdir(), "reactor-gateway-"));
  const stateDir = options.stateDir ?? path.join(workDir, "state");
  const vars = { ...(await testSecrets()), ...options.vars };
  const envFile = path.join(workDir, "secrets.env");
  await writeFile(
    envFile,
    `${Object.entries(vars)
      .map(([name, value]) => dotenvLine(name, value))
      .join("\n")}\n`,
    {
      mode: 0o600,
    },
  );

  const lines: string[] = [];
  const onLine = (line: string) => {
    lines.push(line);
    if (lines.length > MAX_OUTPUT_LINES) lines.shift();
    options.onLine?.(line);
  };
  // workDir holds the env file, and the state unless the caller gave its own state directory.
  const cleanUp = () => rm(workDir, { recursive: true, force: true });

  let server: DevServer;
  try {
    if (options.migrate ?? true) await (options.stateDir ? applyMigrations(stateDir) : copyMigratedState(stateDir));
    server = await startDevServer({
      port: options.port,
      ip: options.host,
      configPath: options.configPath ?? (await gatewayConfig(workDir, options.assets ?? "bare")),
      stateDir,
      envFile,
      onLine,
      readyTimeoutMs: options.readyTimeoutMs,
    });
  } catch (error) {
    await cleanUp();
    throw new Error(`the gateway did not start: ${(error as Error).message}\n--- its output ---\n${lines.join("\n")}`);
  }
  let stopped: Promise<void> | undefined;
  return {
    url: server.url,
    port: server.port,
    stateDir,
    adminToken: vars.ADMIN_TOKEN,
    runtimeToken: vars.RUNTIME_TOKENS.split(",")[0]!.trim(),
    vars,
    pid: server.pid,
    output: () => lines.join("\n"),
    stop: () => (stopped ??= server.stop().finally(cleanUp)),
  };
}

/** The gateway's config and assets, in its working directory. */
async function gatewayConfig(workDir: string, assets: "bare" | "demo"): Promise<string> {
  const site = await stageDemoSite(path.join(workDir, "site"), { build: assets === "demo" });
  return writeIsolatedConfig(path.join(workDir, "config"), { assetsDirectory: site });
}

/**
 * Fills a fresh state directory with the D1 migrations applied, copied from a template made once per set of
 * migrations: `wrangler d1 migrations apply` takes ~6 s, a copy milliseconds, and tests and benchmarks start many
 * gateways. The template is keyed by the migrations and the wrangler config (the local database's file name comes
 * from it); processes racing to make it each build their own, and the first rename wins.
 */
async function copyMigratedState(stateDir: string): Promise<void> {
  const hash = createHash("sha256").update(await readFile(WRANGLER_CONFIG));
  for (const name of (await readdir(MIGRATIONS_DIR)).sort()) hash.update(name).update(await readFile(path.join(MIGRATIONS_DIR, name)));
  const template = path.join(tmpdir(), `reactor-migrated-state-${hash.digest("hex").slice(0, 16)}`);
  if (!existsSync(template)) {
    const building = await mkdtemp(`${template}-building-`);
    await applyMigrations(building);
    await rename(building, template).catch(() => rm(building, { recursive: true, force: true }));
  }
  await cp(template, stateDir, { recursive: true });
}

/** POST /tokens with an API key; returns the status and parsed body. */
export async function mintToken(
  gatewayUrl: string,
  apiKey: string,
  body?: unknown,
): Promise<{ status: number; body: { jwt?: string; expires_at?: number; error?: { code: string; message: string } } }> {
  const response = await fetch(`${gatewayUrl}/tokens`, {
    method: "POST",
    headers: { "Reactor-API-Key": apiKey, ...(body !== undefined && { "Content-Type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as never };
}

/** A JWT's shape: three base64url parts, the first decoding to a JSON header. */
export const JWT_PATTERN = /^eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** An API key of a fresh account, created through the admin API, traded for a client token. */
export async function clientToken(
  gateway: TestGateway,
  account = `bench-${randomId(6)
    .toLowerCase()
    .replace(/[^a-z0-9]/g, "x")}`,
): Promise<string> {
  const created = await fetch(`${gateway.url}/admin/keys`, {
    method: "POST",
    headers: { Authorization: `Bearer ${gateway.adminToken}`, "Content-Type": "application/json" },
    body: JSON.stringify({ account }),
  });
  if (created.status !== 201) throw new Error(`POST /admin/keys: ${created.status} ${await created.text()}`);
  const { key } = (await created.json()) as { key: string };
  const minted = await fetch(`${gateway.url}/tokens`, { method: "POST", headers: { "Reactor-API-Key": key } });
  if (minted.status !== 200) throw new Error(`POST /tokens: ${minted.status} ${await minted.text()}`);
  return ((await minted.json()) as { jwt: string }).jwt;
}

/** The workerd processes serving a gateway, for CPU accounting. */
export function workerdPids(gateway: TestGateway): number[] {
  return processesNamed(gateway.pid, "workerd");
}
