/**
 * The demo page (public/) as `npm start` serves it: built by buildDemoAssets(), served by a real gateway
 * (`wrangler dev`, static assets) that has the dev token route, a real runtime agent running the demo model
 * (werift + ffmpeg), and headless Chromium clicking through the page like a person would.
 *
 * Kept as artifacts (test-results/): demo-page.png, the page with live video after a prompt was acknowledged;
 * demo-page-disconnected.png, after Disconnect; demo-page-phone.png, the same at 390×844; demo-page-error.png and
 * demo-page-error-phone.png, an error in the banner.
 *
 * About 500 lines, one file: its tests share the built page, the gateways, the runtime agent and Chromium.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clientToken, startGateway, type TestGateway } from "../../tools/gateway.ts";
import { ensureApiKey } from "../../lib/api-keys.ts";
import { RuntimeAgent } from "../../runtime/agent.ts";
import { demoModel } from "../../runtime/demo/model.ts";
import { withLocalDb } from "../../scripts/lib/local-d1.ts";
import { PROJECT_ROOT } from "../../scripts/lib/paths.ts";
import { launchBrowser, type TestBrowser } from "../../tools/browser.ts";
import { directoryFingerprint } from "./support/checkout.ts";
import { pngImage, sha256 } from "./support/images.ts";

const SCREENSHOT = path.join(PROJECT_ROOT, "test-results", "demo-page.png");
const PHONE_SCREENSHOT = path.join(PROJECT_ROOT, "test-results", "demo-page-phone.png");
const DISCONNECTED_SCREENSHOT = path.join(PROJECT_ROOT, "test-results", "demo-page-disconnected.png");
const ERROR_SCREENSHOT = path.join(PROJECT_ROOT, "test-results", "demo-page-error.png");
const PHONE_ERROR_SCREENSHOT = path.join(PROJECT_ROOT, "test-results", "demo-page-error-phone.png");
/** A prompt without a space, as long as set_prompt takes: it must wrap in the log, not run off it. */
const LONG_PROMPT = "x".repeat(120) + "-".repeat(40) + "y".repeat(40);
const DEV_API_KEY = "rk_dev_demo-page-test-key-0123456789abcdefghijklmnopqrstuvwxyz";
/** Generous: two cores shared with workerd, ffmpeg and Chromium. */
const UI_TIMEOUT_MS = 45_000;

let browser: TestBrowser;
/** The checkout's public/build/ before these tests: each gateway here builds the page into a copy of its own. */
let checkoutBuild: string;

beforeAll(async () => {
  checkoutBuild = await directoryFingerprint();
  [browser] = await Promise.all([launchBrowser(), mkdir(path.dirname(SCREENSHOT), { recursive: true })]);
});

afterAll(async () => {
  await browser?.close();
});

/** The page's own read-outs, by their element ids (public/index.html). */
const text = (page: Page, id: string) => page.locator(`#${id}`).innerText();

/** Picks a PNG in the Upload control: it is uploaded, sent as set_image, and the model's reply carries its digest. */
async function sendImage(page: Page): Promise<void> {
  const image = pngImage(96, 64);
  await page.getByLabel("Upload").setInputFiles({ name: "pixels.png", mimeType: "image/png", buffer: Buffer.from(image) });
  const reply = `command_result set_image ok — ${image.length} bytes, sha256 ${sha256(image)}`;
  await page.locator("#log li", { hasText: reply }).waitFor({ timeout: UI_TIMEOUT_MS });
}
const chosenModel = (page: Page) => page.locator("#model option:checked").innerText();
const framesShown = async (page: Page) => Number(await text(page, "stat-frames"));
const button = (page: Page, name: string) => page.getByRole("button", { name, exact: true });

async function openPage(url: string, viewport = { width: 1280, height: 900 }): Promise<Page> {
  const page = await browser.newPage();
  await page.setViewportSize(viewport);
  await page.goto(url);
  return page;
}

async function expectEnabled(locator: Locator): Promise<void> {
  await expect.poll(() => locator.isEnabled(), { timeout: UI_TIMEOUT_MS }).toBe(true);
}

