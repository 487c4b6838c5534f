/**
 * The ends of a real-network scenario (tools/network-lab.ts): sites behind routers, a runtime and a browser, the
 * official client and the native SDK on their harness pages. Shared by the core proofs (test/node/networks.test.ts)
 * and the full matrix (test/networks/).
 */
import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, expect } from "vitest";
import type { HarnessWindow } from "../../../tools/browser.test-page.ts";
import type { TestBrowser } from "../../../tools/browser.ts";
import type { IceShape } from "../../../tools/ice-policy.ts";
import { startNetworkLab, type LabAgent, type LabGateway, type NetworkLab } from "../../../tools/network-lab.ts";
import type { Host, RouterOptions } from "../../../tools/netns.ts";
import { sdkHarness } from "../../../tools/sdk-page.ts";

export const WAIT = { timeout: 45_000, interval: 250 };
export const SYMMETRIC: RouterOptions = { nat: "symmetric" };

/** The lab of this test file: started before its tests, everything of a test stopped after it. */
export function useNetworkLab(): () => NetworkLab {
  let lab: NetworkLab | undefined;
  beforeAll(async () => {
    lab = await startNetworkLab();
  }, 180_000);
  afterAll(() => lab?.stop(), 60_000);
  afterEach(async () => {
    for (const item of running.splice(0).reverse()) await ("close" in item ? item.close() : item.stop());
  });
  return () => {
    if (!lab) throw new Error("the network lab did not start");
    return lab;
  };
}

const running: (LabAgent | TestBrowser)[] = [];
let sites = 0;

/** A site: a host on the internet, or behind a new router of its own. */
export async function site(
  lab: NetworkLab,
  name: string,
  router: RouterOptions | "public",
  link?: Parameters<NetworkLab["topology"]["addHost"]>[1] extends infer O ? (O extends { link?: infer L } ? L : never) : never,
): Promise<Host> {
  const label = `${name}${++sites}`;
  const behind = router === "public" ? "internet" : await lab.topology.addRouter(label, router);
  return lab.topology.addHost(label, { behind, link });
}

/** A GPU runtime at `gpu` registered with `gateway`, and a browser at `client`: the two ends of one scenario. */
export async function ends(
  lab: NetworkLab,
  client: Host,
  gpu: Host,
  gateway: LabGateway = lab.turn,
  agent: { weriftAsIs?: boolean } = {},
): Promise<TestBrowser> {
  running.push(await lab.startAgent(gpu, { gateway, ...agent }));
  const browser = await lab.openBrowser(client);
  running.push(browser);
  return browser;
}

/** The official client 2.9.0, unmodified, in a page whose peer connections are shaped by `shape`. */
export async function officialClient(lab: NetworkLab, browser: TestBrowser, { gateway, jwt }: LabGateway = lab.turn, shape: IceShape = {}) {
  const page = await lab.openPage(browser, lab.officialSite, shape);
  const state = () => page.evaluate(() => (window as unknown as HarnessWindow).harness.state());
  await page.evaluate(([apiUrl, token]) => (window as unknown as HarnessWindow).harness.connect({ apiUrl, modelName: "demo", jwt: token }), [
    gateway.url,
    jwt,
  ] as const);
  return {
    page,
    state,
    sessionId: () => page.evaluate(() => (window as unknown as HarnessWindow).harness.sessionId()),
    reconnect: () => page.evaluate(() => (window as unknown as HarnessWindow).harness.reconnect()),
    disconnect: (recoverable: boolean) => page.evaluate((keep) => (window as unknown as HarnessWindow).harness.disconnect(keep), recoverable),
    async echo(data: Record<string, unknown>) {
      await page.evaluate((value) => (window as unknown as HarnessWindow).harness.sendCommand("echo", value), data);
      await expect.poll(async () => (await state()).messages, WAIT).toContainEqual(expect.objectContaining({ command: "echo", data }));
    },
  };
}

export async function nativeClient(
  lab: NetworkLab,
  browser: TestBrowser,
  { gateway, jwt }: LabGateway = lab.turn,
  shape: IceShape = {},
): Promise<{ page: Page; sdk: ReturnType<typeof sdkHarness> }> {
  const page = await lab.openPage(browser, lab.sdkSite, shape);
  const sdk = sdkHarness(page);
  await sdk.create({ apiUrl: gateway.url, modelName: "demo" });
  await sdk.connect(jwt);
  return { page, sdk };
}

/** Ten more frames presented than now. */
export async function expectVideo(frames: () => Promise<number>): Promise<void> {
  const before = await frames();
  await expect.poll(frames, WAIT).toBeGreaterThan(before + 10);
}
