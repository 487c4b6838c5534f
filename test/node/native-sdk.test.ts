/**
 * The native SDK (sdk/) end to end: its browser bundle in headless Chromium, a real gateway (`wrangler dev`), and
 * the real runtime agent serving the demo model (werift + ffmpeg, live VP8). One GPU slot, so the queue is real too.
 * The same SDK also runs in Node (werift as its RTCPeerConnection, or none).
 *
 * One file over 500 lines on purpose: every test shares the one gateway, runtime agent and Chromium started below
 * (each takes seconds to start on a 2-core machine). The recovery policy alone is sdk-reconnect-policy.test.ts.
 */
import { randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RTCPeerConnection as WeriftPeerConnection } from "werift";
import { clientToken, startGateway, type TestGateway } from "../../tools/gateway.ts";
import { registerModel } from "../../tools/peers.ts";
import { RuntimeAgent } from "../../runtime/agent.ts";
import { demoModel } from "../../runtime/demo/model.ts";
import { Client, type ClientStats, type RTCPeerConnectionConstructor } from "../../sdk/src/index.ts";
import { launchBrowser, servePage, type ServedPage, type TestBrowser } from "../../tools/browser.ts";
import { sdkHarness, sdkPage, type CreateOptions, type SdkHarness, type SdkState } from "../../tools/sdk-page.ts";

/** Generous: two cores shared by workerd, ffmpeg, werift and Chromium. */
const WAIT = { timeout: 45_000, interval: 100 };
/** How long an unknown model waits for a runtime before the gateway gives up (short, so the test is too). */
const QUEUE_WAIT_SECONDS = 10;

let gateway: TestGateway;
let agent: RuntimeAgent;
let browser: TestBrowser;
let site: ServedPage;
let jwt: string;
const pages: Page[] = [];

beforeAll(async () => {
  [gateway, browser, site] = await Promise.all([
    startGateway({ vars: { STUN_URLS: "", SESSION_QUEUE_WAIT_SECONDS: String(QUEUE_WAIT_SECONDS) } }),
    launchBrowser(),
    sdkPage().then((files) => servePage(files)),
  ]);
  agent = new RuntimeAgent({ gatewayUrl: gateway.url, token: gateway.runtimeToken, model: demoModel(), slots: 1, log: () => undefined });
  await agent.start();
  jwt = await clientToken(gateway);
});

afterAll(async () => {
  await agent?.stop();
  await Promise.all([browser?.close(), site?.close(), gateway?.stop()]);
});

afterEach(async () => {
  // Every test ends its sessions, so the one GPU slot is free for the next; a failed test may not have.
  for (const page of pages.splice(0)) {
    await sdkHarness(page)
      .disconnect()
      .catch(() => undefined);
    await page.close();
  }
});

async function openClient(modelName = "demo", extra: Omit<CreateOptions, "apiUrl" | "modelName"> = {}): Promise<SdkHarness> {
  const page = await browser.newPage();
  pages.push(page);
  await page.goto(site.url);
  const sdk = sdkHarness(page);
  await sdk.create({ apiUrl: gateway.url, modelName, ...extra });
  return sdk;
}

async function readyClient(): Promise<SdkHarness> {
  const sdk = await openClient();
  await sdk.connect(jwt);
  await expectStatus(sdk, "ready");
  return sdk;
}

async function expectStatus(sdk: SdkHarness, status: string): Promise<void> {
  await expect.poll(async () => (await sdk.state()).status, WAIT).toBe(status);
}

/** The page's <video> presents `count` more frames of the current stream, and its media time moves on. */
async function expectVideoAdvances(sdk: SdkHarness, count = 10): Promise<void> {
  const before = await sdk.state();
  await expect.poll(async () => (await sdk.state()).frames, WAIT).toBeGreaterThanOrEqual(before.frames + count);
  expect((await sdk.state()).mediaTime).toBeGreaterThan(before.frames > 0 ? before.mediaTime : 0);
}

async function sessionState(sessionId: string): Promise<string> {
  const response = await fetch(`${gateway.url}/sessions/${sessionId}/info`, { headers: { Authorization: `Bearer ${jwt}` } });
  return ((await response.json()) as { state: string }).state;
}

const replies = (state: SdkState) => state.messages.map((message) => message.data as { command?: string; prompt?: string; data?: unknown });