async function expectStatus(page: Page, status: string): Promise<void> {
  await expect.poll(() => text(page, "status"), { timeout: UI_TIMEOUT_MS }).toBe(status);
}

/** The page's frame counter (requestVideoFrameCallback on its <video>) moves on by `count` frames. */
async function expectFramesAdvance(page: Page, count = 10): Promise<void> {
  const before = await framesShown(page);
  await expect.poll(() => framesShown(page), { timeout: UI_TIMEOUT_MS }).toBeGreaterThanOrEqual(before + count);
}

/** Distinct colours in a 64×36 sample of the current video frame: 1 for a blank (uniform) picture. */
function videoColours(page: Page): Promise<number> {
  return page.evaluate(() => {
    const video = document.querySelector("video")!;
    const canvas = document.createElement("canvas");
    canvas.width = 64;
    canvas.height = 36;
    const context = canvas.getContext("2d", { willReadFrequently: true })!;
    context.drawImage(video, 0, 0, canvas.width, canvas.height);
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
    const colours = new Set<number>();
    for (let i = 0; i < pixels.length; i += 4) colours.add((pixels[i]! << 16) | (pixels[i + 1]! << 8) | pixels[i + 2]!);
    return colours.size;
  });
}

/** The message log's entries after the first one containing `marker`, oldest first, without their times. */
async function logSince(page: Page, marker: string): Promise<string[]> {
  const newestFirst = await page.locator("#log li").evaluateAll((items) => items.map((item) => item.lastChild?.textContent ?? ""));
  const entries = newestFirst.reverse();
  const start = entries.findIndex((entry) => entry.includes(marker));
  return start === -1 ? [] : entries.slice(start + 1);
}

async function sendPrompt(page: Page, prompt: string): Promise<void> {
  await page.getByLabel("Prompt").fill(prompt);
  await button(page, "Send").click();
  await page.locator("#log li.reply", { hasText: `prompt "${prompt}"` }).waitFor({ timeout: UI_TIMEOUT_MS });
}

async function disconnect(page: Page): Promise<void> {
  await button(page, "Disconnect").click();
  await expectStatus(page, "disconnected");
}

/** The notice banner is visible, says `title`, and holds every one of `parts`. */
async function expectBanner(page: Page, title: string, ...parts: string[]): Promise<void> {
  await expect.poll(() => page.locator("#notice").isVisible(), { timeout: UI_TIMEOUT_MS }).toBe(true);
  expect(await page.locator("#notice").getAttribute("data-kind")).toBe("error");
  const shown = await text(page, "notice");
  expect(shown).toContain(title);
  for (const part of parts) expect(shown).toContain(part);
}

/** After a session: the placeholder (not a black frame), and no figures left of the connection that was. */
async function expectReset(page: Page): Promise<void> {
  await expect.poll(() => page.locator("#video-placeholder").isVisible(), { timeout: UI_TIMEOUT_MS }).toBe(true);
  expect(await text(page, "video-placeholder")).toBe("Press Connect to start a session");
  expect(await page.evaluate(() => document.querySelector("video")!.srcObject)).toBeNull();
  await expect
    .poll(() => Promise.all(["stat-fps", "stat-rtt", "stat-bitrate", "stat-resolution", "stat-candidate"].map((id) => text(page, id))))
    .toEqual(Array(5).fill("—"));
  expect(await text(page, "stat-frames")).toBe("0");
}

/** Nothing is wider than the viewport, and every log line fits inside the log. */
async function expectNoOverflow(page: Page, width: number): Promise<void> {
  const layout = await page.evaluate(() => {
    const log = document.getElementById("log")!;
    return {
      pageWidth: document.documentElement.scrollWidth,
      logOverflow: log.scrollWidth - log.clientWidth,
      widestLine: Math.max(
        0,
        ...[...log.querySelectorAll("li")].map((item) => item.getBoundingClientRect().right - log.getBoundingClientRect().right),
      ),
    };
  });
  expect(layout.pageWidth).toBeLessThanOrEqual(width);
  expect(layout.logOverflow).toBeLessThanOrEqual(0);
  expect(layout.widestLine).toBeLessThanOrEqual(0.5);
}

