/**
 * The unmodified official client (`@reactor-team/js-sdk` 2.9.0), bundled and running in headless Chromium, against a
 * real gateway (`wrangler dev`, default 30 s grace):
 *   - with a scripted runtime: cross-origin REST with CORS preflights, the WAITING queue, assignment, the client's
 *     real SDP offer reaching the runtime, and `disconnect()` ending the session;
 *   - with the real runtime agent and the demo model (werift, ffmpeg): waiting → ready, decoded video, a prompt
 *     that visibly changes the picture, recoverable disconnects, the grace window and the slot it frees.
 */
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clientToken, startGateway, type TestGateway } from "../../tools/gateway.ts";
import { BenchRuntime, registerModel, type NodePeer } from "../../tools/peers.ts";
import { RuntimeAgent } from "../../runtime/agent.ts";
import { demoModel } from "../../runtime/demo/model.ts";
import { launchBrowser, servePage, type ServedPage, type TestBrowser } from "../../tools/browser.ts";
import { reactorClientPage, type HarnessState, type HarnessWindow } from "../../tools/browser.test-page.ts";
import { descendants, stillRunning } from "../../tools/procfs.ts";

let gateway: TestGateway;
let browser: TestBrowser;
let site: ServedPage;

beforeAll(async () => {
  // No STUN server: Chromium gathers host candidates only, at once (offline, as on one machine).
  [gateway, browser, site] = await Promise.all([
    startGateway({ vars: { STUN_URLS: "" } }),
    launchBrowser(),
    reactorClientPage().then((files) => servePage(files)),
  ]);
});

afterAll(async () => {
  await Promise.all([browser?.close(), site?.close(), gateway?.stop()]);
});

it("the official client waits in the queue, is assigned, sends its offer through the gateway, and disconnect() ends the session", async () => {
  const jwt = await clientToken(gateway);
  const model = "official-client-model";
  const page = await browser.newPage();
  await page.goto(site.url); // another origin than the gateway: every call is cross-origin, with preflights
  const state = () => page.evaluate(() => (window as unknown as { harness: { state(): HarnessState } }).harness.state());

  // The model is known (a runtime served it once) but no runtime is connected: connect() creates the session and waits.
  await registerModel(gateway, model);
  await page.evaluate(
    ([apiUrl, token, modelName]) => {
      void (window as unknown as { harness: { connect(o: object): Promise<void> } }).harness.connect({ apiUrl, jwt: token, modelName });
    },
    [gateway.url, jwt, model] as const,
  );
  await expect.poll(async () => (await state()).status, { timeout: 20_000 }).toBe("waiting");
  const sessionId = await page.evaluate(() => (window as unknown as { harness: { sessionId(): string } }).harness.sessionId());
  const info = await fetch(`${gateway.url}/sessions/${sessionId}/info`, { headers: { Authorization: `Bearer ${jwt}` } });
  expect(await info.json()).toMatchObject({ session_id: sessionId, state: "WAITING" });

  // A runtime arrives: the session is assigned and the client's real offer is relayed to it.
  const runtime = await new BenchRuntime(gateway, model, "gpu-browser", 1).connect();
  const assignment = await runtime.control.next("assign", 20_000);
  expect(assignment.session_id).toBe(sessionId);
  const runtimePeer: NodePeer = await runtime.openSession(sessionId);
  const offer = await runtimePeer.next("offer", 30_000);
  expect(offer.generation).toBe(1);
  expect(offer.sdp).toMatch(/^v=0/);
  expect(offer.sdp).toContain("m=video");
  expect(offer.sdp).toContain("webrtc-datachannel");
  expect(offer.track_mapping).toEqual([expect.objectContaining({ name: "main_video", kind: "video", direction: "recvonly" })]);
  expect((await state()).errors).toEqual([]);

  // A non-recoverable disconnect deletes the session; the runtime is told to release the GPU.
  await page.evaluate(() => (window as unknown as { harness: { disconnect(r?: boolean): Promise<void> } }).harness.disconnect(false));
  expect(await runtimePeer.next("end", 20_000)).toMatchObject({ type: "end" });
  const ended = await fetch(`${gateway.url}/sessions/${sessionId}/info`, { headers: { Authorization: `Bearer ${jwt}` } });
  expect(await ended.json()).toMatchObject({ state: "CLOSED" });
  runtimePeer.close();
  runtime.control.close();
});

