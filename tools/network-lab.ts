/**
 * The real-network lab the network tests and the bench share: a topology (tools/netns.ts) whose server address
 * carries the gateway, coturn (TURN over UDP/TCP on 3478, TLS on 443) and the test pages; clients (Chromium) and GPU
 * runtimes (the runtime agent) are started inside hosts of the topology, behind whatever routers a scenario builds.
 *
 *   const lab = await startNetworkLab();
 *   const gpuHost = await lab.topology.addHost("gpu", { behind: await lab.topology.addRouter("gpu-nat", { nat: "symmetric" }) });
 *   const agent = await lab.startAgent(gpuHost);
 *   const client = await lab.openBrowser(clientHost);
 *   …
 *   await lab.stop();   // in afterAll: every process, every namespace
 */
import type { Page } from "playwright-core";
import { PROJECT_ROOT } from "../scripts/lib/paths.ts";
import { ManagedChild } from "../scripts/lib/supervisor.ts";
import { launchBrowser, servePage, type ServedPage, type TestBrowser } from "./browser.ts";
import { reactorClientPage } from "./browser.test-page.ts";
import { startCoturn, type Coturn } from "./coturn.ts";
import { clientToken, startGateway, type TestGateway } from "./gateway.ts";
import { shapeIceScript, type IceShape } from "./ice-policy.ts";
import { chromiumIn, createTopology, type Host, type Topology } from "./netns.ts";
import { sdkPage } from "./sdk-page.ts";

export const TURN_PORT = 3478;
/** TURN over TLS on the HTTPS port: what passes a network that lets only port 443 out. */
export const TURNS_PORT = 443;

/** A gateway of the lab and a client token of a fresh account on it. */
export interface LabGateway {
  gateway: TestGateway;
  jwt: string;
}

export interface NetworkLab {
  topology: Topology;
  /** Hands clients and runtimes STUN and TURN (coturn, REST secret): the platform as deployed. */
  turn: LabGateway;
  /** Hands out STUN only: what a network needs TURN for fails here. */
  stunOnly: LabGateway;
  coturn: Coturn;
  /** The official client's harness page and the native SDK's, served on the server address. */
  officialSite: ServedPage;
  sdkSite: ServedPage;
  /**
   * The runtime agent with the demo model, inside `host`, registered with `gateway` (default the TURN one). It
   * gathers with the lab's STUN server (unless `stun: false`) and with the ICE servers the gateway sends per session.
   */
  startAgent(host: Host | "root", options?: { gateway?: LabGateway; slots?: number; stun?: boolean; weriftAsIs?: boolean }): Promise<LabAgent>;
  /**
   * Chromium inside `host`, or in the root namespace (`"root"`: the server address is then a local one, as plain
   * loopback); close it with the returned browser's close().
   */
  openBrowser(host: Host | "root"): Promise<TestBrowser>;
  /** A page of `browser` on `site` whose peer connections are shaped (e.g. STUN only: `{ keepUrls: "^stun:" }`). */
  openPage(browser: TestBrowser, site: ServedPage, shape?: IceShape): Promise<Page>;
  stop(): Promise<void>;
}

export interface LabAgent {
  /** Every line it printed so far. */
  output(): string;
  stop(): Promise<void>;
}

export async function startNetworkLab(options: { gatewayVars?: Record<string, string> } = {}): Promise<NetworkLab> {
  const topology = await createTopology();
  const host = topology.serverAddress;
  const cleanups: (() => Promise<unknown>)[] = [() => topology.destroy()];
  const stop = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  };
  try {
    const coturn = await startCoturn({ host, port: TURN_PORT, tlsPort: TURNS_PORT });
    cleanups.push(() => coturn.stop());
    const stun = { STUN_URLS: `stun:${host}:${TURN_PORT}`, LIMIT_CONCURRENT_SESSIONS: "50" };
    const [turnGateway, stunGateway, officialSite, sdkSite] = await Promise.all([
      startGateway({
        host,
        vars: { ...stun, TURN_PROVIDERS: "coturn", TURN_SECRET: coturn.secret, TURN_HOSTS: coturn.turnHosts, ...options.gatewayVars },
      }),
      startGateway({ host, vars: { ...stun, TURN_PROVIDERS: "", ...options.gatewayVars } }),
      reactorClientPage().then((files) => servePage(files, { host })),
      sdkPage().then((files) => servePage(files, { host })),
    ]);
    cleanups.push(
      () => turnGateway.stop(),
      () => stunGateway.stop(),
      () => officialSite.close(),
      () => sdkSite.close(),
    );
    const turn: LabGateway = { gateway: turnGateway, jwt: await clientToken(turnGateway) };
    const stunOnly: LabGateway = { gateway: stunGateway, jwt: await clientToken(stunGateway) };
    const agents = new Set<LabAgent>();
    const browsers = new Set<TestBrowser>();
    cleanups.push(async () => {
      await Promise.all([...agents].map((agent) => agent.stop()));
      await Promise.all([...browsers].map((browser) => browser.close()));
    });

    return {
      topology,
      turn,
      stunOnly,
      coturn,
      officialSite,
      sdkSite,
      async startAgent(where, agentOptions = {}) {
        const { gateway } = agentOptions.gateway ?? turn;
        const lines: string[] = [];
        const agentArgs = [
          "runtime/main.ts",
          "--gateway",
          gateway.url,
          "--token",
          gateway.runtimeToken,
          "--slots",
          String(agentOptions.slots ?? 1),
          ...(agentOptions.stun === false ? [] : ["--stun", `stun:${host}:${TURN_PORT}`]),
          ...(agentOptions.weriftAsIs ? ["--werift-as-is"] : []),
        ];
        const { command, args } = where === "root" ? { command: process.execPath, args: agentArgs } : where.command(process.execPath, agentArgs);
        const label = where === "root" ? "root" : where.name;
        const child = new ManagedChild({ name: `agent-${label}`, command, args, cwd: PROJECT_ROOT }, (_name, line) => {
          lines.push(line);
          if (lines.length > 2000) lines.shift();
        });
        const agent: LabAgent = {
          output: () => lines.join("\n"),
          stop: async () => {
            agents.delete(agent);
            await child.stop();
          },
        };
        agents.add(agent);
        const registered = Date.now() + 30_000;
        while (!lines.some((line) => /registered/.test(line))) {
          if (Date.now() > registered) throw new Error(`the agent in ${label} did not register:\n${agent.output()}`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        return agent;
      },
      async openBrowser(where) {
        const launcher = where === "root" ? undefined : await chromiumIn(where);
        try {
          const browser = await launchBrowser({
            ...(launcher && { executablePath: launcher.path }),
            args: [
              // The pages and the gateway are plain http on a non-loopback address: let the client use what needs a
              // secure context (crypto.randomUUID, WebCrypto) there.
              `--unsafely-treat-insecure-origin-as-secure=${[officialSite.origin, sdkSite.origin, turnGateway.url, stunGateway.url].join(",")}`,
              // coturn's certificate is self-signed (turns:).
              "--ignore-certificate-errors",
            ],
          });
          const close = browser.close;
          const tracked: TestBrowser = { ...browser, close: () => close().finally(() => browsers.delete(tracked)) };
          browsers.add(tracked);
          return tracked;
        } finally {
          await launcher?.remove();
        }
      },
      async openPage(browser, site, shape = {}) {
        const page = await browser.newPage();
        await page.addInitScript(shapeIceScript, shape);
        await page.goto(site.url);
        return page;
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
