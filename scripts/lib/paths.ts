/** Where things live, resolved from this file so the scripts work from any working directory. */
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const WRANGLER_CONFIG = path.join(PROJECT_ROOT, "wrangler.toml");
export const MIGRATIONS_DIR = path.join(PROJECT_ROOT, "migrations");
/** The file `wrangler dev` reads secrets from by default. */
export const DEV_VARS_FILE = path.join(PROJECT_ROOT, ".dev.vars");
/** `wrangler dev`'s default `--persist-to`; D1, Durable Objects and R2 keep their local data under `<dir>/v3`. */
export const DEFAULT_STATE_DIR = path.join(PROJECT_ROOT, ".wrangler", "state");

const require = createRequire(import.meta.url);

/** The wrangler CLI entry, run with this very Node (the one the project pins), not whatever `node` is on PATH. */
export const WRANGLER_BIN = path.join(path.dirname(require.resolve("wrangler/package.json")), "bin", "wrangler.js");

/** Miniflare's storage root inside a `--persist-to` directory (what `getPlatformProxy({ persist })` expects). */
export function miniflareStateDir(stateDir: string): string {
  return path.join(stateDir, "v3");
}