/** Fails with the browser's console output, which is where a page's problems show. */
async function withLogs<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    (error as Error).message += `\n--- browser console ---\n${browser.logs().slice(-40).join("\n")}`;
    throw error;
  }
}

describe("sessions, media, commands and messages", () => {
  it("reaches ready through waiting, decodes main_video, and set_prompt's reply arrives as a message", () =>
    withLogs(async () => {
      const sdk = await openClient();
      await sdk.connect(jwt);
      expect((await sdk.state()).connectResult).toBe("ok");
      await expectStatus(sdk, "ready");
      const state = await sdk.state();
      expect(state.statuses).toEqual(["connecting", "waiting", "ready"]);
      expect(state.sessionId).toMatch(/^ses_/);
      expect(state.tracks).toEqual(["main_video:video"]);
      expect(state.infos.at(-1)).toMatchObject({ state: "ACTIVE" });
      await expectVideoAdvances(sdk);

      const index = await sdk.send("set_prompt", { prompt: "hello native" });
      await expect.poll(async () => (await sdk.state()).commands[index]?.done, WAIT).toBe("acknowledged");
      expect((await sdk.state()).commands[index]).toMatchObject({ seq: 1, states: ["waiting", "delivered", "acknowledged"] });
      await expect
        .poll(async () => replies(await sdk.state()), WAIT)
        .toContainEqual(expect.objectContaining({ type: "command_result", command: "set_prompt", ok: true, prompt: "hello native" }));
      await expect.poll(async () => (await sdk.state()).stats.at(-1)?.framesDecoded ?? 0, WAIT).toBeGreaterThan(0);
      await expect.poll(async () => (await sdk.state()).stats.at(-1)?.bitrateKbps ?? 0, WAIT).toBeGreaterThan(0);
      // Frames decoded per second of the last period: the demo model sends 30 (a loaded machine decodes fewer).
      await expect.poll(async () => (await sdk.state()).stats.at(-1)?.fps ?? 0, WAIT).toBeGreaterThan(0);
      expect((await sdk.state()).stats.at(-1)!.fps).toBeLessThanOrEqual(36);
      expect((await sdk.state()).stats.at(-1)).toMatchObject({
        candidateType: "host",
        rttMs: expect.any(Number),
        fps: expect.any(Number),
        generation: 1,
      });
      expect((await sdk.state()).errors).toEqual([]);
    }));

  it("disconnect(true) keeps the session; reconnect() returns to ready on the same session, with video", () =>
    withLogs(async () => {
      const sdk = await readyClient();
      const { sessionId } = await sdk.state();
      await sdk.disconnect(true);
      expect((await sdk.state()).status).toBe("disconnected");
      expect((await sdk.state()).sessionId).toBe(sessionId);
      await expect.poll(() => sessionState(sessionId!), WAIT).toBe("RECONNECTING");

      await sdk.reconnect();
      expect((await sdk.state()).reconnectResult).toBe("ok");
      await expectStatus(sdk, "ready");
      expect((await sdk.state()).sessionId).toBe(sessionId);
      expect(await sessionState(sessionId!)).toBe("ACTIVE");
      expect((await sdk.state()).tracks).toHaveLength(2); // a new peer connection, a new track
      await expectVideoAdvances(sdk);
    }));

  it("disconnect() ends the session at once", () =>
    withLogs(async () => {
      const sdk = await readyClient();
      const { sessionId } = await sdk.state();
      await sdk.disconnect();
      expect(await sessionState(sessionId!)).toBe("CLOSED");
      const state = await sdk.state();
      expect(state.status).toBe("disconnected");
      expect(state.sessionIds.at(-1)).toBeNull();
      expect(state.errors).toEqual([]);
    }));

  it("commands sent around a dropped connection arrive exactly once and in order; a token function is called per socket", () =>
    withLogs(async () => {
      const sdk = await openClient();
      await sdk.connect(jwt, { tokenAsFunction: true });
      await expectStatus(sdk, "ready");
      const { sessionId, tokenCalls } = await sdk.state();
      expect(tokenCalls).toBe(1);

      for (let n = 1; n <= 3; n++) await sdk.send("echo", { n });
      await sdk.dropConnection(); // some of those may still be in flight
      for (let n = 4; n <= 6; n++) await sdk.send("echo", { n });
      await expect.poll(async () => (await sdk.state()).statuses, WAIT).toEqual(["connecting", "waiting", "ready", "connecting", "ready"]);
      await expect.poll(async () => (await sdk.state()).commands.map((command) => command.done), WAIT).toEqual(Array(6).fill("acknowledged"));
      const state = await sdk.state();
      expect(state.commands.map((command) => command.seq)).toEqual([1, 2, 3, 4, 5, 6]);
      const echoes = replies(state)
        .filter((reply) => reply.command === "echo")
        .map((reply) => (reply.data as { n: number }).n);
      expect(echoes).toEqual([1, 2, 3, 4, 5, 6]);
      expect(state.messages.map((message) => message.seq)).toEqual(state.messages.map((_, index) => index + 1));
      expect(state.sessionId).toBe(sessionId);
      expect(state.tokenCalls).toBeGreaterThanOrEqual(2);
      expect(state.sockets).toBeGreaterThanOrEqual(2);
      expect(state.errors.map((error) => error.code)).toEqual(["DISCONNECTED"]);
      expect(state.errors[0]).toMatchObject({ recoverable: true, retryAfter: expect.any(Number) });
      await expectVideoAdvances(sdk);
    }));

  it("commands and acknowledgements lost with a dying connection are sent again after it drops, and nothing arrives twice", () =>
    withLogs(async () => {
      const sdk = await readyClient();
      await sdk.loseSendsAfterNextMessage();
      await sdk.send("echo", { n: 1 });
      await expect.poll(async () => (await sdk.state()).messages.length, WAIT).toBe(1); // its ack is lost from here on
      await sdk.send("echo", { n: 2 }); // lost on the wire
      await sdk.send("echo", { n: 3 });
      expect((await sdk.state()).commands.map((command) => command.states.at(-1))).toEqual(["acknowledged", "waiting", "waiting"]);

      await sdk.dropConnection();
      await expect.poll(async () => (await sdk.state()).commands.map((command) => command.done), WAIT).toEqual(Array(3).fill("acknowledged"));
      await expect.poll(async () => (await sdk.state()).messages.length, WAIT).toBe(3);
      const state = await sdk.state();
      expect(state.commands.map((command) => command.seq)).toEqual([1, 2, 3]);
      // The gateway sent message 1 again (never acknowledged); the client delivered it once.
      expect(state.messages.map((message) => message.seq)).toEqual([1, 2, 3]);
      expect(replies(state).map((reply) => (reply.data as { n: number }).n)).toEqual([1, 2, 3]);
    }));

  it("after a dropped connection the session goes RECONNECTING once, then ACTIVE once the new peer connection is up: no flapping", () =>
    withLogs(async () => {
      const sdk = await readyClient();
      const before = await sdk.state();
      await sdk.dropConnection();
      await expect.poll(async () => (await sdk.state()).statuses.slice(before.statuses.length), WAIT).toEqual(["connecting", "ready"]);
      await expectVideoAdvances(sdk); // time for any late report to show
      const state = await sdk.state();
      // Every state the gateway reported since the drop (repeats of one state, e.g. a new grace deadline, folded).
      const states = state.infos.slice(before.infos.length).map((info) => info.state);
      expect(states.filter((s, i) => s !== states[i - 1])).toEqual(["RECONNECTING", "ACTIVE"]);
      expect(state.statuses.slice(before.statuses.length)).toEqual(["connecting", "ready"]);
      // The new peer connection's first frames come in a burst: the frame rate is not read from it (30 fps sent).
      expect(Math.max(...state.stats.map((sample) => sample.fps ?? 0))).toBeLessThanOrEqual(36);
    }));

  it("back online after an outage, the client reconnects at once: the backoff wait is cut short", () =>
    withLogs(async () => {
      // A backoff far longer than the test waits: a reconnect that waited for it would not come in time.
      const backoffMs = 20_000;
      const sdk = await openClient("demo", {
        backoff: { initialMs: backoffMs, maxMs: backoffMs, jitter: 0, marginMs: 0 },
        options: { keepAliveMs: 1000 },
      });
      await sdk.connect(jwt);
      await expectStatus(sdk, "ready");
      const { sessionId } = await sdk.state();
      const context = pages.at(-1)!.context();
      await context.setOffline(true);
      // Offline, the keep-alive finds the socket silent and drops it; the client waits out its backoff.
      await expect.poll(async () => (await sdk.state()).errors.map((error) => error.code), WAIT).toEqual(["DISCONNECTED"]);
      await context.setOffline(false);
      await expectStatus(sdk, "ready");
      const state = await sdk.state();
      const at = (direction: string, type: string, after = 0) =>
        state.wire.find(([d, t, ms]) => d === direction && t === type && ms >= after)?.[2] ?? NaN;
      const closed = state.errors[0]!.ms; // DISCONNECTED: the keep-alive gave up on the socket
      const online = at("!", "online", closed);
      const reopened = at("<", "(open)", closed);
      expect(reopened).toBeGreaterThan(online); // no attempt while offline (the backoff was running)…
      expect(reopened - closed).toBeLessThan(backoffMs); // …and none waited for its end once online
      expect(state.sessionId).toBe(sessionId);
      expect(state.errors.map((error) => error.code)).toEqual(["DISCONNECTED"]);
      // Back online, at most one new peer connection: never one per `online` event or a throttled second one.
      expect(state.wire.filter(([direction, type, ms]) => direction === ">" && type === "offer" && ms > online).length).toBeLessThanOrEqual(1);
      await expectVideoAdvances(sdk);
    }));

  it("a signaling-only drop keeps the peer connection: a new socket, the same generation, no new track", () =>
    withLogs(async () => {
      const sdk = await readyClient();
      await expect.poll(async () => (await sdk.state()).stats.at(-1)?.generation, WAIT).toBe(1);
      await sdk.closeSocket();
      await expect.poll(async () => (await sdk.state()).sockets, WAIT).toBe(2);
      await expect.poll(async () => (await sdk.state()).statuses.slice(-2), WAIT).toEqual(["connecting", "ready"]);
      const index = await sdk.send("echo", { n: 1 });
      await expect.poll(async () => (await sdk.state()).commands[index]?.done, WAIT).toBe("acknowledged");
      const state = await sdk.state();
      expect(state.tracks).toHaveLength(1);
      expect(state.stats.at(-1)?.generation).toBe(1);
      expect(state.wire.filter(([direction, type]) => direction === ">" && type === "offer")).toHaveLength(1);
      await expectVideoAdvances(sdk);
    }));

  it("a network change keeps a peer connection that still carries media: no new offer, the same generation", () =>
    withLogs(async () => {
      const sdk = await readyClient();
      await expect.poll(async () => (await sdk.state()).stats.at(-1)?.generation, WAIT).toBe(1);
      await sdk.networkChanged();
      await sdk.networkChanged(); // browsers fire several at once
      await expectVideoAdvances(sdk, 90); // ~3 s of video: longer than the client looks at the path
      const state = await sdk.state();
      expect(state.wire.filter(([direction, type]) => direction === ">" && type === "offer")).toHaveLength(1);
      expect(state.stats.at(-1)?.generation).toBe(1);
      expect(state.tracks).toHaveLength(1);
      expect(state.statuses.at(-1)).toBe("ready");
    }));

  it("restartIce() renews the peer connection on the same session and the video goes on", () =>
    withLogs(async () => {
      const sdk = await readyClient();
      const { sessionId } = await sdk.state();
      await expect.poll(async () => (await sdk.state()).stats.at(-1)?.generation, WAIT).toBe(1);
      await sdk.restartIce();
      await expect.poll(async () => (await sdk.state()).stats.at(-1)?.generation, WAIT).toBe(2);
      await expectStatus(sdk, "ready");
      const state = await sdk.state();
      expect(state.sessionId).toBe(sessionId);
      expect(state.sockets).toBe(1); // the same signaling socket: only the peer connection was renewed
      expect(state.tracks).toHaveLength(2);
      await expectVideoAdvances(sdk);
      const index = await sdk.send("echo", { after: "restart" });
      await expect.poll(async () => (await sdk.state()).commands[index]?.done, WAIT).toBe("acknowledged");
    }));
});

