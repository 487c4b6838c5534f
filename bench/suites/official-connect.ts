/**
 * The official client (`@reactor-team/js-sdk` 2.9.0, unmodified, headless Chromium): `connect()` → `ready`, and →
 * first presented frame, against a real gateway (`wrangler dev`) and the runtime agent serving the demo model
 * (werift + ffmpeg), all on loopback. Two gateways side by side, identical but for LONG_POLL_MS:
 *   - long-poll (the default): GET /sessions/{id} and GET sdp_params are held open until there is something to say;
 *   - plain polling (LONG_POLL_MS=0): every poll is answered at once (202 while pending), and the client's own
 *     backoff (200 ms, doubling) sets the pace.
 * A third setup is the first with one spare encoder (`demoModel({ spareEncoders: 1 })`): the session takes an
 * encoder that is already producing video instead of starting ffmpeg on assignment.
 * Each connect is a fresh page and a fresh session, ended (DELETE) before the next; the setups alternate so all
 * see the same machine load. One untimed warm-up connect per setup first. Times are measured in the page,
 * from the connect() call. The gateway calls the client made (CORS preflights aside) are counted per connect.
 */
import type { Page } from "playwright-core";
import { RuntimeAgent } from "../../runtime/agent.ts";
import { demoModel } from "../../runtime/demo/model.ts";
import { launchBrowser, servePage, type ServedPage, type TestBrowser } from "../../test/node/support/browser.ts";
import { reactorClientPage, type HarnessWindow } from "../../test/node/support/browser.test-page.ts";
import type { SuiteContext, SuiteResult } from "../harness/suite.ts";
import { fixed, median, quantile } from "../harness/stats.ts";
import { clientToken, startGateway, type TestGateway } from "../lib/gateway.ts";

export const name = "official-connect";
export const title = "Official client: connect() to ready";

/** Sessions per token (account): well under the 50 creations a minute an account may make. */
const PER_TOKEN = 10;
const READY_TIMEOUT_MS = 30_000;

interface Mode {
  name: string;
  vars: Record<string, string>;
  spareEncoders: number;
}

const MODES: Mode[] = [
  { name: "long-poll (LONG_POLL_MS default)", vars: {}, spareEncoders: 0 },
  { name: "plain polling (LONG_POLL_MS=0)", vars: { LONG_POLL_MS: "0" }, spareEncoders: 0 },
  { name: "long-poll, 1 spare encoder", vars: {}, spareEncoders: 1 },
];

export interface ConnectSample {
  readyMs: number;
  firstFrameMs: number;
  /** GET /sessions/{id} calls (until capabilities) and GET sdp_params calls (until the answer). */
  sessionPolls: number;
  answerPolls: number;
  /** Every call to the gateway the page made (preflights are not visible to the page). */
  requests: number;
}

export interface Summary {
  median: number;
  p90: number;
  min: number;
  max: number;
}

export interface ModeFigures {
  mode: string;
  samples: ConnectSample[];
  ready: Summary;
  firstFrame: Summary;
  sessionPolls: number;
  answerPolls: number;
  requests: number;
}

interface Setup {
  mode: Mode;
  gateway: TestGateway;
  agent: RuntimeAgent;
  samples: ConnectSample[];
  jwt: string;
  connects: number;
}

