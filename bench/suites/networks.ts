/**
 * Real networks (docs/networks.md): the native SDK's connect() → first video frame over each network profile of
 * tools/netns.ts, and a phone's address change → video again, as ratios to the same flow on plain loopback in the
 * same run (Chromium and the agent in the root namespace, where the lab's server address is a local one).
 *
 * Profiles (the GPU on the topology's internet unless said):
 *   - loopback (the floor);
 *   - behind an endpoint-independent NAT, STUN: a server-reflexive path;
 *   - 150 ms round trip, ±15 ms jitter, 5 % loss per direction, behind the same NAT;
 *   - both behind symmetric NATs, TURN over UDP (the GPU's relay candidate too);
 *   - UDP blocked: TURN over TCP;
 *   - only TCP 443: TURN over TLS on 443.
 * Address change: connected behind one NAT, the phone's link moves to another router (new address); measured from
 * the move to the first frame presented after the longest freeze that follows it (the browser's ICE moves to the
 * new address and the runtime follows, or the SDK restarts ICE). Target: ≤ 1.5× a first connect on the same profile.
 *
 * Needs root (network namespaces); without it the suite fails and says why.
 */
import type { Page } from "playwright-core";
import type { TestBrowser } from "../../tools/browser.ts";
import { selectedPair } from "../../tools/ice-policy.ts";
import { startNetworkLab, type NetworkLab } from "../../tools/network-lab.ts";
import type { Host, LinkProfile, RouterOptions } from "../../tools/netns.ts";
import { sdkHarness, type SdkState } from "../../tools/sdk-page.ts";
import { barPanels } from "../harness/charts.ts";
import { fixed } from "../harness/stats.ts";
import type { SuiteContext, SuiteResult } from "../harness/suite.ts";
import { cell, summary, type Summary } from "../lib/connect-runs.ts";

export const name = "networks";
export const title = "Real networks: connect → first frame per profile, address change → video again";
export const order = 70;

const FRAME_TIMEOUT_MS = 45_000;
const ADDRESS_CHANGE_TARGET = 1.5;

interface Profile {
  name: string;
  client: RouterOptions | "root";
  gpu: RouterOptions | "public" | "root";
  link?: LinkProfile;
}

const PROFILES: Profile[] = [
  { name: "loopback", client: "root", gpu: "root" },
  { name: "NAT, STUN", client: { nat: "port-restricted" }, gpu: "public" },
  { name: "150 ms, 5 % loss", client: { nat: "port-restricted" }, gpu: "public", link: { delayMs: 75, jitterMs: 15, lossPercent: 5 } },
  { name: "symmetric, TURN/UDP", client: { nat: "symmetric" }, gpu: { nat: "symmetric" } },
  { name: "TURN/TCP", client: { nat: "port-restricted", firewall: "no-udp" }, gpu: "public" },
  { name: "TURNS/443", client: { nat: "port-restricted", firewall: "tcp-443-only" }, gpu: "public" },
];

interface ProfileFigures {
  name: string;
  firstFrameMs: number[];
  /** The selected pair of the last sample: "<local type>/<relay protocol or transport>". */
  path: string;
  summary: Summary;
  ratio: number;
}