describe("the queue and whileWaiting policies", () => {
  it("a second session on the one slot waits at position 1 and becomes ready when the first ends; buffer delivers, replace keeps the last, drop drops", () =>
    withLogs(async () => {
      const first = await readyClient();
      const second = await openClient();
      await second.connect(jwt);
      await expect.poll(async () => (await second.state()).infos.at(-1), WAIT).toMatchObject({ state: "WAITING", queuePosition: 1 });
      expect((await second.state()).status).toBe("waiting");

      const buffered = await second.send("echo", { policy: "buffer" }, "buffer");
      const replaced = await second.send("set_prompt", { prompt: "first" }, "replace");
      const kept = await second.send("set_prompt", { prompt: "second" }, "replace");
      const dropped = await second.send("echo", { policy: "drop" }, "drop");
      await expect
        .poll(async () => (await second.state()).commands.map((command) => command.done ?? command.states.at(-1)), WAIT)
        .toEqual(["waiting", "replaced", "waiting", "dropped"]);
      expect((await second.state()).commands[dropped]!.error).toBe("COMMAND_DROPPED");

      await first.disconnect();
      await expectStatus(second, "ready");
      await expect.poll(async () => (await second.state()).commands[kept]?.done, WAIT).toBe("acknowledged");
      const state = await second.state();
      expect(state.commands[buffered]).toMatchObject({ done: "acknowledged", states: ["waiting", "delivered", "acknowledged"] });
      expect(state.commands[replaced]).toMatchObject({ done: "replaced", states: ["waiting", "replaced"] });
      expect(state.commands[kept]).toMatchObject({ done: "acknowledged", states: ["waiting", "delivered", "acknowledged"] });
      expect(state.commands[dropped]).toMatchObject({ done: "dropped", states: ["waiting", "dropped"] });
      await expect.poll(async () => replies(await second.state()).map((reply) => reply.command), WAIT).toEqual(["echo", "set_prompt"]);
      expect(replies(await second.state())[1]).toMatchObject({ prompt: "second" });
      await expectVideoAdvances(second);
    }));

  it("without a connection, policies apply in the client: buffer and replace wait for reconnect(), drop drops at once", () =>
    withLogs(async () => {
      const sdk = await readyClient();
      await sdk.disconnect(true);
      const buffered = await sdk.send("echo", { n: 1 }, "buffer");
      const replaced = await sdk.send("set_prompt", { prompt: "old" }, "replace");
      const kept = await sdk.send("set_prompt", { prompt: "new" }, "replace");
      const dropped = await sdk.send("echo", { n: 2 }, "drop");
      let state = await sdk.state();
      expect(state.commands.map((command) => command.states)).toEqual([["waiting"], ["waiting", "replaced"], ["waiting"], ["dropped"]]);
      expect(state.commands.map((command) => command.seq ?? null)).toEqual([null, null, null, null]); // never sent

      await sdk.reconnect();
      await expectStatus(sdk, "ready");
      await expect.poll(async () => (await sdk.state()).commands[kept]?.done, WAIT).toBe("acknowledged");
      state = await sdk.state();
      expect(state.commands[buffered]).toMatchObject({ seq: 1, done: "acknowledged" });
      expect(state.commands[kept]).toMatchObject({ seq: 2, done: "acknowledged" });
      expect(state.commands[replaced]!.done).toBe("replaced");
      expect(state.commands[dropped]!.done).toBe("dropped");
      await expect.poll(async () => replies(await sdk.state()).map((reply) => reply.prompt ?? reply.command), WAIT).toEqual(["echo", "new"]);
    }));
});

