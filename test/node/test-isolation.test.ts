/**
 * Tests own their configuration, and `npm start` then `npm test` in one checkout must work: the worker project must
 * not read the `.dev.vars` `npm start` writes, and `npm start` must agree with `npm run typecheck` that the committed
 * Worker types are current. Proved in a copy of the project (the checkout's own files are never touched) with a
 * poisoned `.dev.vars`: `npm start` runs there, and while it runs the worker project's isolation test
 * (test/worker/isolation.test.ts) must pass there.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { cp, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../scripts/lib/http.ts";
import { PROJECT_ROOT } from "../../scripts/lib/paths.ts";
import { scriptEnv } from "./support/cli.ts";

/** Local state and generated files a fresh clone does not have; node_modules is linked, not copied. */
const NOT_COPIED = new Set([
  "node_modules",
  ".git",
  ".wrangler",
  ".dev.vars",
  "test-results",
  path.join("public", "build"),
  path.join("bench", "results"),
]);

const POISON = ["DEV_API_KEY=rk_poisoned_dev_vars_key_0123456789abcdefghijklmnopqrstuvwxyz", "ADMIN_TOKEN=poisoned", "POISON_FROM_DEV_VARS=1", ""];

let copy: string;
let start: ChildProcess | undefined;

beforeAll(async () => {
  copy = await mkdtemp(path.join(tmpdir(), "isolation-copy-"));
  for (const name of await readdir(PROJECT_ROOT)) {
    if (NOT_COPIED.has(name) || name.startsWith(".dev.vars.")) continue;
    await cp(path.join(PROJECT_ROOT, name), path.join(copy, name), {
      recursive: true,
      filter: (source) => !NOT_COPIED.has(path.relative(PROJECT_ROOT, source)),
    });
  }
  await symlink(path.join(PROJECT_ROOT, "node_modules"), path.join(copy, "node_modules"), "dir");
  await writeFile(path.join(copy, ".dev.vars"), POISON.join("\n"));
});

afterAll(async () => {
  if (start && start.exitCode === null && start.signalCode === null) {
    const exited = new Promise((resolve) => start!.once("exit", resolve));
    start.kill("SIGTERM");
    await exited;
  }
  await rm(copy, { recursive: true, force: true });
});

function collect(child: ChildProcess): () => string {
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  return () => output;
}

function vitest(cwd: string, args: string[]): Promise<{ code: number | null; output: string }> {
  const bin = path.join(PROJECT_ROOT, "node_modules", "vitest", "vitest.mjs");
  const child = spawn(process.execPath, [bin, "run", ...args], {
    cwd,
    env: { ...process.env, CI: "true", NO_COLOR: "1", FORCE_COLOR: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output = collect(child);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, output: output() }));
  });
}

describe("a checkout with a .dev.vars", () => {
  it("npm start uses it, and wrangler's types check agrees with npm run typecheck (no 'types might be out of date')", async () => {
    start = spawn(process.execPath, [path.join(copy, "scripts", "start.ts"), "--no-runtime"], {
      cwd: copy,
      env: scriptEnv({ PORT: String(await freePort()), NO_COLOR: "1" }),
      stdio: ["ignore", "pipe", "pipe"],
    });
    const output = collect(start);
    const exited = new Promise<void>((resolve) => start!.once("exit", () => resolve()));
    const deadline = Date.now() + 150_000;
    while (!/Reactor gateway running at/.test(output())) {
      if (start.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not come up:\n${output()}`);
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 200))]);
    }
    expect(output()).toContain("Using secrets defined in .dev.vars");
    expect(output()).not.toMatch(/types (might be|looked) out of date/);
  }, 180_000);

  it("while npm start runs there, the worker tests see none of it (DEV_API_KEY and other secrets do not reach the Worker)", async () => {
    const run = await vitest(copy, ["--project", "worker", "test/worker/isolation.test.ts"]);
    expect(run.output).toMatch(/Tests\s+2 passed/);
    expect(run.code, run.output).toBe(0);
  }, 180_000);
});