// ── With the runtime agent and the demo model ─────────────────────────────────────────────────────────────────────

/** One tab running the official client. */
async function clientPage(jwt: string) {
  const page: Page = await browser.newPage();
  await page.goto(site.url);
  return {
    /** Starts connect() without waiting for it (it settles only once ready, or failed). */
    connect: () =>
      page.evaluate(([apiUrl, token]) => void (window as unknown as HarnessWindow).harness.connect({ apiUrl, jwt: token, modelName: "demo" }), [
        gateway.url,
        jwt,
      ] as const),
    state: () => page.evaluate(() => (window as unknown as HarnessWindow).harness.state()),
    sessionId: () => page.evaluate(() => (window as unknown as HarnessWindow).harness.sessionId()),
    disconnect: (recoverable: boolean) => page.evaluate((value) => (window as unknown as HarnessWindow).harness.disconnect(value), recoverable),
    /** Starts reconnect() without waiting for it. */
    reconnect: () => page.evaluate(() => void (window as unknown as HarnessWindow).harness.reconnect()),
    sendCommand: (command: string, data: unknown) =>
      page.evaluate(([name, value]) => (window as unknown as HarnessWindow).harness.sendCommand(name, value), [command, data] as const),
    inboundVideo: () => page.evaluate(() => (window as unknown as HarnessWindow).harness.inboundVideo()),
    /** The first line of drawn text (the demo model writes the prompt at x=20, y=20). */
    textMask: () => page.evaluate(() => (window as unknown as HarnessWindow).harness.brightMask({ x: 20, y: 20, width: 600, height: 30 })),
    close: () => page.close(),
  };
}

const sessionState = async (jwt: string, sessionId: string) =>
  (await (await fetch(`${gateway.url}/sessions/${sessionId}/info`, { headers: { Authorization: `Bearer ${jwt}` } })).json()) as { state: string };

/** Share of differing pixels between two bright masks. */
function maskDifference(a: string, b: string): number {
  let differing = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) differing++;
  return differing / a.length;
}

const ffmpegs = () => descendants(process.pid).filter((info) => info.command === "ffmpeg");