export async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const samples = ctx.quick ? 2 : 5;
  const lab = await startNetworkLab();
  try {
    const profiles: ProfileFigures[] = [];
    for (const profile of PROFILES) {
      ctx.progress(`${profile.name}: ${samples} connects`);
      profiles.push(await measureProfile(lab, profile, samples));
    }
    const floor = profiles[0]!.summary.median;
    for (const figures of profiles) figures.ratio = figures.summary.median / floor;

    ctx.progress(`address change: ${samples} moves`);
    const moves = await measureAddressChange(lab, samples);
    const sameProfile = profiles.find((figures) => figures.name === "NAT, STUN")!;
    const moveRatio = moves.summary.median / sameProfile.summary.median;
    const passed = moveRatio <= ADDRESS_CHANGE_TARGET;

    const markdown = [
      `Native SDK in headless Chromium inside the client's namespace, runtime agent (demo model) inside the GPU's, gateway and coturn on the topology's internet (tools/network-lab.ts). ${samples} connects per profile, each a fresh page and session. ms: median (p90) min–max.`,
      "",
      "| profile | selected path | connect → first frame | ÷ loopback |",
      "| --- | --- | --- | --- |",
      ...profiles.map((figures) => `| ${figures.name} | ${figures.path} | ${cell(figures.summary)} | ${fixed(figures.ratio, 2)}× |`),
      "",
      `| address change (NAT → another NAT, new address) | move → first frame after the freeze | ÷ first connect behind a NAT | target |`,
      "| --- | --- | --- | --- |",
      `| native SDK, same session (ICE restarted in ${moves.restarts} of ${samples}) | ${cell(moves.summary)} | ${fixed(moveRatio, 2)}× | ≤ ${ADDRESS_CHANGE_TARGET}× ${passed ? "✅" : "❌"} |`,
      "",
      "![connect to first frame per network profile](docs/benchmarks-networks.svg)",
    ].join("\n");
    const svg = barPanels({
      title: "Real networks: connect → first frame (median)",
      groups: profiles.map((figures) => figures.name),
      groupLabel: "network profile",
      panels: [
        { title: "connect → first frame", unit: "ms", series: [{ name: "native SDK", values: profiles.map((figures) => figures.summary.median) }] },
      ],
      note: `address change → video again: ${fixed(moves.summary.median, 0)} ms median (${fixed(moveRatio, 2)}× a first connect behind a NAT)`,
    });
    return { figures: { samples, profiles, moves, moveRatio }, markdown, passed, charts: [{ file: "benchmarks-networks.svg", svg }] };
  } finally {
    await lab.stop();
  }
}

async function place(lab: NetworkLab, label: string, where: RouterOptions | "public" | "root", link?: LinkProfile): Promise<Host | "root"> {
  if (where === "root") return "root";
  const behind = where === "public" ? "internet" : await lab.topology.addRouter(label, withGatewayPorts(lab, where));
  return lab.topology.addHost(label, { behind, link });
}

/** A firewall that lets only HTTPS out still lets the client reach the gateway and the page (their stand-ins for 443). */
function withGatewayPorts(lab: NetworkLab, router: RouterOptions): RouterOptions {
  return router.firewall === "tcp-443-only" ? { ...router, allowTcp: [lab.turn.gateway.port, lab.sdkSite.port] } : router;
}

let placed = 0;

async function measureProfile(lab: NetworkLab, profile: Profile, samples: number): Promise<ProfileFigures> {
  const id = ++placed;
  const agent = await lab.startAgent(await place(lab, `bg${id}`, profile.gpu));
  const browser = await lab.openBrowser(await place(lab, `bc${id}`, profile.client, profile.link));
  try {
    await end(await connectOnce(lab, browser)); // untimed warm-up: Chromium's first page, the agent's first session
    const firstFrameMs: number[] = [];
    let path = "";
    for (let i = 0; i < samples; i++) {
      const connected = await connectOnce(lab, browser);
      firstFrameMs.push(connected.state.firstFrameMs!);
      const pair = await selectedPair(connected.page);
      path = pair ? `${pair.local.candidateType}/${pair.local.relayProtocol ?? pair.local.protocol}` : "?";
      await end(connected);
    }
    return { name: profile.name, firstFrameMs, path, summary: summary(firstFrameMs), ratio: Number.NaN };
  } finally {
    await browser.close();
    await agent.stop();
  }
}

/** Ends the session (so its GPU slot is free at once, not after the grace window) and closes its page. */
async function end({ page }: { page: Page }): Promise<void> {
  await sdkHarness(page).disconnect(false);
  await page.close();
}