describe("unhappy paths", () => {
  it("a malformed token fails connect() with TOKEN_MALFORMED and no session", () =>
    withLogs(async () => {
      const sdk = await openClient();
      await sdk.connect("not-a-jwt");
      const state = await sdk.state();
      expect(state.connectResult).toBe("error:TOKEN_MALFORMED");
      expect(state.errors).toEqual([expect.objectContaining({ code: "TOKEN_MALFORMED", recoverable: false, component: "api" })]);
      expect(state.status).toBe("disconnected");
      expect(state.sessionId).toBeNull();
    }));

  it("an expired token fails connect() with TOKEN_EXPIRED", () =>
    withLogs(async () => {
      const minted = await mintShortToken();
      await sleepUntil((minted.expires_at + 6) * 1000); // past the gateway's clock tolerance
      const sdk = await openClient();
      await sdk.connect(minted.jwt);
      const state = await sdk.state();
      expect(state.connectResult).toBe("error:TOKEN_EXPIRED");
      expect(state.errors.map((error) => error.code)).toEqual(["TOKEN_EXPIRED"]);
    }));

  it("a session over the account's concurrent sessions fails connect() at once with CONCURRENCY_LIMIT: one request, no retryAfter", () =>
    withLogs(async () => {
      const busy = await mintToken("busy");
      const auth = { Authorization: `Bearer ${busy.jwt}`, "Content-Type": "application/json" };
      const held: string[] = [];
      try {
        // The account's five concurrent sessions (the default limit), created over REST.
        for (let n = 0; n < 5; n++) {
          const response = await fetch(`${gateway.url}/sessions`, {
            method: "POST",
            headers: auth,
            body: JSON.stringify({ model: { name: "demo" } }),
          });
          expect(response.status).toBe(200);
          held.push(((await response.json()) as { session_id: string }).session_id);
        }
        const sdk = await openClient();
        const creations: string[] = [];
        pages.at(-1)!.on("request", (request) => request.method() === "POST" && creations.push(request.url()));
        await sdk.connect(busy.jwt);
        const state = await sdk.state();
        expect(state.connectResult).toBe("error:CONCURRENCY_LIMIT");
        expect(state.errors).toEqual([expect.objectContaining({ code: "CONCURRENCY_LIMIT", recoverable: true, component: "api" })]);
        expect(state.errors[0]!.retryAfter).toBeUndefined(); // waiting alone does not help: a session must end first
        expect(state.status).toBe("disconnected");
        expect(state.sessionId).toBeNull();
        expect(state.sockets).toBe(0);
        await new Promise((resolve) => setTimeout(resolve, 1500)); // long enough for a retry to show, were there one
        expect(creations).toEqual([`${gateway.url}/sessions`]);
        expect((await sdk.state()).errors).toHaveLength(1);
      } finally {
        for (const id of held) await fetch(`${gateway.url}/sessions/${id}`, { method: "DELETE", headers: auth });
      }
    }));

  it("a model no runtime serves ends with MODEL_UNAVAILABLE once the queue wait is over", () =>
    withLogs(async () => {
      await registerModel(gateway, "no-such-model"); // known (a runtime served it once), so the session waits
      const sdk = await openClient("no-such-model");
      await sdk.connect(jwt);
      expect((await sdk.state()).status).toBe("waiting");
      await expectStatus(sdk, "disconnected");
      const state = await sdk.state();
      // (A DISCONNECTED may come first: `wrangler dev` restarts when files change, and the client reconnects.)
      expect(state.errors.at(-1)).toMatchObject({ code: "MODEL_UNAVAILABLE", reason: "no_runtime", recoverable: false, component: "gpu" });
      expect(state.errors.filter((error) => error.code !== "DISCONNECTED")).toHaveLength(1);
      expect(state.infos.at(-1)).toMatchObject({ state: "INACTIVE", reason: "no_runtime" });
    }));

  it("garbage from the server is reported with a precise code and ignored; duplicates and stale generations change nothing", () =>
    withLogs(async () => {
      const sdk = await readyClient();
      const index = await sdk.send("echo", { n: 1 });
      await expect.poll(async () => (await sdk.state()).messages.length, WAIT).toBe(1);

      await sdk.inject("this is not json");
      await sdk.inject(JSON.stringify({ type: "teleport", to: "mars" }));
      await sdk.inject(JSON.stringify({ type: "command_status", seq: "one", state: "delivered" }));
      await sdk.inject("binary");
      await sdk.inject(JSON.stringify({ type: "message", seq: 1, scope: "application", data: { duplicate: true } }));
      await sdk.inject(JSON.stringify({ type: "answer", generation: 99, sdp: "v=0\r\n" }));
      await sdk.inject(JSON.stringify({ type: "command_status", seq: index + 1, state: "waiting" })); // states never go back

      const state = await sdk.state();
      expect(state.errors.map((error) => error.code)).toEqual(["FRAME_MALFORMED", "UNKNOWN_FRAME_TYPE", "FRAME_INVALID", "FRAME_UNSUPPORTED"]);
      expect(state.errors.every((error) => error.component === "api" && !error.recoverable)).toBe(true);
      expect(state.messages).toHaveLength(1);
      expect(state.commands[index]!.done).toBe("acknowledged");
      expect(state.status).toBe("ready");

      const next = await sdk.send("echo", { n: 2 });
      await expect.poll(async () => (await sdk.state()).commands[next]?.done, WAIT).toBe("acknowledged");
      await expect.poll(async () => (await sdk.state()).messages.length, WAIT).toBe(2);
      await expectVideoAdvances(sdk);
    }));

  it("reconnect() to a session that ended meanwhile fails with SESSION_ENDED", () =>
    withLogs(async () => {
      const sdk = await readyClient();
      const { sessionId } = await sdk.state();
      await sdk.disconnect(true);
      const index = await sdk.send("echo", { n: 1 });
      await fetch(`${gateway.url}/sessions/${sessionId}`, { method: "DELETE", headers: { Authorization: `Bearer ${jwt}` } });
      await sdk.reconnect();
      const state = await sdk.state();
      expect(state.reconnectResult).toBe("error:SESSION_ENDED");
      expect(state.errors.at(-1)).toMatchObject({ code: "SESSION_ENDED", reason: "client_closed", recoverable: false });
      expect(state.status).toBe("disconnected");
      expect(state.commands[index]).toMatchObject({ done: "dropped", error: "SESSION_ENDED" });
    }));

  it("a signaling socket whose `generation` is not a non-negative integer is refused with INVALID_REQUEST", () =>
    withLogs(async () => {
      const sdk = await readyClient();
      const { sessionId } = await sdk.state();
      for (const generation of ["-1", "one", "1.5", ""]) {
        const answer = await upgradeStatus(`/v1/sessions/${sessionId}/signal?generation=${generation}`);
        expect(answer).toMatchObject({ status: 400, code: "INVALID_REQUEST" });
      }
      expect((await upgradeStatus(`/v1/sessions/${sessionId}/signal?generation=0`)).status).toBe(101); // takes the session over
      await expectStatus(sdk, "disconnected");
      // The client left the session to the newcomer: end it, so the one GPU slot is free for the next test.
      await fetch(`${gateway.url}/sessions/${sessionId}`, { method: "DELETE", headers: { Authorization: `Bearer ${jwt}` } });
    }));

  it("another connection taking the session over stops this client with SESSION_REPLACED, without ending the session", () =>
    withLogs(async () => {
      const sdk = await readyClient();
      const { sessionId } = await sdk.state();
      const intruder = new WebSocket(`${gateway.url.replace(/^http/, "ws")}/v1/sessions/${sessionId}/signal`, ["reactor.v1", `bearer.${jwt}`]);
      await new Promise((resolve, reject) => {
        intruder.addEventListener("open", resolve);
        intruder.addEventListener("error", reject);
      });
      await expectStatus(sdk, "disconnected");
      expect((await sdk.state()).errors.map((error) => error.code)).toEqual(["SESSION_REPLACED"]);
      expect(await sessionState(sessionId!)).not.toBe("CLOSED");
      intruder.send(JSON.stringify({ type: "close" }));
      await expect.poll(() => sessionState(sessionId!), WAIT).toBe("CLOSED");
      intruder.close();
    }));
});

