/**
 * TURN end to end with real parts: coturn (REST-API secret mode) on loopback, the gateway issuing credentials for
 * it (coturn provider, and the Cloudflare Realtime TURN provider through a loopback stand-in of its API that hands
 * out coturn credentials), the runtime agent with the demo model, and headless Chromium forced to relay-only ICE.
 * Proof that media went through TURN: the selected candidate pair's local candidate is `relay` (getStats), and
 * coturn logged the allocation under the credential's username.
 */
import { createHmac } from "node:crypto";
import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { clientToken, startGateway, type TestGateway } from "../../tools/gateway.ts";
import { RuntimeAgent } from "../../runtime/agent.ts";
import { demoModel } from "../../runtime/demo/model.ts";
import { launchBrowser, servePage, type ServedPage, type TestBrowser } from "../../tools/browser.ts";
import { reactorClientPage, type HarnessWindow } from "../../tools/browser.test-page.ts";
import { startCloudflareTurnStandIn, type CloudflareTurnStandIn } from "./support/cloudflare-turn.ts";
import { startCoturn, type Coturn } from "../../tools/coturn.ts";
import { selectedPair, shapeIceScript, type IceShape } from "../../tools/ice-policy.ts";
import { sdkHarness, sdkPage, type SdkHarness } from "../../tools/sdk-page.ts";

const WAIT = { timeout: 45_000, interval: 200 };

let coturn: Coturn;
let standIn: CloudflareTurnStandIn;
let gateway: TestGateway;
let agent: RuntimeAgent;
let browser: TestBrowser;
let sdkSite: ServedPage;
let officialSite: ServedPage;
let jwt: string;
const pages: Page[] = [];

/** A coturn credential signed with `secret`, valid until `expiresAt` (Unix seconds). */
function coturnCredential(secret: string, expiresAt: number, subject: string) {
  const username = `${expiresAt}:${subject}`;
  return { username, credential: createHmac("sha1", secret).update(username).digest("base64") };
}

beforeAll(async () => {
  coturn = await startCoturn();
  // The stand-in answers like Cloudflare's API, with URLs and a credential of the real coturn (port 53 URL included:
  // the gateway must drop it).
  const host = `${coturn.host}:${coturn.port}`;
  standIn = await startCloudflareTurnStandIn({
    turnUrls: [
      `turn:${host}?transport=udp`,
      `turn:${coturn.host}:53?transport=udp`,
      `turn:${host}?transport=tcp`,
      `turns:localhost:${coturn.tlsPort}?transport=tcp`,
    ],
    ...coturnCredential(coturn.secret, Math.floor(Date.now() / 1000) + 3600, "cloudflare-stand-in"),
  });
  [gateway, browser, sdkSite, officialSite] = await Promise.all([
    startGateway({
      vars: {
        STUN_URLS: "",
        TURN_PROVIDERS: "cloudflare,coturn",
        CLOUDFLARE_TURN_KEY_ID: standIn.keyId,
        CLOUDFLARE_TURN_API_TOKEN: standIn.apiToken,
        CLOUDFLARE_TURN_API_URL: standIn.url,
        TURN_PROVIDER_TIMEOUT_MS: "1000",
        TURN_SECRET: coturn.secret,
        // `localhost` for TLS: the test certificate names it.
        TURN_HOSTS: `localhost:${coturn.port}:${coturn.tlsPort}`,
        LIMIT_CONCURRENT_SESSIONS: "50",
      },
    }),
    // Chromium verifies a TURN server's TLS certificate; the test's is self-signed (without this flag, turns: fails).
    launchBrowser({ args: ["--ignore-certificate-errors"] }),
    sdkPage().then((files) => servePage(files)),
    reactorClientPage().then((files) => servePage(files)),
  ]);
  agent = new RuntimeAgent({ gatewayUrl: gateway.url, token: gateway.runtimeToken, model: demoModel(), slots: 2, log: () => undefined });
  await agent.start();
  jwt = await clientToken(gateway);
});

afterAll(async () => {
  await agent?.stop();
  await Promise.all([browser?.close(), sdkSite?.close(), officialSite?.close(), gateway?.stop(), standIn?.close(), coturn?.stop()]);
});

beforeEach(() => {
  standIn.behaviour = "error-500"; // coturn credentials, unless a test wants the Cloudflare provider
});

afterEach(async () => {
  for (const page of pages.splice(0)) await page.close();
});

