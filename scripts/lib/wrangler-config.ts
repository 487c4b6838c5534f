/**
 * wrangler.toml, copied as JSON into a directory of its own with every path made absolute.
 *
 * Why: wrangler reads secrets from the `.dev.vars` (else `.env`) next to the config it is given, whatever else it is
 * told. The Workers Vitest plugin has no option to stop that, and `wrangler dev`'s "are the types current?" check
 * counts those secrets even when `--env-file` names another file. With the config in a directory that holds nothing
 * else, the Worker sees only the bindings we pass: the tests no longer pick up the checkout's `.dev.vars` (written by
 * `npm start`), and `wrangler dev` agrees with `npm run typecheck` (whose types are made with `--env-file /dev/null`).
 * The directory also takes wrangler's scratch files (`.wrangler/tmp`), and the static assets can be pointed elsewhere
 * (tests serve a copy of public/ so they never touch public/build/).
 */
import { createHash } from "node:crypto";
import { rmSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rename, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { WRANGLER_CONFIG } from "./paths.ts";

type RawConfig = Record<string, unknown> & {
  main?: string;
  assets?: { directory?: string } & Record<string, unknown>;
  d1_databases?: Array<{ migrations_dir?: string } & Record<string, unknown>>;
};

/** Config keys that hold paths wrangler resolves against the config's directory. */
const PATH_KEYS = ["main", "tsconfig", "base_dir"] as const;

let raw: Promise<RawConfig> | undefined;

/** wrangler.toml as wrangler parses it (wrangler's own parser, so TOML quirks are read the same way). */
function readRawConfig(): Promise<RawConfig> {
  raw ??= import("wrangler").then(({ experimental_readRawConfig }) => {
    const { rawConfig } = experimental_readRawConfig({ config: WRANGLER_CONFIG });
    return rawConfig as RawConfig;
  });
  return raw;
}

export interface IsolatedConfigOptions {
  /** Serve static assets from this directory instead of wrangler.toml's `[assets] directory`. */
  assetsDirectory?: string;
}

/** The config as JSON text, every path absolute (resolved against the project's wrangler.toml). */
export async function isolatedConfigText(options: IsolatedConfigOptions = {}): Promise<string> {
  const source = structuredClone(await readRawConfig());
  // Environments repeat these keys with paths of their own; none is declared, and a new one must not slip by.
  if (source.env) throw new Error("wrangler.toml has [env.*] sections: scripts/lib/wrangler-config.ts does not rewrite their paths yet");
  const base = path.dirname(WRANGLER_CONFIG);
  const absolute = (value: string) => path.resolve(base, value);
  for (const key of PATH_KEYS) if (typeof source[key] === "string") source[key] = absolute(source[key] as string);
  if (source.assets) {
    source.assets.directory = options.assetsDirectory ?? absolute(source.assets.directory ?? ".");
  }
  for (const database of source.d1_databases ?? []) {
    if (database.migrations_dir) database.migrations_dir = absolute(database.migrations_dir);
  }
  return `${JSON.stringify(source, null, 2)}\n`;
}

/** Writes `<dir>/wrangler.json` (dir is created; it should hold nothing else) and returns its path. */
export async function writeIsolatedConfig(dir: string, options: IsolatedConfigOptions = {}): Promise<string> {
  return writeConfigFile(dir, await isolatedConfigText(options));
}

/** Written under a temporary name and renamed: a reader (or a process writing the same file) never sees half. */
async function writeConfigFile(dir: string, text: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, "wrangler.json");
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, text);
  await rename(temporary, file);
  return file;
}

/**
 * The isolated config in a directory named by its content under `parent` (the worker tests': the OS temp
 * directory): written once, then reused by every run until wrangler.toml changes; never rewritten while in use.
 */
export async function sharedIsolatedConfig(parent: string, options: IsolatedConfigOptions = {}): Promise<string> {
  const text = await isolatedConfigText(options);
  const dir = path.join(parent, `reactor-wrangler-config-${createHash("sha256").update(text).digest("hex").slice(0, 16)}`);
  const file = path.join(dir, "wrangler.json");
  const current = await readFile(file, "utf8").catch(() => undefined);
  return current === text ? file : writeConfigFile(dir, text);
}

/** The isolated config in a fresh temporary directory, removed when this process exits (`npm start`). */
export async function temporaryIsolatedConfig(options: IsolatedConfigOptions = {}): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "reactor-wrangler-config-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  return writeIsolatedConfig(dir, options);
}