describe("in Node", () => {
  it("with werift as its RTCPeerConnection: ready, media flowing, commands and messages", async () => {
    const client = new Client({
      apiUrl: gateway.url,
      modelName: "demo",
      RTCPeerConnection: WeriftPeerConnection as unknown as RTCPeerConnectionConstructor,
    });
    const statuses: string[] = [];
    const messages: unknown[] = [];
    const stats: ClientStats[] = [];
    client.on("statusChanged", (status) => statuses.push(status));
    client.on("message", (data) => messages.push(data));
    client.on("statsUpdate", (sample) => stats.push(sample));
    try {
      await client.connect(async () => jwt);
      await expect.poll(() => client.getStatus(), WAIT).toBe("ready");
      expect(statuses).toEqual(["connecting", "waiting", "ready"]);
      const handle = client.sendCommand("echo", { from: "node" });
      expect(await handle.done).toBe("acknowledged");
      await expect.poll(() => messages, WAIT).toContainEqual(expect.objectContaining({ command: "echo", data: { from: "node" } }));
      await expect.poll(() => stats.at(-1)?.bitrateKbps ?? 0, WAIT).toBeGreaterThan(0);
    } finally {
      await client.disconnect();
    }
    expect(client.getStatus()).toBe("disconnected");
  });

  it("without an RTCPeerConnection: the session is created and assigned, and commands wait for a ready session", async () => {
    const client = new Client({ apiUrl: gateway.url, modelName: "demo", RTCPeerConnection: null });
    try {
      await client.connect(jwt);
      await expect.poll(() => client.getCapabilities()?.tracks, WAIT).toEqual([{ name: "main_video", kind: "video", direction: "recvonly" }]);
      expect(client.getStatus()).toBe("waiting");
      expect(client.getSessionInfo()).toMatchObject({ state: "WAITING" });
      const handle = client.sendCommand("echo", { n: 1 });
      await expect.poll(() => handle.seq, WAIT).toBe(1);
      expect(handle.state).toBe("waiting");
      await client.disconnect();
      expect(await handle.done).toBe("dropped");
      expect(handle.error).toBe("SESSION_ENDED");
    } finally {
      await client.disconnect();
    }
  });

  it("refuses bad input with TypeErrors and misuse with precise codes", async () => {
    expect(() => new Client({ apiUrl: "ftp://example.com", modelName: "demo" })).toThrow(TypeError);
    expect(() => new Client({ apiUrl: gateway.url, modelName: "" })).toThrow(TypeError);
    expect(() => new Client({ apiUrl: gateway.url, modelName: "bad name!" })).toThrow(TypeError);
    const client = new Client({ apiUrl: gateway.url, modelName: "demo", RTCPeerConnection: null });
    expect(() => client.sendCommand("", {})).toThrow(TypeError);
    expect(() => client.sendCommand("echo", {}, { whileWaiting: "later" as never })).toThrow(TypeError);

    const early = client.sendCommand("echo", {});
    expect(early.state).toBe("dropped");
    expect(early.error).toBe("NOT_CONNECTED");
    await expect(client.reconnect()).rejects.toMatchObject({ code: "NOT_CONNECTED" });
    await expect(client.uploadFile(new Blob(["x"]))).rejects.toMatchObject({ code: "NOT_CONNECTED" });
    await expect(client.uploadFile("not a blob" as never)).rejects.toThrow(TypeError);
    await expect(client.connect(() => "")).rejects.toMatchObject({ code: "TOKEN_SOURCE_FAILED" });

    await client.connect(jwt);
    try {
      await expect(client.connect(jwt)).rejects.toMatchObject({ code: "ALREADY_CONNECTED" });
      expect(client.sendCommand("echo", { big: "x".repeat(300 * 1024) })).toMatchObject({ state: "dropped", error: "FRAME_TOO_LARGE" });
    } finally {
      await client.disconnect();
    }
  });
});

