/** Running the wrangler CLI from scripts: quiet, local-only, with the project's Node. */
import { spawn } from "node:child_process";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { MIGRATIONS_DIR, PROJECT_ROOT, WRANGLER_BIN, WRANGLER_CONFIG } from "./paths.ts";

/** No telemetry, no calls to Cloudflare for `request.cf`, no local observability dashboard. The caller's env wins. */
const QUIET_DEFAULTS = {
  X_LOCAL_OBSERVABILITY: "false",
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
};

export function wranglerEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...QUIET_DEFAULTS, ...process.env, ...extra };
}

/** argv to run wrangler with the current Node: `[execPath, [wrangler.js, ...args]]`. */
export function wranglerCommand(args: string[]): { command: string; args: string[] } {
  return { command: process.execPath, args: [WRANGLER_BIN, ...args] };
}

export interface DevServerOptions {
  port: number;
  /** `--persist-to`: local D1 / Durable Object / R2 state. */
  stateDir: string;
  /** Secrets file; when set, wrangler reads it instead of `.dev.vars` next to the config. Relative: to the cwd. */
  envFile?: string;
  /** Extra `--var NAME:value` bindings (they override the secrets file). */
  vars?: Record<string, string>;
  configPath?: string;
  /** Defaults to 127.0.0.1: nothing is exposed beyond this machine. */
  ip?: string;
  /**
   * The DevTools inspector's port. wrangler's default (9229, else the next free one) is chosen before workerd binds
   * it, so two servers started at the same moment can pick the same one and the second exits "Address already in
   * use": servers started side by side each get their own.
   */
  inspectorPort?: number;
}

export function wranglerDevArgs(options: DevServerOptions): string[] {
  return [
    "dev",
    "--config",
    options.configPath ?? WRANGLER_CONFIG,
    "--ip",
    options.ip ?? "127.0.0.1",
    "--port",
    String(options.port),
    "--persist-to",
    options.stateDir,
    "--show-interactive-dev-session=false",
    ...(options.inspectorPort ? ["--inspector-port", String(options.inspectorPort)] : []),
    // Absolute: wrangler resolves a relative --env-file against the config's directory, not the working directory.
    ...(options.envFile ? ["--env-file", path.resolve(options.envFile)] : []),
    ...Object.entries(options.vars ?? {}).flatMap(([name, value]) => ["--var", `${name}:${value}`]),
  ];
}

export interface RunResult {
  code: number | null;
  output: string;
}

/** Runs a wrangler command to completion, non-interactively (stdin closed, so prompts take their default). */
export function runWrangler(args: string[], options: { onLine?: (line: string) => void } = {}): Promise<RunResult> {
  const { command, args: argv } = wranglerCommand(args);
  const child = spawn(command, argv, { cwd: PROJECT_ROOT, env: wranglerEnv(), stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  let partial = "";
  const collect = (chunk: Buffer) => {
    const text = chunk.toString();
    output += text;
    if (!options.onLine) return;
    const lines = (partial + text).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) options.onLine(line);
  };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      if (partial && options.onLine) options.onLine(partial);
      resolve({ code, output });
    });
  });
}

/**
 * `wrangler d1 migrations apply DB --local` against a state directory. Returns the names of the migrations it
 * applied (none when the database was up to date); throws with wrangler's output on failure.
 */
export async function applyMigrations(stateDir: string, options: { onLine?: (line: string) => void } = {}): Promise<string[]> {
  const result = await runWrangler(["d1", "migrations", "apply", "DB", "--local", "--config", WRANGLER_CONFIG, "--persist-to", stateDir], options);
  if (result.code !== 0) {
    throw new Error(`wrangler d1 migrations apply failed (exit code ${result.code}):\n${result.output.trim()}`);
  }
  // Its result table has one row per applied migration, │ 0001_name.sql │ ✅ │, and is printed again after each one.
  return [...new Set([...result.output.matchAll(/│\s*(\S+\.sql)\s*│\s*✅/g)].map((match) => match[1]!))];
}

/** Migration files in the order wrangler applies them. */
export async function migrationNames(): Promise<string[]> {
  return (await readdir(MIGRATIONS_DIR)).filter((name) => name.endsWith(".sql")).sort();
}