/** A fresh page and session until its first frame; end() it when done. */
async function connectOnce(lab: NetworkLab, browser: TestBrowser, options?: Record<string, unknown>): Promise<{ page: Page; state: SdkState }> {
  const page = await lab.openPage(browser, lab.sdkSite);
  const sdk = sdkHarness(page);
  await sdk.create({ apiUrl: lab.turn.gateway.url, modelName: "demo", options });
  await sdk.connect(lab.turn.jwt, { wait: false });
  const deadline = Date.now() + FRAME_TIMEOUT_MS;
  let state = await sdk.state();
  while (state.firstFrameMs === null) {
    if (Date.now() > deadline) throw new Error(`no first frame (statuses: ${state.statuses.join(" → ")}, errors: ${JSON.stringify(state.errors)})`);
    await new Promise((resolve) => setTimeout(resolve, 20));
    state = await sdk.state();
  }
  return { page, state };
}

/** How many peer connections the page made (the harness page keeps them all: tools/ice-policy.ts). */
function peerConnections(page: Page): Promise<number> {
  return page.evaluate(() => (window as unknown as { __peerConnections: RTCPeerConnection[] }).__peerConnections.length);
}

async function measureAddressChange(lab: NetworkLab, samples: number): Promise<{ movesMs: number[]; restarts: number; summary: Summary }> {
  const id = ++placed;
  const agent = await lab.startAgent(await place(lab, `mg${id}`, "public"));
  const routers = [
    await lab.topology.addRouter(`wifi${id}`, { nat: "port-restricted" }),
    await lab.topology.addRouter(`cell${id}`, { nat: "port-restricted" }),
  ];
  const phone = await lab.topology.addHost(`phone${id}`, { behind: routers[0] });
  const browser = await lab.openBrowser(phone);
  try {
    const movesMs: number[] = [];
    let restarts = 0;
    for (let i = 0; i < samples; i++) {
      const { page } = await connectOnce(lab, browser);
      const sdk = sdkHarness(page);
      await waitFor(sdk, (state) => state.status === "ready", "ready");
      const framesAtMove = (await sdk.state()).frames;
      const movedAt = await recordFrameTimes(page);
      await phone.moveTo(routers[(i + 1) % 2]!);
      await waitFor(sdk, (state) => state.frames >= framesAtMove + 10, "ten frames after the move");
      movesMs.push(await videoAgainMs(page, movedAt));
      restarts += (await peerConnections(page)) > 1 ? 1 : 0;
      await end({ page });
    }
    return { movesMs, restarts, summary: summary(movesMs) };
  } finally {
    await browser.close();
    await agent.stop();
  }
}

/** Starts noting when each video frame is presented; returns the page's clock now. */
function recordFrameTimes(page: Page): Promise<number> {
  return page.evaluate(() => {
    const w = window as unknown as { __frameTimes: number[] };
    w.__frameTimes = [];
    const video = document.querySelector("video")!;
    const note = (now: number) => {
      w.__frameTimes.push(now);
      video.requestVideoFrameCallback(note);
    };
    video.requestVideoFrameCallback(note);
    return performance.now();
  });
}

/**
 * ms from `movedAt` to the first frame after the longest freeze that followed it: when the video came back. Frames
 * still in the receiver when the path broke end the freeze's start, not its end.
 */
async function videoAgainMs(page: Page, movedAt: number): Promise<number> {
  const times = await page.evaluate(() => (window as unknown as { __frameTimes: number[] }).__frameTimes);
  let previous = movedAt;
  let longest = { gap: -1, at: movedAt };
  for (const time of times.filter((t) => t > movedAt)) {
    if (time - previous > longest.gap) longest = { gap: time - previous, at: time };
    previous = time;
  }
  return longest.at - movedAt;
}

async function waitFor(sdk: ReturnType<typeof sdkHarness>, done: (state: SdkState) => boolean, what: string): Promise<SdkState> {
  const deadline = Date.now() + FRAME_TIMEOUT_MS;
  for (;;) {
    const state = await sdk.state();
    if (done(state)) return state;
    if (Date.now() > deadline)
      throw new Error(`waited ${FRAME_TIMEOUT_MS} ms for ${what} (status ${state.status}, errors: ${JSON.stringify(state.errors)})`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