/** Every frame rate the page shows over a few seconds (read twice a second, as it refreshes). */
async function frameRatesShown(page: Page, seconds = 4): Promise<number[]> {
  const rates: number[] = [];
  for (let i = 0; i < seconds * 2; i++) {
    const shown = await text(page, "stat-fps");
    if (shown !== "—") rates.push(Number.parseInt(shown, 10));
    await page.waitForTimeout(500);
  }
  return rates;
}

/** Five sessions of the dev account over REST: all the concurrent sessions it may have. Returns a function ending them. */
async function holdAllSessions(gatewayUrl: string): Promise<() => Promise<void>> {
  const { jwt } = (await (await fetch(`${gatewayUrl}/dev/token`, { method: "POST" })).json()) as { jwt: string };
  const headers = { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" };
  const ids: string[] = [];
  const end = async () => {
    for (const id of ids) await fetch(`${gatewayUrl}/sessions/${id}`, { method: "DELETE", headers });
  };
  try {
    for (let n = 0; n < 5; n++) {
      const response = await fetch(`${gatewayUrl}/sessions`, { method: "POST", headers, body: JSON.stringify({ model: { name: "demo" } }) });
      if (!response.ok) throw new Error(`POST /sessions: ${response.status} ${await response.text()}`);
      ids.push(((await response.json()) as { session_id: string }).session_id);
    }
  } catch (error) {
    await end();
    throw error;
  }
  return end;
}

/** Lines the runtime agent logged, for failure messages. */
const agentLines: string[] = [];
let currentGateway: TestGateway | undefined;

/** A failure comes with what the browser, the runtime agent and the gateway said: that is where a page's problems show. */
async function explained<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    (error as Error).message += [
      "\n--- browser console ---",
      ...browser.logs().slice(-60),
      "--- runtime agent ---",
      ...agentLines.slice(-40),
      "--- gateway ---",
      currentGateway?.output().split("\n").slice(-40).join("\n") ?? "",
    ].join("\n");
    throw error;
  }
}