/** A WebSocket upgrade of `path` with the client token: the HTTP status, and the error code of a refusal. */
function upgradeStatus(path: string): Promise<{ status: number; code?: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(`${gateway.url}${path}`, {
      headers: {
        Connection: "Upgrade",
        Upgrade: "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": randomBytes(16).toString("base64"),
        "Sec-WebSocket-Protocol": `reactor.v1, bearer.${jwt}`,
      },
    });
    request.on("upgrade", (response, socket) => {
      socket.destroy();
      resolve({ status: response.statusCode ?? 0 });
    });
    request.on("response", (response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => (body += chunk.toString()));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, code: (JSON.parse(body) as { error?: { code?: string } }).error?.code }));
    });
    request.on("error", reject);
    request.end();
  });
}

function mintShortToken(): Promise<{ jwt: string; expires_at: number }> {
  return mintToken("short-lived", { expires_after: 1 });
}

/** A client token of a new API key of `account`. */
async function mintToken(account: string, body: Record<string, unknown> = {}): Promise<{ jwt: string; expires_at: number }> {
  const created = await fetch(`${gateway.url}/admin/keys`, {
    method: "POST",
    headers: { Authorization: `Bearer ${gateway.adminToken}`, "Content-Type": "application/json" },
    body: JSON.stringify({ account }),
  });
  const { key } = (await created.json()) as { key: string };
  const minted = await fetch(`${gateway.url}/tokens`, {
    method: "POST",
    headers: { "Reactor-API-Key": key, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return (await minted.json()) as { jwt: string; expires_at: number };
}

async function sleepUntil(unixMs: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, unixMs - Date.now())));
}