async function connectOnce(browser: TestBrowser, site: ServedPage, setup: Setup): Promise<ConnectSample> {
  if (setup.connects++ % PER_TOKEN === 0) setup.jwt = await clientToken(setup.gateway);
  const page: Page = await browser.newPage();
  const counts = { sessionPolls: 0, answerPolls: 0, requests: 0 };
  page.on("request", (request) => {
    if (!request.url().startsWith(setup.gateway.url) || request.method() === "OPTIONS") return;
    counts.requests++;
    const path = new URL(request.url()).pathname;
    if (request.method() === "GET" && /^\/sessions\/[^/]+$/.test(path)) counts.sessionPolls++;
    if (request.method() === "GET" && path.endsWith("/sdp_params")) counts.answerPolls++;
  });
  try {
    await page.goto(site.url);
    await page.evaluate(
      ([apiUrl, jwt]) => void (window as unknown as HarnessWindow).harness.connect({ apiUrl, jwt, modelName: "demo" }),
      [setup.gateway.url, setup.jwt] as const,
    );
    await page.waitForFunction(() => (window as unknown as HarnessWindow).harness.state().frames > 0, undefined, {
      timeout: READY_TIMEOUT_MS,
      polling: 10,
    });
    const state = await page.evaluate(() => (window as unknown as HarnessWindow).harness.state());
    const ready = state.statuses.find(([status]) => status === "ready");
    if (!ready || state.firstFrameMs === null) throw new Error(`no ready/first frame: ${JSON.stringify(state.statuses)} ${state.connectError ?? ""}`);
    await page.evaluate(() => (window as unknown as HarnessWindow).harness.disconnect(false));
    return { readyMs: ready[1], firstFrameMs: state.firstFrameMs, ...counts };
  } finally {
    await page.close();
  }
}

function summary(values: number[]): Summary {
  return { median: median(values), p90: quantile(values, 0.9), min: Math.min(...values), max: Math.max(...values) };
}

export async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const repetitions = ctx.quick ? 5 : 20;
  const [browser, site] = await Promise.all([launchBrowser(), reactorClientPage().then((files) => servePage(files))]);
  const setups: Setup[] = [];
  try {
    for (const mode of MODES) {
      ctx.progress(`starting a gateway and a runtime agent: ${mode.name}…`);
      const gateway = await startGateway({ vars: { STUN_URLS: "", ...mode.vars } });
      const agent = new RuntimeAgent({ gatewayUrl: gateway.url, token: gateway.runtimeToken, model: demoModel({ spareEncoders: mode.spareEncoders }), slots: 1, log: () => undefined });
      setups.push({ mode, gateway, agent, samples: [], jwt: "", connects: 0 });
      await agent.start();
    }
    for (let i = -1; i < repetitions; i++) {
      ctx.progress(i < 0 ? "warm-up connects…" : `connect ${i + 1}/${repetitions}…`);
      for (const setup of setups) {
        const sample = await connectOnce(browser, site, setup);
        if (i >= 0) setup.samples.push(sample);
      }
    }
  } finally {
    for (const setup of setups) {
      await setup.agent.stop();
      await setup.gateway.stop();
    }
    await Promise.all([browser.close(), site.close()]);
  }
  const figures: ModeFigures[] = setups.map(({ mode, samples }) => ({
    mode: mode.name,
    samples,
    ready: summary(samples.map((sample) => sample.readyMs)),
    firstFrame: summary(samples.map((sample) => sample.firstFrameMs)),
    sessionPolls: median(samples.map((sample) => sample.sessionPolls)),
    answerPolls: median(samples.map((sample) => sample.answerPolls)),
    requests: median(samples.map((sample) => sample.requests)),
  }));
  return { figures, markdown: markdown(figures, repetitions) };
}

function markdown(figures: ModeFigures[], repetitions: number): string {
  const range = (s: Summary) => `${fixed(s.median, 0)} | ${fixed(s.p90, 0)} | ${fixed(s.min, 0)}–${fixed(s.max, 0)}`;
  return [
    `${repetitions} connects per setup, alternating; each a fresh page and session on a free runtime slot (its encoder starts on assignment, or is a spare taken over). ` +
      "ms from `connect()`; calls = median per connect, CORS preflights not counted.",
    "",
    "| gateway | ready p50 | p90 | range | first frame p50 | p90 | range | GET /sessions/{id} | GET sdp_params | calls |",
    "|---|---:|---:|---|---:|---:|---|---:|---:|---:|",
    ...figures.map((f) => `| ${f.mode} | ${range(f.ready)} | ${range(f.firstFrame)} | ${fixed(f.sessionPolls, 0)} | ${fixed(f.answerPolls, 0)} | ${fixed(f.requests, 0)} |`),
  ].join("\n");
}
