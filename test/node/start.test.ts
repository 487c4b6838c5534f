/**
 * `npm start` end to end, in a temporary state directory and secrets file: it boots a gateway whose dev API key
 * mints tokens, and Ctrl-C (SIGINT) or SIGTERM stops it with no process left behind.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseEnv } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_DEV_API_KEY } from "../../scripts/lib/dev-vars.ts";
import { freePort, portAvailable } from "../../scripts/lib/http.ts";
import { PROJECT_ROOT } from "../../scripts/lib/paths.ts";
import { scriptEnv } from "./support/cli.ts";
import { JWT_PATTERN, mintToken } from "./support/gateway.ts";
import { descendants, stillRunning, type ProcessInfo } from "./support/processes.ts";

/** One boot applies migrations, seeds a key and starts workerd: seconds when idle, much longer on a loaded CI box. */
const BOOT_TEST_TIMEOUT_MS = 300_000;

const READY_LINE = /Reactor gateway running at (http:\/\/127\.0\.0\.1:\d+)/;

interface Started {
  child: ChildProcess;
  url: string;
  output: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcess>();

/** `node scripts/start.ts` as `npm start` runs it; resolves once it has printed its banner. */
async function startScript(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Started> {
  const child = spawn(process.execPath, [path.join(PROJECT_ROOT, "scripts", "start.ts"), ...args], {
    cwd: PROJECT_ROOT,
    env: scriptEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  let output = "";
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const ready = new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = READY_LINE.exec(output);
      if (match) resolve(match[1]!);
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    void exit.then(({ code, signal }) => reject(new Error(`start.ts exited (${code ?? signal}) before it was ready:\n${output}`)));
    setTimeout(() => reject(new Error(`start.ts was not ready after 240 s:\n${output}`)), 240_000).unref();
  });
  const url = await ready;
  return { child, url, output: () => output, exit };
}

/** Sends `signal`, waits for the script to exit, and checks that no process it had started is still alive. */
async function stopWith(started: Started, signal: NodeJS.Signals): Promise<{ code: number | null; leftovers: ProcessInfo[] }> {
  const tree = descendants(started.child.pid!);
  expect(tree.some((info) => info.command === "workerd"), "workerd runs under start.ts").toBe(true);
  started.child.kill(signal);
  const { code } = await started.exit;
  running.delete(started.child);
  return { code, leftovers: stillRunning(tree) };
}

let workDir: string;

beforeAll(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), "npm-start-"));
});

afterEach(() => {
  for (const child of running) child.kill("SIGKILL"); // only after a failed test
  running.clear();
});

afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe("npm start", () => {
  it("boots a gateway on a free port; the dev key mints a JWT; Ctrl-C stops everything", async () => {
    const port = await freePort();
    const devVars = path.join(workDir, ".dev.vars");
    const started = await startScript(["--state-dir", path.join(workDir, "state"), "--dev-vars", devVars], {
      PORT: String(port),
    });
    expect(started.url).toBe(`http://127.0.0.1:${port}`);
    expect(started.output()).toContain(`Reactor-API-Key: ${DEFAULT_DEV_API_KEY}`);
    expect(started.output()).toContain("/openapi.json");
    expect(started.output()).toMatch(/for local use only/);

    const secrets = parseEnv(await readFile(devVars, "utf8"));
    expect(secrets.DEV_API_KEY).toBe(DEFAULT_DEV_API_KEY);
    expect(JSON.parse(secrets.JWT_SIGNING_KEYS!).keys).toHaveLength(1);
    expect(secrets.ADMIN_TOKEN).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    expect(secrets.RUNTIME_TOKENS).toMatch(/^rt_[A-Za-z0-9_-]{40,}$/);

    const { status, body } = await mintToken(started.url, DEFAULT_DEV_API_KEY);
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body.jwt).toMatch(JWT_PATTERN);

    const { code, leftovers } = await stopWith(started, "SIGINT");
    expect(code).toBe(130);
    expect(leftovers).toEqual([]);
    expect(await portAvailable(port)).toBe(true);
  }, BOOT_TEST_TIMEOUT_MS);

  it("keeps an existing .dev.vars, seeds DEV_API_KEY from the environment, and stops on SIGTERM", async () => {
    const devVars = path.join(workDir, ".dev.vars");
    const before = await readFile(devVars, "utf8");
    const customKey = `rk_${"custom".repeat(8)}`;
    const started = await startScript(["--state-dir", path.join(workDir, "state"), "--dev-vars", devVars], {
      PORT: String(await freePort()),
      DEV_API_KEY: customKey,
    });
    expect(await readFile(devVars, "utf8")).toBe(before);
    expect(started.output()).toContain(`Reactor-API-Key: ${customKey}`);

    const custom = await mintToken(started.url, customKey);
    expect(custom.status, JSON.stringify(custom.body)).toBe(200);
    expect(custom.body.jwt).toMatch(JWT_PATTERN);

    const { code, leftovers } = await stopWith(started, "SIGTERM");
    expect(code).toBe(143);
    expect(leftovers).toEqual([]);
  }, BOOT_TEST_TIMEOUT_MS);

  it("refuses a malformed DEV_API_KEY before starting anything", async () => {
    const child = spawn(process.execPath, [path.join(PROJECT_ROOT, "scripts", "start.ts"), "--dev-vars", path.join(workDir, "x.vars"), "--state-dir", path.join(workDir, "x-state")], {
      cwd: PROJECT_ROOT,
      env: scriptEnv({ DEV_API_KEY: "not-a-key", PORT: String(await freePort()) }),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise((resolve) => child.once("exit", resolve));
    expect(code).toBe(1);
    expect(stderr).toContain("DEV_API_KEY (environment) is not a valid API key");
  });
});
