/**
 * The local D1 database that `wrangler dev` uses, opened from Node through wrangler's platform proxy: the same
 * Miniflare storage, and the same functions (lib/api-keys.ts) the Worker runs against it.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { miniflareStateDir, WRANGLER_CONFIG } from "./paths.ts";
import { applyMigrations, migrationNames } from "./wrangler.ts";

interface LocalBindings {
  DB: D1Database;
}

interface RawConfig {
  name?: string;
  compatibility_date?: string;
  d1_databases?: unknown[];
}

/**
 * On the full wrangler.toml, getPlatformProxy would also bind the Worker's Durable Objects, which it cannot run (it
 * has no Worker script) and warns about at length. Only D1 is needed here, so the proxy gets a config holding just
 * wrangler.toml's D1 databases: same database ids, hence the same local SQLite files as `wrangler dev`.
 */
async function withD1OnlyConfig<T>(work: (configPath: string) => Promise<T>): Promise<T> {
  const { experimental_readRawConfig } = await wrangler();
  const { rawConfig } = experimental_readRawConfig({ config: WRANGLER_CONFIG }) as { rawConfig: RawConfig };
  const { name, compatibility_date, d1_databases } = rawConfig;
  const dir = await mkdtemp(path.join(tmpdir(), "reactor-d1-"));
  try {
    const configPath = path.join(dir, "wrangler.json");
    await writeFile(configPath, JSON.stringify({ name, compatibility_date, d1_databases }));
    return await work(configPath);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Imported on first use: wrangler takes over a second to load, and most commands of the keys CLI do not need it. */
const wrangler = () => import("wrangler");

async function openProxy(stateDir: string, configPath: string) {
  const { getPlatformProxy } = await wrangler();
  return getPlatformProxy<LocalBindings>({
    configPath,
    persist: { path: miniflareStateDir(stateDir) },
    remoteBindings: false,
  });
}

/** Migrations in migrations/ that wrangler has not recorded as applied to this database. */
export async function pendingMigrations(db: D1Database): Promise<string[]> {
  let applied: Set<string>;
  try {
    const { results } = await db.prepare("SELECT name FROM d1_migrations").all<{ name: string }>();
    applied = new Set(results.map(({ name }) => name));
  } catch (error) {
    if (!/no such table/i.test(String(error))) throw error;
    applied = new Set();
  }
  return (await migrationNames()).filter((name) => !applied.has(name));
}

/**
 * Runs `work` with the local database of `stateDir` (a `wrangler dev --persist-to` directory), applying pending
 * migrations first unless `migrate` is false.
 */
export async function withLocalDb<T>(
  stateDir: string,
  work: (db: D1Database) => Promise<T>,
  { migrate = true, onMigrationLine }: { migrate?: boolean; onMigrationLine?: (line: string) => void } = {},
): Promise<T> {
  return withD1OnlyConfig(async (configPath) => {
    const proxy = await openProxy(stateDir, configPath);
    let open = true;
    try {
      if (migrate && (await pendingMigrations(proxy.env.DB)).length > 0) {
        open = false;
        await proxy.dispose(); // wrangler gets the database to itself while it migrates
        await applyMigrations(stateDir, { onLine: onMigrationLine });
        return await withLocalDb(stateDir, work, { migrate: false });
      }
      return await work(proxy.env.DB);
    } finally {
      if (open) await proxy.dispose();
    }
  });
}