describe("under npm start (dev token route, runtime agent with the demo model)", () => {
  let gateway: TestGateway;
  let agent: RuntimeAgent;
  let stateDir: string;

  beforeAll(async () => {
    // As npm start does: the dev key is an active key of account dev before the gateway opens the database.
    stateDir = await mkdtemp(path.join(tmpdir(), "demo-page-state-"));
    await withLocalDb(stateDir, (db) => ensureApiKey(db, "dev", DEV_API_KEY, "dev"));
    gateway = currentGateway = await startGateway({ stateDir, migrate: false, assets: "demo", vars: { DEV_API_KEY, STUN_URLS: "" } });
    agent = new RuntimeAgent({
      gatewayUrl: gateway.url,
      token: gateway.runtimeToken,
      model: demoModel(),
      slots: 2,
      log: (level, message) => agentLines.push(`${level} ${message}`),
    });
    await agent.start();
  });

  afterAll(async () => {
    await agent?.stop();
    await gateway?.stop();
    await rm(stateDir, { recursive: true, force: true });
  });

  it("native mode: connect, live video, a prompt acknowledged; the screenshot is kept", async () => {
    const page = await openPage(gateway.url);
    await explained(async () => {
      await expect.poll(() => chosenModel(page), { timeout: UI_TIMEOUT_MS }).toMatch(/^demo — \d\/2 free, queue 0$/);
      expect(await page.getByLabel("Native SDK").isChecked()).toBe(true);

      await button(page, "Connect").click();
      await expectStatus(page, "ready");
      expect(await text(page, "session-id")).toMatch(/^\S{8,}$/);
      expect(await text(page, "session-state")).toBe("ACTIVE");
      await expectFramesAdvance(page);

      await sendImage(page);

      await sendPrompt(page, "hello from the demo page test");
      await page.locator("#log li", { hasText: "set_prompt acknowledged" }).waitFor({ timeout: UI_TIMEOUT_MS });
      await expectFramesAdvance(page);
      expect(await text(page, "stat-resolution")).toBe("640×360");
      expect(await videoColours(page)).toBeGreaterThan(16);

      // A prompt with no space to break at wraps inside the log.
      await sendPrompt(page, LONG_PROMPT);
      await expectNoOverflow(page, 1280);
      const rates = await frameRatesShown(page, 2);
      expect(rates.length).toBeGreaterThan(0);
      expect(Math.max(...rates)).toBeLessThanOrEqual(36); // the model sends 30 fps

      const before = await page.locator("video").screenshot();
      await expectFramesAdvance(page);
      expect(await page.locator("#video-placeholder").isVisible()).toBe(false);
      await writeFile(SCREENSHOT, await page.screenshot({ fullPage: true }));
      const after = await page.locator("video").screenshot();
      expect(Buffer.compare(before, after)).not.toBe(0); // the picture itself changes: the video is live

      await disconnect(page);
      await expectReset(page);
      await writeFile(DISCONNECTED_SCREENSHOT, await page.screenshot({ fullPage: true }));
    });
    await page.close();
  });

  it("native mode: the drop connection button loses the connection and the client recovers the same session", async () => {
    const page = await openPage(gateway.url);
    await explained(async () => {
      await expectEnabled(button(page, "Connect"));
      await button(page, "Connect").click();
      await expectStatus(page, "ready");
      const sessionId = await text(page, "session-id");
      await expectFramesAdvance(page);

      await button(page, "Drop connection").click();
      const sinceDrop = () => logSince(page, "dropping the connection");
      await expect.poll(sinceDrop, { timeout: UI_TIMEOUT_MS }).toContain("status: ready");
      // On the way back: the client lost "ready", and the gateway held the session in its grace window.
      const recovery = await sinceDrop();
      expect(recovery.indexOf("status: connecting")).toBeGreaterThanOrEqual(0);
      expect(recovery.indexOf("status: connecting")).toBeLessThan(recovery.indexOf("status: ready"));
      expect(recovery).toContainEqual(expect.stringMatching(/^session RECONNECTING.*, \d+ s left to reconnect$/));
      expect(await text(page, "session-id")).toBe(sessionId);
      await expectFramesAdvance(page);
      // Just after the drop the new connection's first frames come in a burst: the rate shown is not thrown by it.
      const rates = await frameRatesShown(page);
      expect(rates.length).toBeGreaterThan(0);
      expect(Math.max(...rates)).toBeLessThanOrEqual(36);
      await sendPrompt(page, "after the drop");

      await disconnect(page);
    });
    await page.close();
  });

  it("official mode: the switch runs the same flow with @reactor-team/js-sdk 2.9.0, to ready with video", async () => {
    const page = await openPage(gateway.url);
    await explained(async () => {
      await expectEnabled(button(page, "Connect"));
      await page.getByLabel(/Official/).check();
      await button(page, "Connect").click();
      await expectStatus(page, "ready");
      expect(await text(page, "session-id")).toMatch(/^\S{8,}$/);
      expect(await text(page, "queue-position")).toBe("—");
      await expectFramesAdvance(page);
      expect(await videoColours(page)).toBeGreaterThan(16);
      await sendPrompt(page, "hello from the official client");
      await sendImage(page);
      // Its replies read as in native mode: the upload's notice too, never raw JSON.
      await page.locator("#log li", { hasText: "file_uploaded pixels.png (image/png," }).waitFor({ timeout: UI_TIMEOUT_MS });
      expect((await logSince(page, "connecting to model")).filter((entry) => entry.includes('{"'))).toEqual([]);

      // 2.9.0 cannot lose its connection on purpose: the button is disconnect(true) then reconnect(), same session.
      const sessionId = await text(page, "session-id");
      await button(page, "Drop connection").click();
      await expect.poll(() => logSince(page, "dropping the connection"), { timeout: UI_TIMEOUT_MS }).toContain("status: ready");
      expect(await logSince(page, "dropping the connection")).toContain("status: disconnected");
      expect(await text(page, "session-id")).toBe(sessionId);
      await expectFramesAdvance(page);

      await disconnect(page);
    });
    await page.close();
  });

  it("the account's sixth session: CONCURRENCY_LIMIT in the banner at once, on desktop and on a phone", async () => {
    const endSessions = await holdAllSessions(gateway.url);
    try {
      for (const [viewport, screenshot] of [
        [{ width: 1280, height: 900 }, ERROR_SCREENSHOT],
        [{ width: 390, height: 844 }, PHONE_ERROR_SCREENSHOT],
      ] as const) {
        const page = await openPage(gateway.url, viewport);
        await explained(async () => {
          await expectEnabled(button(page, "Connect"));
          await button(page, "Connect").click();
          await expectBanner(page, "Too many sessions at once", "End one of them", "CONCURRENCY_LIMIT");
          await expectStatus(page, "disconnected");
          expect(await button(page, "Connect").isEnabled()).toBe(true);
          expect(await page.locator("#log li.error", { hasText: "CONCURRENCY_LIMIT" }).count()).toBe(1); // tried once
          await expectNoOverflow(page, viewport.width);
          await writeFile(screenshot, await page.screenshot({ fullPage: true }));
          await page.getByRole("button", { name: "Dismiss" }).click();
          expect(await page.locator("#notice").isVisible()).toBe(false);
        });
        await page.close();
      }
    } finally {
      await endSessions();
    }
  });

  it('a model\'s error message ({ type: "error", code, message }) is shown in the banner', async () => {
    // A second runtime serving a model whose encoder cannot start: the model says so in an error message.
    const broken = new RuntimeAgent({
      gatewayUrl: gateway.url,
      token: gateway.runtimeToken,
      model: { ...demoModel({ ffmpegPath: "/nonexistent/ffmpeg" }), name: "demo-broken" },
      slots: 1,
      log: (level, message) => agentLines.push(`broken: ${level} ${message}`),
    });
    await broken.start();
    const page = await openPage(gateway.url);
    try {
      await explained(async () => {
        await expect.poll(() => page.locator('#model option[value="demo-broken"]').count(), { timeout: UI_TIMEOUT_MS }).toBe(1);
        await page.selectOption("#model", "demo-broken");
        await button(page, "Connect").click();
        await expectBanner(page, "The model reported an error", "ENCODER_UNAVAILABLE");
        expect(await page.locator("#log li.error", { hasText: "model error ENCODER_UNAVAILABLE" }).count()).toBeGreaterThan(0);
        await disconnect(page);
      });
    } finally {
      await page.close();
      await broken.stop();
    }
  });

  it("fits a phone-sized viewport: one column, nothing wider than the screen, the video live", async () => {
    const page = await openPage(gateway.url, { width: 390, height: 844 });
    await explained(async () => {
      await expectEnabled(button(page, "Connect"));
      await button(page, "Connect").click();
      await expectStatus(page, "ready");
      await expectFramesAdvance(page);
      await sendPrompt(page, LONG_PROMPT);
      const layout = await page.evaluate(() => ({
        pageWidth: document.documentElement.scrollWidth,
        videoRight: document.querySelector("video")!.getBoundingClientRect().right,
      }));
      expect(layout.pageWidth).toBeLessThanOrEqual(390);
      expect(layout.videoRight).toBeLessThanOrEqual(390);
      await expectNoOverflow(page, 390);
      await writeFile(PHONE_SCREENSHOT, await page.screenshot({ fullPage: true }));
      await disconnect(page);
      await expectReset(page);
    });
    await page.close();
  });
});

