/**
 * `npm start` end to end, in a temporary state directory and secrets file: it builds the demo page, boots a
 * gateway that serves it, starts a runtime agent for the demo model, and Ctrl-C (SIGINT) or SIGTERM stops it all
 * (wrangler, workerd, the agent and its ffmpeg) with no process left behind. On a machine without ffmpeg: a
 * stand-in `ffmpeg` that fails like a missing one comes first on PATH, so only the one installed from npm can work.
 * A crashed agent is restarted with the gateway kept up; an encoder that cannot start is reported to the client.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readlinkSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseEnv } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_DEV_API_KEY } from "../../scripts/lib/dev-vars.ts";
import { freePort, portAvailable } from "../../scripts/lib/http.ts";
import { devToken } from "../../scripts/lib/local-gateway.ts";
import { PROJECT_ROOT } from "../../scripts/lib/paths.ts";
import type { Page } from "playwright-core";
import { launchBrowser, servePage, type TestBrowser } from "../../tools/browser.ts";
import { reactorClientPage, type HarnessWindow } from "../../tools/browser.test-page.ts";
import { directoryFingerprint } from "./support/checkout.ts";
import { scriptEnv } from "./support/cli.ts";
import { JWT_PATTERN, mintToken } from "../../tools/gateway.ts";
import { argv, descendants, stillRunning, type ProcessInfo } from "../../tools/procfs.ts";

/** One boot builds the page, applies migrations, seeds a key, starts workerd and an agent: slow on a loaded CI box. */
const BOOT_TEST_TIMEOUT_MS = 300_000;

/** The banner, printed once everything runs: between two rules, the demo page's URL on its first line. */
const BANNER = /─{78}\n {2}Demo page: {2}(http:\/\/127\.0\.0\.1:\d+)\/\n[\s\S]*?─{78}\n/;

