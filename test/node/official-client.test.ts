/**
 * The unmodified official client (`@reactor-team/js-sdk` 2.9.0), bundled and running in headless Chromium, against a
 * real gateway (`wrangler dev`) and a scripted runtime: cross-origin REST with CORS preflights, the WAITING queue,
 * assignment, the client's real SDP offer reaching the runtime, and `disconnect()` ending the session.
 * (Media needs the runtime agent; this covers the signaling path the gateway owns.)
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { BenchRuntime, type NodePeer } from "../../bench/lib/peers.ts";
import { clientToken } from "../../bench/lib/gateway.ts";
import { launchBrowser, servePage, type ServedPage, type TestBrowser } from "./support/browser.ts";
import { reactorClientPage, type HarnessState } from "./support/browser.test-page.ts";
import { startGateway, type TestGateway } from "./support/gateway.ts";

let gateway: TestGateway;
let browser: TestBrowser;
let site: ServedPage;

beforeAll(async () => {
  [gateway, browser, site] = await Promise.all([startGateway(), launchBrowser(), reactorClientPage().then((files) => servePage(files))]);
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

  // No runtime yet: connect() creates the session and waits.
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