describe("on a gateway without the dev token route", () => {
  let gateway: TestGateway;

  beforeAll(async () => {
    gateway = currentGateway = await startGateway({ assets: "demo", vars: { STUN_URLS: "" } }); // no DEV_API_KEY
  });

  afterAll(async () => {
    await gateway?.stop();
  });

  it("the page says how to get a token, refuses what is not one, and works with a pasted token", async () => {
    const page = await openPage(gateway.url);
    await explained(async () => {
      const notice = () => text(page, "notice");
      await expect.poll(notice, { timeout: UI_TIMEOUT_MS }).toContain("this gateway has no dev token route");
      expect(await notice()).toContain("npm start");
      expect(await notice()).toContain("POST /tokens");
      expect(await page.getByRole("alert").isVisible()).toBe(true);
      expect(await button(page, "Connect").isDisabled()).toBe(true);

      await page.getByLabel("Client token").fill("not-a-token");
      await button(page, "Use token").click();
      await expect.poll(notice).toContain("that is not a token");
      expect(await button(page, "Connect").isDisabled()).toBe(true);

      await page.getByLabel("Client token").fill(await clientToken(gateway));
      await button(page, "Use token").click();
      await page.locator("#notice").waitFor({ state: "hidden" });
      expect(await text(page, "token-status")).toContain("Using the pasted token");
      // The token works: /v1/models answers (no runtime here, so the picker keeps "demo" and says why).
      await expect.poll(() => text(page, "model-status"), { timeout: UI_TIMEOUT_MS }).toContain("No runtime is registered yet");
      expect(await chosenModel(page)).toBe("demo — no runtime");
      await expectEnabled(button(page, "Connect"));
    });
    await page.close();
  });

  it("a token the gateway refuses: the banner says so, with its code", async () => {
    const page = await openPage(gateway.url);
    await explained(async () => {
      // Shaped like a token, not expired, but signed by no key of this gateway.
      const part = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
      const forged = `${part({ alg: "ES256", typ: "JWT", kid: "nope" })}.${part({ sub: "someone", exp: Math.floor(Date.now() / 1000) + 3600 })}.${"A".repeat(86)}`;
      await page.getByLabel("Client token").fill(forged);
      await button(page, "Use token").click();
      await expectEnabled(button(page, "Connect"));
      await button(page, "Connect").click();
      await expectBanner(page, "The token was refused", "TOKEN_");
      await expectStatus(page, "disconnected");
    });
    await page.close();
  });

  it("with no runtime the session waits in the queue, with its position; a prompt sent meanwhile ends dropped", async () => {
    // The gateway takes sessions only for a model some runtime has served: one registers "demo", then leaves.
    const gone = new RuntimeAgent({ gatewayUrl: gateway.url, token: gateway.runtimeToken, model: demoModel(), slots: 1, log: () => undefined });
    await gone.start();
    await gone.stop();
    const page = await openPage(gateway.url);
    await explained(async () => {
      await page.getByLabel("Client token").fill(await clientToken(gateway));
      await button(page, "Use token").click();
      await expectEnabled(button(page, "Connect"));

      await button(page, "Connect").click();
      await expectStatus(page, "waiting");
      await expect.poll(() => text(page, "session-state"), { timeout: UI_TIMEOUT_MS }).toBe("WAITING");
      expect(await text(page, "queue-position")).toBe("1");
      expect(await button(page, "Drop connection").isDisabled()).toBe(true);

      // The native client accepts a prompt while waiting (it would be delivered once ready)…
      await page.getByLabel("Prompt").fill("while waiting");
      await button(page, "Send").click();
      // …and reports it dropped when the session ends before it could be.
      await disconnect(page);
      await page.locator("#log li.error", { hasText: "set_prompt dropped: SESSION_ENDED" }).waitFor({ timeout: UI_TIMEOUT_MS });
      expect(await logSince(page, "connecting to model")).toContain("session CLOSED (client_closed)");
      expect(await button(page, "Connect").isEnabled()).toBe(true);
    });
    await page.close();
  });
});

describe("the checkout", () => {
  it("has the same public/build/ as before these tests (they built and served copies of their own)", async () => {
    expect(await directoryFingerprint()).toBe(checkoutBuild);
  });
});