describe("with the runtime agent serving the demo model (1 slot)", () => {
  let jwt: string;
  let agent: RuntimeAgent | undefined;

  beforeAll(async () => {
    jwt = await clientToken(gateway);
    await registerModel(gateway, "demo"); // known, with no runtime connected yet: the first client waits for one
  });

  afterAll(async () => {
    await agent?.stop();
  });

  const startAgent = async () => {
    agent ??= new RuntimeAgent({ gatewayUrl: gateway.url, token: gateway.runtimeToken, model: demoModel(), slots: 1 });
    if (agent.state === "idle") await agent.start();
  };

  it("waits for a runtime, becomes ready, decodes main_video, and a set_prompt visibly changes the picture", async () => {
    const client = await clientPage(jwt);
    await client.connect();
    await expect.poll(async () => (await client.state()).status, { timeout: 20_000 }).toBe("waiting");

    const before = ffmpegs();
    await startAgent(); // the runtime arrives after the client: it gets the waiting session
    await expect.poll(async () => (await client.state()).status, { timeout: 30_000 }).toBe("ready");
    const sessionId = (await client.sessionId())!;
    const statuses = (await client.state()).statuses.map(([status]) => status);
    expect(statuses.indexOf("waiting")).toBeGreaterThan(-1);
    expect(statuses.indexOf("ready")).toBeGreaterThan(statuses.indexOf("waiting"));
    expect((await client.state()).tracks).toEqual(["main_video:video"]);

    await expect.poll(async () => (await client.state()).frames, { timeout: 20_000 }).toBeGreaterThan(10);
    const first = (await client.state()).mediaTime;
    await expect.poll(async () => (await client.state()).mediaTime, { timeout: 20_000 }).toBeGreaterThan(first + 0.5);
    expect(await client.inboundVideo()).toMatchObject({ framesDecoded: expect.any(Number), frameWidth: 640, frameHeight: 360 });
    expect((await client.inboundVideo())!.framesDecoded).toBeGreaterThan(0);

    // The picture's text line holds still between two moments, and changes with a new prompt.
    const textBefore = (await client.textMask())!;
    await new Promise((resolve) => setTimeout(resolve, 300));
    const textStill = (await client.textMask())!;
    await client.sendCommand("set_prompt", { prompt: "WWW MMM WWW MMM WWW MMM" });
    await expect
      .poll(async () => (await client.state()).messages, { timeout: 20_000 })
      .toContainEqual({
        type: "command_result",
        command: "set_prompt",
        ok: true,
        prompt: "WWW MMM WWW MMM WWW MMM",
      });
    await expect.poll(async () => maskDifference(textBefore, (await client.textMask())!), { timeout: 20_000 }).toBeGreaterThan(0.1);
    expect(maskDifference(textBefore, textStill)).toBeLessThan(0.02);

    // A non-recoverable disconnect ends the session at once, and the runtime stops its encoder.
    const encoders = ffmpegs().filter((info) => !before.some((old) => old.pid === info.pid));
    expect(encoders).toHaveLength(1);
    await client.disconnect(false);
    expect((await sessionState(jwt, sessionId)).state).toBe("CLOSED");
    await expect.poll(() => agent!.sessions.length, { timeout: 20_000 }).toBe(0);
    await expect.poll(() => stillRunning(encoders).length, { timeout: 20_000 }).toBe(0);
    expect((await client.state()).errors).toEqual([]);
    await client.close();
  });

  it("comes back to ready with the same session after a recoverable disconnect and reconnect()", async () => {
    await startAgent();
    const client = await clientPage(jwt);
    await client.connect();
    await expect.poll(async () => (await client.state()).status, { timeout: 30_000 }).toBe("ready");
    const sessionId = (await client.sessionId())!;

    await client.disconnect(true);
    expect((await client.state()).status).toBe("disconnected");
    // The runtime saw the client's peer connection go and told the gateway: the grace window runs.
    await expect.poll(async () => (await sessionState(jwt, sessionId)).state, { timeout: 20_000 }).toBe("RECONNECTING");

    const framesBefore = (await client.state()).frames;
    await client.reconnect();
    await expect.poll(async () => (await client.state()).status, { timeout: 30_000 }).toBe("ready");
    expect(await client.sessionId()).toBe(sessionId);
    await expect.poll(async () => (await sessionState(jwt, sessionId)).state, { timeout: 20_000 }).toBe("ACTIVE");
    await expect.poll(async () => (await client.state()).frames, { timeout: 20_000 }).toBeGreaterThan(framesBefore + 10);
    await client.sendCommand("echo", { after: "reconnect" });
    await expect
      .poll(async () => (await client.state()).messages, { timeout: 20_000 })
      .toContainEqual(expect.objectContaining({ command: "echo", data: { after: "reconnect" } }));

    await client.disconnect(false);
    await client.close();
  });

  it("closes a session left disconnected after the 30 s grace, and its slot serves the next waiting session", async () => {
    await startAgent();
    const away = await clientPage(jwt);
    await away.connect();
    await expect.poll(async () => (await away.state()).status, { timeout: 30_000 }).toBe("ready");
    const awaySession = (await away.sessionId())!;
    await away.disconnect(true); // and never comes back

    const next = await clientPage(jwt);
    await next.connect();
    await expect.poll(async () => (await next.state()).status, { timeout: 20_000 }).toBe("waiting"); // the only slot is held
    await expect.poll(async () => (await sessionState(jwt, awaySession)).state, { timeout: 60_000 }).toBe("CLOSED");
    await expect.poll(async () => (await next.state()).status, { timeout: 30_000 }).toBe("ready");
    await expect.poll(async () => (await next.state()).frames, { timeout: 20_000 }).toBeGreaterThan(10);
    expect(agent!.sessions.map((session) => session.id)).toEqual([await next.sessionId()]);

    await next.disconnect(false);
    await Promise.all([away.close(), next.close()]);
  }, 180_000);
});