async function nativeClient(shape: IceShape, options: Record<string, unknown> = { forceRelay: true }): Promise<{ page: Page; sdk: SdkHarness }> {
  const page = await browser.newPage();
  pages.push(page);
  await page.addInitScript(shapeIceScript, shape);
  await page.goto(sdkSite.url);
  const sdk = sdkHarness(page);
  await sdk.create({ apiUrl: gateway.url, modelName: "demo", options });
  await sdk.connect(jwt);
  return { page, sdk };
}

async function expectLiveVideo(frames: () => Promise<number>): Promise<void> {
  const before = await frames();
  await expect.poll(frames, WAIT).toBeGreaterThan(before + 10);
}

describe("the native SDK with forceRelay", () => {
  it.each([
    ["UDP", "transport=udp", "udp"],
    ["TCP", "^turn:.*transport=tcp", "tcp"],
    ["TLS (turns:, self-signed certificate)", "^turns:", "tls"],
  ])("reaches ready with video relayed by coturn over %s", async (_, keepUrls, relayProtocol) => {
    const { page, sdk } = await nativeClient({ keepUrls });
    await expect.poll(async () => (await sdk.state()).status, WAIT).toBe("ready");
    await expectLiveVideo(async () => (await sdk.state()).frames);
    const sessionId = (await sdk.state()).sessionId!;

    expect(await selectedPair(page)).toMatchObject({ local: { candidateType: "relay", relayProtocol } });
    await expect.poll(async () => (await sdk.state()).stats.at(-1), WAIT).toMatchObject({ candidateType: "relay", relayProtocol });
    // coturn granted an allocation to this session's credential (`<expiry>:<session id>`).
    expect((await coturn.allocations()).some((username) => username.endsWith(`:${sessionId}`))).toBe(true);
    // The Cloudflare provider failed first; the gateway said why and fell back to coturn.
    expect(gateway.output()).toContain("ice servers: cloudflare: answered HTTP 500; falling back to coturn");
    await sdk.disconnect();
  });

  it.each([
    ["signed with the wrong secret", () => coturnCredential("not-the-secret", Math.floor(Date.now() / 1000) + 600, "intruder")],
    ["expired", () => coturnCredential(coturn.secret, Math.floor(Date.now() / 1000) - 60, "late")],
  ])("a TURN credential %s: no connection, and the client says why", async (_, credential) => {
    const { sdk } = await nativeClient({ credential: credential() });
    await expect
      .poll(async () => (await sdk.state()).errors.find((error) => error.code === "ICE_SERVER_ERROR"), WAIT)
      .toMatchObject({ recoverable: true, message: expect.stringMatching(/refused the credentials \(401\)/) });
    expect((await sdk.state()).status).not.toBe("ready");
    await sdk.disconnect();
  });
});

describe("the official client 2.9.0 given only TURN (relay-only page), credentials from the Cloudflare provider", () => {
  it("reaches ready with video relayed by coturn; the port-53 URL never reaches the client", async () => {
    standIn.behaviour = "ok";
    const page = await browser.newPage();
    pages.push(page);
    await page.addInitScript(shapeIceScript, { relayOnly: true, keepUrls: "transport=udp" });
    await page.goto(officialSite.url);
    await page.evaluate(([apiUrl, token]) => (window as unknown as HarnessWindow).harness.connect({ apiUrl, modelName: "demo", jwt: token }), [
      gateway.url,
      jwt,
    ] as const);
    await expect.poll(() => page.evaluate(() => (window as unknown as HarnessWindow).harness.state().status), WAIT).toBe("ready");
    await expectLiveVideo(() => page.evaluate(() => (window as unknown as HarnessWindow).harness.state().frames));
    expect(await selectedPair(page)).toMatchObject({ local: { candidateType: "relay", relayProtocol: "udp" } });
    // The credential came from the Cloudflare provider (the stand-in's), and coturn accepted it.
    expect(await coturn.allocations()).toContainEqual(expect.stringMatching(/:cloudflare-stand-in$/));

    const sessionId = await page.evaluate(() => (window as unknown as HarnessWindow).harness.sessionId());
    const ice = await fetch(`${gateway.url}/sessions/${sessionId}/transport/webrtc/ice_servers`, { headers: { Authorization: `Bearer ${jwt}` } });
    const uris = ((await ice.json()) as { ice_servers: { uris: string[] }[] }).ice_servers.flatMap((server) => server.uris);
    expect(uris.length).toBeGreaterThan(0);
    expect(uris.some((uri) => /:53\?/.test(uri))).toBe(false);
    await page.evaluate(() => (window as unknown as HarnessWindow).harness.disconnect(false));
  });
});
