/**
 * `node bench/timeline.ts [--client native|official] [--runs n] [--long-poll-ms n] [--spare-encoders n] [--untuned]
 * [--floor]`: connects
 * a client in headless Chromium to a real gateway and runtime agent (demo model), `runs` times after one warm-up,
 * and prints for each connect one merged timeline of the page, the gateway and the agent (bench/lib/timeline.ts),
 * in ms from the connect() call. `--untuned`: the agent with werift's own timings (`tuneWerift: false`). `--floor`:
 * against the instant in-process gateway (bench/lib/instant-gateway.ts) instead of wrangler dev and an agent. A diagnostic, not a suite: it measures nothing into BENCHMARKS.md.
 */
import { parseArgs } from "node:util";
import { RuntimeAgent } from "../runtime/agent.ts";
import { demoModel } from "../runtime/demo/model.ts";
import { launchBrowser, servePage } from "../tools/browser.ts";
import { reactorClientPage } from "../tools/browser.test-page.ts";
import { sdkPage } from "../tools/sdk-page.ts";
import { clientToken, startGateway } from "../tools/gateway.ts";
import { startInstantGateway } from "./lib/instant-gateway.ts";
import { agentLog, formatTimeline, gatewayLog, merge, pageEvents, probePage } from "./lib/timeline.ts";

const { values } = parseArgs({
  options: {
    client: { type: "string", default: "native" },
    runs: { type: "string", default: "3" },
    "long-poll-ms": { type: "string" },
    "spare-encoders": { type: "string", default: "0" },
    floor: { type: "boolean", default: false },
    untuned: { type: "boolean", default: false },
  },
});
const client = values.client === "official" ? "official" : "native";
const runs = Number(values.runs);

const gatewayLines = gatewayLog();
const agentLines = agentLog();
const vars: Record<string, string> = { STUN_URLS: "" };
if (values["long-poll-ms"] !== undefined) vars.LONG_POLL_MS = values["long-poll-ms"];
const floor = values.floor ? await startInstantGateway({ model: demoModel(), log: agentLines.log }) : undefined;
const [gateway, browser, site] = await Promise.all([
  floor ? { url: floor.url, runtimeToken: "", stop: () => floor.close() } : startGateway({ vars, onLine: gatewayLines.onLine }),
  launchBrowser(),
  (client === "native" ? sdkPage() : reactorClientPage()).then((files) => servePage(files)),
]);
const agent = new RuntimeAgent({
  gatewayUrl: gateway.url,
  token: gateway.runtimeToken || "rt_unused",
  model: demoModel({ spareEncoders: Number(values["spare-encoders"]) }),
  slots: 1,
  log: agentLines.log,
  webrtc: { tuneWerift: !values.untuned },
});
try {
  if (!floor) await agent.start();
  const jwt = floor ? "floor" : await clientToken(gateway as Awaited<ReturnType<typeof startGateway>>);
  for (let run = 0; run <= runs; run++) {
    gatewayLines.clear();
    agentLines.clear();
    const page = await browser.newPage();
    await probePage(page);
    await page.goto(site.url);
    // The page's harness differs by client (native: create then connect(token); official: connect(options)).
    type Harness = {
      create(options: { apiUrl: string; modelName: string }): unknown;
      connect(...args: unknown[]): unknown;
      disconnect(asFunction: boolean): unknown;
    };
    type W = { __timeline: [number, string][]; harness: Harness };
    if (client === "native") {
      await page.evaluate((o) => (window as unknown as W).harness.create(o), { apiUrl: gateway.url, modelName: "demo" });
      await page.evaluate((token) => {
        const w = window as unknown as W;
        w.__timeline.push([performance.timeOrigin + performance.now(), "connect()"]);
        void w.harness.connect(token, false);
      }, jwt);
    } else {
      await page.evaluate(
        ([apiUrl, token]) => {
          const w = window as unknown as W;
          w.__timeline.push([performance.timeOrigin + performance.now(), "connect()"]);
          void w.harness.connect({ apiUrl, jwt: token, modelName: "demo" });
        },
        [gateway.url, jwt] as const,
      );
    }
    await page.waitForFunction(() => (window as unknown as W).__timeline.some(([, what]) => what === "first video frame presented"), undefined, {
      timeout: 20_000,
      polling: 10,
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const events = await pageEvents(page);
    const zero = events.find((event) => event.what === "connect()")!.at;
    if (run > 0) {
      console.log(`\n── ${client} connect ${run}/${runs} ──`);
      console.log(formatTimeline(merge(zero, events, gatewayLines.events, agentLines.events)));
    }
    await page.evaluate(() => (window as unknown as W).harness.disconnect(false)).catch(() => undefined);
    await page.close();
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
} finally {
  await agent.stop();
  await Promise.all([browser.close(), site.close(), gateway.stop()]);
}
