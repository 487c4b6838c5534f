/**
 * The isolated copies of wrangler.toml (scripts/lib/wrangler-config.ts) that the worker tests, the test gateways
 * and `npm start` run on: the same Worker, with every path absolute, in a directory that holds nothing else.
 */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROJECT_ROOT, WRANGLER_CONFIG } from "../../scripts/lib/paths.ts";
import { isolatedConfigText, sharedIsolatedConfig, writeIsolatedConfig } from "../../scripts/lib/wrangler-config.ts";

let dir: string;
let original: Record<string, unknown>;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "wrangler-config-test-"));
  const { experimental_readRawConfig } = await import("wrangler");
  original = experimental_readRawConfig({ config: WRANGLER_CONFIG }).rawConfig as Record<string, unknown>;
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("isolatedConfigText", () => {
  it("is wrangler.toml with main, the assets directory and the migrations directory made absolute", async () => {
    const copy = JSON.parse(await isolatedConfigText()) as typeof original & {
      main: string;
      assets: { directory: string };
      d1_databases: { migrations_dir: string }[];
    };
    expect(copy.main).toBe(path.join(PROJECT_ROOT, "worker.ts"));
    expect(copy.assets.directory).toBe(path.join(PROJECT_ROOT, "public"));
    expect(copy.d1_databases.map((database) => database.migrations_dir)).toEqual([path.join(PROJECT_ROOT, "migrations")]);
    // Everything else as it is: the same bindings, vars, Durable Object migrations.
    const strip = ({ main: _m, assets, d1_databases, ...rest }: Record<string, unknown>) => ({
      rest,
      assets: { ...(assets as object), directory: "" },
      d1: (d1_databases as object[]).map((database) => ({ ...database, migrations_dir: "" })),
    });
    expect(strip(copy)).toEqual(strip(original));
  });

  it("serves the assets from another directory when told", async () => {
    const copy = JSON.parse(await isolatedConfigText({ assetsDirectory: "/tmp/site" })) as {
      assets: { directory: string; run_worker_first: unknown };
    };
    expect(copy.assets.directory).toBe("/tmp/site");
    expect(copy.assets.run_worker_first).toEqual((original.assets as { run_worker_first: unknown }).run_worker_first);
  });
});

describe("the config files", () => {
  it("writeIsolatedConfig: wrangler.json alone in its directory, readable by wrangler as the same Worker", async () => {
    const file = await writeIsolatedConfig(path.join(dir, "one"));
    expect(await readdir(path.dirname(file))).toEqual(["wrangler.json"]);
    const { unstable_readConfig } = await import("wrangler");
    const config = unstable_readConfig({ config: file });
    expect(config.name).toBe(original.name);
    expect(config.main).toBe(path.join(PROJECT_ROOT, "worker.ts"));
    const declared = (original.durable_objects as { bindings: { class_name: string }[] }).bindings;
    expect(config.durable_objects.bindings.map((binding: { class_name: string }) => binding.class_name)).toEqual(
      declared.map((binding) => binding.class_name),
    );
    expect(declared.length).toBeGreaterThan(0);
  });

  it("sharedIsolatedConfig: one directory per content, reused as it is", async () => {
    const first = await sharedIsolatedConfig(dir);
    const again = await sharedIsolatedConfig(dir);
    const other = await sharedIsolatedConfig(dir, { assetsDirectory: "/tmp/elsewhere" });
    expect(again).toBe(first);
    expect(other).not.toBe(first);
    expect(await readFile(first, "utf8")).toBe(await isolatedConfigText());
  });
});