interface Started {
  child: ChildProcess;
  url: string;
  banner: string;
  output: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcess>();

function spawnStart(args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, [path.join(PROJECT_ROOT, "scripts", "start.ts"), ...args], {
    cwd: PROJECT_ROOT,
    env: scriptEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** `node scripts/start.ts` as `npm start` runs it; resolves once it has printed its banner. */
async function startScript(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Started> {
  const child = spawnStart(args, env);
  running.add(child);
  let output = "";
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const ready = new Promise<RegExpExecArray>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = BANNER.exec(output);
      if (match) resolve(match);
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    void exit.then(({ code, signal }) => reject(new Error(`start.ts exited (${code ?? signal}) before it was ready:\n${output}`)));
    setTimeout(() => reject(new Error(`start.ts was not ready after 240 s:\n${output}`)), 240_000).unref();
  });
  const [banner, url] = await ready;
  return { child, url: url!, banner, output: () => output, exit };
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `find` returns something, for at most `timeoutMs`. */
async function eventually<T>(what: string, find: () => T | undefined | Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await sleep(100);
  }
}

/**
 * Sends `signal`, waits for the script to exit, and returns what is left of the processes it had started. A process
 * in a group of its own (ffmpeg under the agent's tether) may take a moment longer than the script to go.
 */
async function stopWith(started: Started, signal: NodeJS.Signals): Promise<{ code: number | null; tree: ProcessInfo[]; leftovers: ProcessInfo[] }> {
  const tree = descendants(started.child.pid!);
  expect(
    tree.some((info) => info.command === "workerd"),
    "workerd runs under start.ts",
  ).toBe(true);
  started.child.kill(signal);
  const { code } = await started.exit;
  running.delete(started.child);
  const gone = await eventually("every process stopped", () => (stillRunning(tree).length === 0 ? true : undefined), 20_000).catch(() => false);
  return { code, tree, leftovers: gone ? [] : stillRunning(tree) };
}

async function getJson(url: string, jwt: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, { headers: { Authorization: `Bearer ${jwt}` } });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function createSession(url: string, jwt: string, model: string): Promise<string> {
  const response = await fetch(`${url}/sessions`, {
    method: "POST",
    headers: { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" },
    body: JSON.stringify({ model: { name: model }, client_info: { sdk_version: "test", sdk_type: "js" } }),
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { session_id: string }).session_id;
}

/** The first frame of `type` on the native signaling socket of a session. */
async function firstFrame(url: string, jwt: string, sessionId: string, type: string): Promise<Record<string, unknown>> {
  const socket = new WebSocket(`${url.replace(/^http/, "ws")}/v1/sessions/${sessionId}/signal`, ["reactor.v1", `bearer.${jwt}`]);
  try {
    return await new Promise((resolve, reject) => {
      socket.addEventListener("message", (event) => {
        const frame = JSON.parse(String(event.data)) as Record<string, unknown>;
        if (frame.type === type) resolve(frame);
      });
      socket.addEventListener("close", (event) => reject(new Error(`socket closed (${event.code}) before a ${type} frame`)));
      socket.addEventListener("error", () => reject(new Error(`socket error before a ${type} frame`)));
    });
  } finally {
    socket.close();
  }
}

/** The official client (2.9.0) in a tab of `browser`, connected to `url` for model demo. */
async function officialClient(browser: TestBrowser, siteUrl: string, url: string, jwt: string) {
  const page: Page = await browser.newPage();
  await page.goto(siteUrl);
  await page.evaluate(([apiUrl, token]) => void (window as unknown as HarnessWindow).harness.connect({ apiUrl, jwt: token, modelName: "demo" }), [
    url,
    jwt,
  ] as const);
  return {
    state: () => page.evaluate(() => (window as unknown as HarnessWindow).harness.state()),
    sessionId: () => page.evaluate(() => (window as unknown as HarnessWindow).harness.sessionId()),
    inboundVideo: () => page.evaluate(() => (window as unknown as HarnessWindow).harness.inboundVideo()),
    close: () => page.close(),
  };
}

/** The runtime agent's own process under start.ts (Node names its main thread, so by argv; not its tether's). */
const agentProcess = (started: Started) =>
  descendants(started.child.pid!).find((info) => argv(info.pid)[1]?.endsWith(path.join("runtime", "main.ts")));

let workDir: string;
/** The checkout's public/build/ before these tests: the script builds and serves a copy (--assets-dir) instead. */
let checkoutBuild: string;
/** PATH with a stand-in `ffmpeg` first that fails as a missing binary does: any use of a system ffmpeg fails. */
let noFfmpegPath: string;

beforeAll(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), "npm-start-"));
  checkoutBuild = await directoryFingerprint();
  const shims = path.join(workDir, "shims");
  await mkdir(shims);
  await writeFile(path.join(shims, "ffmpeg"), '#!/bin/sh\necho "ffmpeg: not found" >&2\nexit 127\n', { mode: 0o755 });
  noFfmpegPath = `${shims}${path.delimiter}${process.env.PATH ?? ""}`;
});

afterEach(() => {
  for (const child of running) child.kill("SIGKILL"); // only after a failed test
  running.clear();
});

afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe("npm start", () => {
  it(
    "serves the demo page and a demo runtime on a free port with no ffmpeg on the machine; the dev key and /dev/token mint JWTs; the official client decodes video; a crashed agent is restarted; Ctrl-C stops everything",
    async () => {
      const port = await freePort();
      const devVars = path.join(workDir, ".dev.vars");
      const started = await startScript(
        ["--state-dir", path.join(workDir, "state"), "--dev-vars", devVars, "--assets-dir", path.join(workDir, "site"), "--slots", "3"],
        {
          PORT: String(port),
          PATH: noFfmpegPath,
        },
      );
      const { url, banner } = started;
      expect(url).toBe(`http://127.0.0.1:${port}`); // and BANNER has the page's URL on its first line
      expect(banner).toContain(`Reactor gateway running at ${url}`);
      expect(banner).toContain(`Reactor-API-Key: ${DEFAULT_DEV_API_KEY}`);
      expect(banner).toContain("/openapi.json");
      expect(banner).toContain("1 spare encoder kept running for a fast first frame: ~15 % of a core while idle (--spare-encoders 0 turns it off)");
      expect(started.output()).toContain(`DEV_API_KEY is the documented default ${DEFAULT_DEV_API_KEY}; it is public, for local use only.`);

      const secrets = parseEnv(await readFile(devVars, "utf8"));
      expect(secrets.DEV_API_KEY).toBe(DEFAULT_DEV_API_KEY);
      expect(JSON.parse(secrets.JWT_SIGNING_KEYS!).keys).toHaveLength(1);
      expect(secrets.ADMIN_TOKEN).toMatch(/^[A-Za-z0-9_-]{40,}$/);
      expect(secrets.RUNTIME_TOKENS).toMatch(/^rt_[A-Za-z0-9_-]{40,}$/);

      // The page and its built script are static assets; API paths still reach the Worker.
      const page = await fetch(`${url}/`);
      expect(page.status).toBe(200);
      expect(page.headers.get("Content-Type")).toMatch(/^text\/html/);
      expect(page.headers.get("X-Content-Type-Options")).toBe("nosniff"); // public/_headers
      expect(page.headers.get("Content-Security-Policy")).toBe("frame-ancestors 'none'");
      expect(await page.text()).toContain("/build/demo.js");
      const script = await fetch(`${url}/build/demo.js`);
      expect(script.status).toBe(200);
      expect(script.headers.get("Content-Type")).toMatch(/javascript/);
      expect(script.headers.get("Cache-Control")).toBe("no-cache");
      expect(await (await fetch(`${url}/health`)).json()).toMatchObject({ status: "ok" });

      const minted = await mintToken(url, DEFAULT_DEV_API_KEY);
      expect(minted.status, JSON.stringify(minted.body)).toBe(200);
      expect(minted.body.jwt).toMatch(JWT_PATTERN);

      const jwt = await devToken(url);
      expect(jwt).toMatch(JWT_PATTERN);
      expect((await getJson(`${url}/v1/whoami`, jwt)).body).toMatchObject({ account: "dev" });

      // The banner comes after the agent registered: the model is listed at once.
      const models = await getJson(`${url}/v1/models`, jwt);
      expect(models.body.models).toEqual([expect.objectContaining({ name: "demo", runtimes: 1, slots: { total: 3, free: 3 }, queue_length: 0 })]);

      // The page, as a person opens it: it gets its token from /dev/token and reaches the agent's video (no STUN).
      const browser = await launchBrowser();
      const site = await servePage(await reactorClientPage());
      try {
        const tab = await browser.newPage();
        await tab.goto(`${url}/`);
        await tab.getByRole("button", { name: "Connect", exact: true }).click();
        await expect.poll(() => tab.locator("#status").innerText(), { timeout: 60_000 }).toBe("ready");
        await tab.close();

        // The official client, unmodified, decodes the video of the ffmpeg installed from npm (the only one that works here).
        const client = await officialClient(browser, site.url, url, jwt);
        await expect.poll(async () => (await client.state()).status, { timeout: 60_000 }).toBe("ready");
        await expect.poll(async () => (await client.state()).frames, { timeout: 30_000 }).toBeGreaterThan(10);
        expect(await client.inboundVideo()).toMatchObject({ frameWidth: 640, frameHeight: 360, framesDecoded: expect.any(Number) });
        expect((await client.inboundVideo())!.framesDecoded).toBeGreaterThan(10);
        const encoders = descendants(started.child.pid!).filter((info) => info.command === "ffmpeg");
        expect(encoders.length).toBeGreaterThanOrEqual(2); // the session's and the spare one
        for (const { pid } of encoders) expect(readlinkSync(`/proc/${pid}/exe`)).toMatch(/node_modules\/@ffmpeg-installer\/linux-x64\/ffmpeg$/);
        const crashedSession = (await client.sessionId())!;

        // The agent crashes: the gateway stays up, the agent is restarted and registers again under the same id, which
        // ends the session its previous process held; a new session is served by the new process.
        const agent = agentProcess(started)!;
        expect(agent).toBeDefined();
        process.kill(agent.pid, "SIGKILL");
        await eventually(
          "the restart to be announced",
          () =>
            /runtime agent stopped unexpectedly \(signal SIGKILL\) after .* s; restarting it in .* s \(restart 1\)/.test(started.output()) ||
            undefined,
        );
        expect((await fetch(`${url}/health`)).status).toBe(200);
        const restarted = await eventually("a new agent process", () => {
          const next = agentProcess(started);
          return next && next.pid !== agent.pid ? next : undefined;
        });
        await eventually(
          "the new agent to register",
          () => started.output().match(/registered as npm-start-\d+ for model demo/g)?.length === 2 || undefined,
          60_000,
        );
        expect((await fetch(`${url}/health`)).status).toBe(200);
        await expect
          .poll(async () => (await getJson(`${url}/sessions/${crashedSession}`, jwt)).body, { timeout: 30_000 })
          .toMatchObject({ state: "INACTIVE", reason: expect.stringContaining("runtime_restarted") });
        await client.close();
        const next = await officialClient(browser, site.url, url, jwt);
        await expect.poll(async () => (await next.state()).status, { timeout: 60_000 }).toBe("ready");
        await expect.poll(async () => (await next.state()).frames, { timeout: 30_000 }).toBeGreaterThan(10);
        // Served by the new process: its encoders (each under a tether) are its children.
        expect(descendants(restarted.pid).filter((info) => info.command === "ffmpeg").length).toBeGreaterThanOrEqual(1);
        await next.close();
      } catch (error) {
        (error as Error).message += `\n--- browser ---\n${browser.logs().join("\n")}\n--- npm start ---\n${started.output()}`;
        throw error;
      } finally {
        await Promise.all([browser.close(), site.close()]);
      }

      // No STUN by default: clients and runtimes get no ICE servers (host candidates only), over REST and the socket.
      const sessionId = await createSession(url, jwt, "demo");
      expect((await getJson(`${url}/sessions/${sessionId}/transport/webrtc/ice_servers`, jwt)).body).toEqual({ ice_servers: [] });
      expect((await firstFrame(url, jwt, sessionId, "ice_servers")).ice_servers).toEqual([]);

      // The assigned session runs an ffmpeg under the agent: it must go with everything else.
      await eventually(
        "ffmpeg running for the session",
        () => descendants(started.child.pid!).some((info) => info.command === "ffmpeg") || undefined,
      );

      const { code, tree, leftovers } = await stopWith(started, "SIGINT");
      expect(code).toBe(130);
      expect(tree.map((info) => info.command)).toEqual(expect.arrayContaining(["workerd", "ffmpeg"]));
      expect(leftovers).toEqual([]);
      expect(await portAvailable(port)).toBe(true);
    },
    BOOT_TEST_TIMEOUT_MS,
  );

  it(
    "keeps an existing .dev.vars, seeds DEV_API_KEY from the environment, runs without an agent, and stops on SIGTERM",
    async () => {
      const devVars = path.join(workDir, ".dev.vars");
      const before = await readFile(devVars, "utf8");
      const customKey = `rk_${"custom".repeat(8)}`;
      const started = await startScript(
        ["--state-dir", path.join(workDir, "state"), "--dev-vars", devVars, "--assets-dir", path.join(workDir, "site"), "--no-runtime"],
        {
          PORT: String(await freePort()),
          DEV_API_KEY: customKey,
        },
      );
      expect(await readFile(devVars, "utf8")).toBe(before);
      expect(started.banner).toContain(`Reactor-API-Key: ${customKey}`);
      expect(started.banner).toContain("No runtime agent (--no-runtime)");

      const custom = await mintToken(started.url, customKey);
      expect(custom.status, JSON.stringify(custom.body)).toBe(200);
      expect(custom.body.jwt).toMatch(JWT_PATTERN);
      // /dev/token mints with the overriding key too; no agent, so no model (the first run's agent left for good).
      const jwt = await devToken(started.url);
      expect((await getJson(`${started.url}/v1/models`, jwt)).body).toEqual({ models: [] });

      const { code, tree, leftovers } = await stopWith(started, "SIGTERM");
      expect(code).toBe(143);
      expect(tree.some((info) => info.command === "ffmpeg")).toBe(false);
      expect(leftovers).toEqual([]);
    },
    BOOT_TEST_TIMEOUT_MS,
  );

  it(
    "with an ffmpeg that cannot start: one line with the cause and the fix, and the official client is told why it gets no video",
    async () => {
      const started = await startScript(
        [
          "--state-dir",
          path.join(workDir, "state"),
          "--dev-vars",
          path.join(workDir, ".dev.vars"),
          "--assets-dir",
          path.join(workDir, "site"),
          "--slots",
          "1",
          "--ffmpeg",
          "/nonexistent/ffmpeg",
        ],
        { PORT: String(await freePort()), PATH: noFfmpegPath },
      );
      const line =
        "demo encoder: cannot start ffmpeg at /nonexistent/ffmpeg (ENOENT: no such file): fix --ffmpeg <path>, or leave it out to use the packaged ffmpeg";
      // The spare encoder could not start: said once, in one line, and the agent serves all the same.
      expect(
        started
          .output()
          .split("\n")
          .filter((text) => text.includes("demo encoder")),
      ).toEqual([expect.stringMatching(new RegExp(`^\\[runtime\\] +error ${escapeRegExp(line)}$`))]);

      const browser = await launchBrowser();
      const site = await servePage(await reactorClientPage());
      try {
        const client = await officialClient(browser, site.url, started.url, await devToken(started.url));
        await expect.poll(async () => (await client.state()).status, { timeout: 60_000 }).toBe("ready");
        await expect
          .poll(async () => (await client.state()).messages, { timeout: 30_000 })
          .toContainEqual({ type: "error", code: "ENCODER_UNAVAILABLE", message: line });
        expect((await client.state()).frames).toBe(0);
        const sessionId = await client.sessionId();
        expect(started.output()).toContain(`session ${sessionId}: ${line}`);
        await client.close();
      } catch (error) {
        (error as Error).message += `\n--- browser ---\n${browser.logs().join("\n")}\n--- npm start ---\n${started.output()}`;
        throw error;
      } finally {
        await Promise.all([browser.close(), site.close()]);
      }
      const { code, leftovers } = await stopWith(started, "SIGTERM");
      expect(code).toBe(143);
      expect(leftovers).toEqual([]);
    },
    BOOT_TEST_TIMEOUT_MS,
  );

  it.each([
    ["a malformed DEV_API_KEY", [], { DEV_API_KEY: "not-a-key" }, 1, "DEV_API_KEY (environment) is not a valid API key"],
    ["zero slots", ["--slots", "0"], {}, 2, 'invalid slots "0"'],
    ["slots without a runtime", ["--no-runtime", "--slots", "3"], {}, 2, "--slots is for the runtime agent"],
    ["spare encoders without a runtime", ["--no-runtime", "--spare-encoders", "0"], {}, 2, "--spare-encoders is for the runtime agent"],
    ["a spare encoder count that is not a number", ["--spare-encoders", "lots"], {}, 2, 'invalid spare-encoders "lots"'],
    ["an ffmpeg without a runtime", ["--no-runtime", "--ffmpeg", "/usr/bin/ffmpeg"], {}, 2, "--ffmpeg is for the runtime agent"],
  ])("refuses %s before starting anything", async (_, args, env, expectedCode, message) => {
    const paths = ["--dev-vars", path.join(workDir, "x.vars"), "--state-dir", path.join(workDir, "x-state")];
    const child = spawnStart([...paths, ...args], { PORT: String(await freePort()), ...env });
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise((resolve) => child.once("exit", resolve));
    expect(code).toBe(expectedCode);
    expect(stderr).toContain(message);
  });
});

describe("the checkout", () => {
  it("has the same public/build/ as before these tests (npm start built and served a copy in --assets-dir)", async () => {
    expect(await directoryFingerprint()).toBe(checkoutBuild);
  });
});
